// Package eval is adaptrec's prequential evaluation: it replays a feedback
// log in timestamp order through the worker's own batching (the session
// package's Assembler) and a model, test-then-train, and measures HR@K and NDCG@K,
// throughput, training time and parameters, for several models in one run.
//
// An event is scored when the model already knows its item and the user has
// not consumed the item before: its rank is taken among all items the model
// knows minus the user's consumed ones, by the model's scores just before
// it learns the event. Repeats and never-seen items are not scored.
package eval

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/model/session"
)

// Options configures a run.
type Options struct {
	Batch int // events per batch, as the worker's batch.size (default 256)
	K     int // cut-off of HR and NDCG (default 10)
	// Session is the session policy (default session.DefaultOptions()).
	Session session.Options
	// Window is the number of scored events the rolling HR of the curve
	// averages over (default 2000); Points is how many curve points to keep
	// (default 200).
	Window, Points int
	// Progress, if set, is called after every batch with events done.
	Progress func(done, total int)
}

// Point is one point of a curve: after Events events, Value.
type Point struct {
	Events int
	Value  float64
}

// TrainMicrosPerEvent is the training time per event.
func (r Result) TrainMicrosPerEvent() float64 {
	if r.Events == 0 {
		return 0
	}
	return r.TrainMicrosPerBatch * float64(r.Batches) / float64(r.Events)
}

// Result is one model's figures.
type Result struct {
	Model          string
	HR, NDCG       float64
	Scored, Events int
	Batches        int
	ParamsMean     float64
	ParamsFinal    int
	// NetParamsMean is the mean size of the Q-network alone (without item
	// tables), for models that have one.
	NetParamsMean float64
	// NetCurve is the Q-network's size over the stream, at the points of
	// Curve; Decisions counts architecture decisions by kind.
	NetCurve []Point
	// TierCurves are the item tables' parameters in each tier over the
	// stream, at the points of Curve, for models with tiers.
	TierCurves          []TierCurve
	Decisions           map[string]int
	DecisionLog         []model.Decision // every decision, in order
	EventsPerSec        float64          // learning and serving only: ranking for the metric is excluded
	TrainMicrosPerBatch float64
	Curve               []Point // rolling HR@K
	Wall                time.Duration
	// FLOPsPerList is the mean serving work of a list and WidthShare the
	// share of lists at each width, for models with nested widths.
	FLOPsPerList float64
	WidthShare   string
}

// Trainer is implemented by models that time their own training steps; the
// harness reports that time per batch. Other models report their whole
// learning time per batch.
type Trainer interface {
	TrainTime() time.Duration
}

// Adapting is implemented by models that change their architecture.
type Adapting interface {
	Decisions() []model.Decision
}

// Tiered is implemented by models whose item embeddings come in tiers of
// widths: the parameters each tier holds (none without tiers).
type Tiered interface {
	TierParams() (widths, params []int)
}

// TierCurve is one tier's parameters over the stream.
type TierCurve struct {
	Width int
	Curve []Point
}

// Slimmable is implemented by models that score lists at several widths
// (model.DQNConfig.Nested).
type Slimmable interface {
	WidthStats() (model.WidthStats, bool)
}

// widthShare renders the share of lists at each width: "16:0.42 64:0.58".
func widthShare(s model.WidthStats) string {
	parts := make([]string, len(s.Widths))
	for i, w := range s.Widths {
		parts[i] = fmt.Sprintf("%d:%.2f", w, s.Share[i])
	}
	return strings.Join(parts, " ")
}

// Networked is implemented by models with a Q-network whose size is
// reported apart from their item tables.
type Networked interface {
	NetParams() int
}

// Run evaluates m on events (in the order given) and returns its figures.
func Run(ctx context.Context, events []feedback.Event, m model.Probed, opts Options) (Result, error) {
	opts.defaults()
	r := &run{opts: opts, m: m, asm: session.NewAssembler(opts.Session), res: Result{Model: m.Name(), Events: len(events)}}
	defer r.asm.Release()
	r.sc = scoring{k: opts.K, window: make([]bool, opts.Window)}
	r.netted, _ = m.(Networked)
	r.step = max(1, len(events)/opts.Points)
	r.nextPoint = r.step
	tr, timesTraining := m.(Trainer)
	var trainBefore time.Duration
	if timesTraining {
		trainBefore = tr.TrainTime()
	}
	start := time.Now()
	for lo := 0; lo < len(events); lo += opts.Batch {
		if err := ctx.Err(); err != nil {
			return r.res, err
		}
		if err := r.batch(ctx, events, lo, min(lo+opts.Batch, len(events))); err != nil {
			return r.res, err
		}
	}
	r.res.Wall = time.Since(start)
	r.finish()
	if timesTraining && r.res.Batches > 0 {
		r.res.TrainMicrosPerBatch = float64((tr.TrainTime() - trainBefore).Microseconds()) / float64(r.res.Batches)
	}
	return r.res, nil
}

// defaults fills the options left zero.
func (o *Options) defaults() {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.K <= 0 {
		o.K = 10
	}
	if o.Window <= 0 {
		o.Window = 2000
	}
	if o.Points <= 0 {
		o.Points = 200
	}
	if o.Session.MaxSessions == 0 {
		o.Session = session.DefaultOptions()
	}
}

// run is the state of one Run.
type run struct {
	opts   Options
	m      model.Probed
	asm    *session.Assembler
	sc     scoring
	res    Result
	netted Networked // nil: m has no network of its own
	// total is the time spent learning and ranking; paramsSum and netSum
	// add the model's and its network's sizes after each batch.
	total             time.Duration
	paramsSum, netSum float64
	step, nextPoint   int // events between curve points, and the next one
}

// batch learns events[lo:hi] as one batch, scoring each event first, and
// records the figures after it.
func (r *run) batch(ctx context.Context, events []feedback.Event, lo, hi int) error {
	t0 := time.Now()
	for i := lo; i < hi; i++ {
		r.asm.Add(events[i], 0, int64(i), events[i].TS)
	}
	b := r.asm.Flush()
	_, err := r.m.LearnProbed(ctx, b, r.sc.probe)
	b.Release()
	r.total += time.Since(t0)
	if err != nil {
		return fmt.Errorf("%s: batch at event %d: %w", r.m.Name(), lo, err)
	}
	r.res.Batches, r.res.Scored = r.res.Batches+1, r.sc.scored
	r.paramsSum += float64(r.m.Params())
	if r.netted != nil {
		r.netSum += float64(r.netted.NetParams())
	}
	for hi >= r.nextPoint {
		r.res.Curve = append(r.res.Curve, Point{Events: r.nextPoint, Value: r.sc.rolling()})
		if r.netted != nil {
			r.res.NetCurve = append(r.res.NetCurve, Point{Events: r.nextPoint, Value: float64(r.netted.NetParams())})
		}
		if t, ok := r.m.(Tiered); ok {
			widths, params := t.TierParams()
			if r.res.TierCurves == nil && len(widths) > 0 {
				r.res.TierCurves = make([]TierCurve, len(widths))
			}
			for i := range r.res.TierCurves {
				r.res.TierCurves[i].Width = widths[i]
				r.res.TierCurves[i].Curve = append(r.res.TierCurves[i].Curve, Point{Events: r.nextPoint, Value: float64(params[i])})
			}
		}
		r.nextPoint += r.step
	}
	if r.opts.Progress != nil {
		r.opts.Progress(hi, len(events))
	}
	return nil
}

// finish computes the figures of the whole run (but the training time of
// a Trainer, which Run measures).
func (r *run) finish() {
	res := &r.res
	if res.Scored > 0 {
		res.HR = float64(r.sc.hits) / float64(res.Scored)
		res.NDCG = r.sc.ndcg / float64(res.Scored)
	}
	learn := r.total - r.sc.rankTime
	if learn > 0 {
		res.EventsPerSec = float64(res.Events) / learn.Seconds()
	}
	if res.Batches > 0 {
		res.ParamsMean = r.paramsSum / float64(res.Batches)
		res.NetParamsMean = r.netSum / float64(res.Batches)
		res.TrainMicrosPerBatch = float64(learn.Microseconds()) / float64(res.Batches)
	}
	res.ParamsFinal = r.m.Params()
	if sl, ok := r.m.(Slimmable); ok {
		if st, ok := sl.WidthStats(); ok {
			res.FLOPsPerList, res.WidthShare = st.FLOPsPerList, widthShare(st)
		}
	}
	if ad, ok := r.m.(Adapting); ok {
		res.Decisions = map[string]int{}
		res.DecisionLog = ad.Decisions()
		for _, d := range res.DecisionLog {
			res.Decisions[string(d.Action.Kind)]++
		}
	}
}

// scoring adds up the ranks the model reports for the events it scores:
// hits and NDCG at k, and the hits of the last len(window) scored events
// for the rolling curve.
type scoring struct {
	k                        int
	window                   []bool
	inWindow, filled, scored int
	hits                     int
	ndcg                     float64
	rankTime                 time.Duration // ranking for the metric, not learning
}

// probe is the model.Probe of Run: ok says whether the event is scored,
// rank ranks its item.
func (s *scoring) probe(_ int, ok bool, rank func() int) {
	if !ok {
		return
	}
	t0 := time.Now()
	r := rank()
	s.rankTime += time.Since(t0)
	hit := r < s.k
	if hit {
		s.hits++
		s.ndcg += 1 / math.Log2(float64(r)+2)
	}
	slot := s.scored % len(s.window)
	if s.window[slot] {
		s.inWindow--
	}
	s.window[slot] = hit
	if hit {
		s.inWindow++
	}
	s.filled = min(s.filled+1, len(s.window))
	s.scored++
}

// rolling is the hit rate over the window (0 before any event is scored).
func (s *scoring) rolling() float64 {
	if s.filled == 0 {
		return 0
	}
	return float64(s.inWindow) / float64(s.filled)
}
