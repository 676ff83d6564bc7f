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
	NetCurve            []Point
	Decisions           map[string]int
	DecisionLog         []model.Decision // every decision, in order
	EventsPerSec        float64          // learning and serving only: ranking for the metric is excluded
	TrainMicrosPerBatch float64
	Curve               []Point // rolling HR@K
	Wall                time.Duration
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

// Networked is implemented by models with a Q-network whose size is
// reported apart from their item tables.
type Networked interface {
	NetParams() int
}

// Run evaluates m on events (in the order given) and returns its figures.
func Run(ctx context.Context, events []feedback.Event, m model.Probed, opts Options) (Result, error) {
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.K <= 0 {
		opts.K = 10
	}
	if opts.Window <= 0 {
		opts.Window = 2000
	}
	if opts.Points <= 0 {
		opts.Points = 200
	}
	if opts.Session.MaxSessions == 0 {
		opts.Session = session.DefaultOptions()
	}
	asm := session.NewAssembler(opts.Session)
	defer asm.Release()

	res := Result{Model: m.Name(), Events: len(events)}
	window := make([]bool, opts.Window)
	hitsInWindow, filled := 0, 0
	var hits int
	var ndcg float64
	var rankTime, total time.Duration
	var paramsSum, netSum float64
	netted, hasNet := m.(Networked)
	step := max(1, len(events)/opts.Points)
	nextPoint := step
	var trainBefore time.Duration
	tr, timesTraining := m.(Trainer)
	if timesTraining {
		trainBefore = tr.TrainTime()
	}

	probe := func(_ int, ok bool, rank func() int) {
		if !ok {
			return
		}
		t0 := time.Now()
		r := rank()
		rankTime += time.Since(t0)
		hit := r < opts.K
		if hit {
			hits++
			ndcg += 1 / math.Log2(float64(r)+2)
		}
		slot := res.Scored % opts.Window
		if window[slot] {
			hitsInWindow--
		}
		window[slot] = hit
		if hit {
			hitsInWindow++
		}
		filled = min(filled+1, opts.Window)
		res.Scored++
	}

	start := time.Now()
	for lo := 0; lo < len(events); lo += opts.Batch {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		hi := min(lo+opts.Batch, len(events))
		t0 := time.Now()
		for i := lo; i < hi; i++ {
			asm.Add(events[i], 0, int64(i), events[i].TS)
		}
		b := asm.Flush()
		_, err := m.LearnProbed(ctx, b, probe)
		b.Release()
		total += time.Since(t0)
		if err != nil {
			return res, fmt.Errorf("%s: batch at event %d: %w", m.Name(), lo, err)
		}
		res.Batches++
		paramsSum += float64(m.Params())
		if hasNet {
			netSum += float64(netted.NetParams())
		}
		for hi >= nextPoint {
			v := 0.0
			if filled > 0 {
				v = float64(hitsInWindow) / float64(filled)
			}
			res.Curve = append(res.Curve, Point{Events: nextPoint, Value: v})
			if hasNet {
				res.NetCurve = append(res.NetCurve, Point{Events: nextPoint, Value: float64(netted.NetParams())})
			}
			nextPoint += step
		}
		if opts.Progress != nil {
			opts.Progress(hi, len(events))
		}
	}
	res.Wall = time.Since(start)
	if res.Scored > 0 {
		res.HR = float64(hits) / float64(res.Scored)
		res.NDCG = ndcg / float64(res.Scored)
	}
	learn := total - rankTime
	if learn > 0 {
		res.EventsPerSec = float64(len(events)) / learn.Seconds()
	}
	if res.Batches > 0 {
		res.ParamsMean = paramsSum / float64(res.Batches)
		res.NetParamsMean = netSum / float64(res.Batches)
		if timesTraining {
			res.TrainMicrosPerBatch = float64((tr.TrainTime() - trainBefore).Microseconds()) / float64(res.Batches)
		} else {
			res.TrainMicrosPerBatch = float64(learn.Microseconds()) / float64(res.Batches)
		}
	}
	res.ParamsFinal = m.Params()
	if ad, ok := m.(Adapting); ok {
		res.Decisions = map[string]int{}
		res.DecisionLog = ad.Decisions()
		for _, d := range res.DecisionLog {
			res.Decisions[string(d.Action.Kind)]++
		}
	}
	return res, nil
}
