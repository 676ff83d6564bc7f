package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	modelsession "github.com/adaptrec/adaptrec/model/session"
)

// Policy shows lists: given a tick's events it returns the list each of
// their users sees next.
type Policy interface {
	Lists(ctx context.Context, events []feedback.Event) (Lists, error)
	Name() string
}

// ModelPolicy serves a recommender in process, through the worker's own
// batching (sessions, Arrow record).
type ModelPolicy struct {
	Rec model.Recommender
	asm *modelsession.Assembler
	off int64
}

// NewModelPolicy wraps rec with the session policy of cfg.
func NewModelPolicy(rec model.Recommender, cfg configs.Session) *ModelPolicy {
	return &ModelPolicy{Rec: rec, asm: modelsession.NewAssembler(wire.Session(cfg))}
}

// Name implements Policy.
func (p *ModelPolicy) Name() string { return p.Rec.Name() }

// Lists implements Policy: the tick's events are one batch.
func (p *ModelPolicy) Lists(ctx context.Context, events []feedback.Event) (Lists, error) {
	if len(events) == 0 {
		return nil, nil
	}
	for _, e := range events {
		p.asm.Add(e, 0, p.off, e.TS)
		p.off++
	}
	b := p.asm.Flush()
	defer b.Release()
	recs, err := p.Rec.Learn(ctx, b)
	if err != nil {
		return nil, err
	}
	out := make(Lists, len(recs))
	for _, r := range recs {
		ids := make([]string, len(r.Items))
		for i, it := range r.Items {
			ids[i] = it.ItemID
		}
		out[r.UserID] = ids
	}
	return out, nil
}

// Random shows n items drawn uniformly from those seen so far: the
// control policy.
type Random struct {
	N     int
	rng   *rand.Rand
	seen  map[string]bool
	items []string
}

// NewRandom returns the random policy.
func NewRandom(n int, seed uint64) *Random {
	return &Random{N: n, rng: rand.New(rand.NewPCG(seed, 0x7a)), seen: map[string]bool{}}
}

// Name implements Policy.
func (r *Random) Name() string { return "random" }

// Lists implements Policy.
func (r *Random) Lists(_ context.Context, events []feedback.Event) (Lists, error) {
	out := Lists{}
	for _, e := range events {
		if !r.seen[e.ItemID] {
			r.seen[e.ItemID] = true
			r.items = append(r.items, e.ItemID)
		}
	}
	for _, e := range events {
		l := make([]string, 0, r.N)
		for range min(r.N, len(r.items)) {
			l = append(l, r.items[r.rng.IntN(len(r.items))])
		}
		out[e.UserID] = l
	}
	return out, nil
}

// Result is a policy's figures over a whole run.
type Result struct {
	Policy            string
	Events, Sessions  int
	Shown, Chosen     int
	CumulativeReward  float64
	MeanSessionLength float64 // lists shown per session
	CTR               float64 // picks per list shown
	Regret            float64 // Oracle: summed expected-reward gap to the oracle's lists
	// Curve is the reward per list shown over the last CurveWindow lists,
	// every CurveStep lists, at the events count where each step ends.
	Curve []Point
	// ShiftEvent is the events count at the scheduled shift (0: none);
	// Recovery the events after it until the windowed reward per list,
	// having fallen below 90% of its level before the shift, is back above
	// it (-1: not within the run, or no shift).
	ShiftEvent, Recovery int
}

// Point is one point of a curve.
type Point struct {
	Events int
	Value  float64
}

// CurveWindow is the number of lists a curve point averages, CurveStep the
// number of lists between points (the resolution of Recovery).
const (
	CurveWindow = 2000
	CurveStep   = 250
)

// Run runs the population against policy until every session has ended.
// progress, if set, is called after every tick.
func Run(ctx context.Context, s *Sim, policy Policy, progress func(Tick)) (Result, error) {
	res := Result{Policy: policy.Name(), Recovery: -1}
	var lists Lists
	winReward, winShown := 0.0, 0
	var blocks [][2]float64 // reward and lists of the last CurveWindow/CurveStep steps
	pre, dipped := -1.0, false
	for !s.Done() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		t := s.Step(lists)
		if t.Shift {
			res.ShiftEvent = res.Events
			if len(res.Curve) > 0 {
				pre = res.Curve[len(res.Curve)-1].Value
			}
		}
		res.Events += len(t.Events)
		res.Shown += t.Shown
		res.Chosen += t.Chosen
		res.Sessions += t.Ended
		res.CumulativeReward += t.Reward
		res.Regret += t.Regret
		res.MeanSessionLength += float64(t.EndedSteps)
		winReward += t.ListReward
		winShown += t.Shown
		if winShown >= CurveStep {
			blocks = append(blocks, [2]float64{winReward, float64(winShown)})
			if len(blocks) > CurveWindow/CurveStep {
				blocks = blocks[1:]
			}
			var r, n float64
			for _, b := range blocks {
				r, n = r+b[0], n+b[1]
			}
			v := r / n
			res.Curve = append(res.Curve, Point{Events: res.Events, Value: v})
			switch {
			case pre <= 0 || res.Recovery >= 0:
			case v < 0.9*pre:
				dipped = true
			case dipped:
				res.Recovery = res.Events - res.ShiftEvent
			}
			winReward, winShown = 0, 0
		}
		var err error
		if lists, err = policy.Lists(ctx, t.Events); err != nil {
			return res, fmt.Errorf("%s: %w", policy.Name(), err)
		}
		if progress != nil {
			progress(t)
		}
	}
	if res.Sessions > 0 {
		res.MeanSessionLength /= float64(res.Sessions)
	}
	if res.Shown > 0 {
		res.CTR = float64(res.Chosen) / float64(res.Shown)
	}
	return res, nil
}

// FromConfig maps the sim.* keys.
func FromConfig(c configs.Sim) Config {
	return Config{
		Users: c.Users, Items: c.Items, Topics: c.Topics, Dim: c.Dim, Concurrency: c.Concurrency, Sessions: c.Sessions,
		Drift: c.Drift, ShiftProb: c.ShiftProb, ShiftAt: c.ShiftAt, NoChoice: c.NoChoice, Temperature: c.Temperature,
		PopWeight: c.PopWeight, Fatigue: c.Fatigue, Patience: c.Patience, MaxSteps: c.MaxSteps,
		ViewProb: c.ViewProb, RatingProb: c.RatingProb, Quality: c.Quality, Seed: c.Seed,
	}
}

// Oracle shows each user the best list for their true preferences: the
// upper bound a policy is measured against.
type Oracle struct {
	S *Sim
	N int
}

// Name implements Policy.
func (o Oracle) Name() string { return "oracle" }

// Lists implements Policy.
func (o Oracle) Lists(_ context.Context, events []feedback.Event) (Lists, error) {
	out := Lists{}
	for _, ss := range o.S.active {
		if _, ok := out[ss.u.id]; ok {
			continue
		}
		for _, e := range events {
			if e.UserID == ss.u.id {
				ids := make([]string, 0, o.N)
				for _, i := range o.S.oracleList(ss, o.N) {
					ids = append(ids, o.S.items[i].id)
				}
				out[ss.u.id] = ids
				break
			}
		}
	}
	return out, nil
}

// Window sums ticks: the figures of the sessions that ended in a
// reporting period, and the lists shown in it.
type Window struct {
	Sessions, Steps, Clicks, Shown int
	Reward                         float64 // of the sessions that ended
	ListReward                     float64 // earned from the lists shown in the period
}

// Add folds a tick in.
func (w *Window) Add(t Tick) {
	w.Merge(Window{Sessions: t.Ended, Steps: t.EndedSteps, Clicks: t.EndedClicks, Shown: t.Shown, Reward: t.EndedReward, ListReward: t.ListReward})
}

// String is the window's figures: sessions ended, their mean length (lists
// shown), clicks per session and reward per session.
func (w Window) String() string {
	per := func(x float64) float64 { return x / float64(max(w.Sessions, 1)) }
	return fmt.Sprintf("sessions %d  mean session length %.2f  clicks/session %.2f  reward/session %.2f",
		w.Sessions, per(float64(w.Steps)), per(float64(w.Clicks)), per(w.Reward))
}

// Live runs s against policy and, tick for tick, control against
// controlPolicy (the control population), until ctx ends or s is done.
// Every interval it calls report with the two windows since the last call.
func Live(ctx context.Context, s *Sim, policy Policy, control *Sim, controlPolicy Policy, interval time.Duration, report func(live, ctrl Window)) error {
	var lists, clists Lists
	var w, cw Window
	next := time.Now().Add(interval)
	for !s.Done() && ctx.Err() == nil {
		t := s.Step(lists)
		w.Add(t)
		var err error
		if lists, err = policy.Lists(ctx, t.Events); err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("%s: %w", policy.Name(), err)
		}
		if control != nil && !control.Done() {
			ct := control.Step(clists)
			cw.Add(ct)
			if clists, err = controlPolicy.Lists(ctx, ct.Events); err != nil {
				return fmt.Errorf("control %s: %w", controlPolicy.Name(), err)
			}
		}
		if now := time.Now(); now.After(next) {
			report(w, cw)
			w, cw = Window{}, Window{}
			next = now.Add(interval)
		}
	}
	report(w, cw)
	return nil
}

// Merge adds another window's figures.
func (w *Window) Merge(o Window) {
	w.Sessions += o.Sessions
	w.Steps += o.Steps
	w.Clicks += o.Clicks
	w.Shown += o.Shown
	w.Reward += o.Reward
	w.ListReward += o.ListReward
}
