package model

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// AdaptiveConfig configures the adaptive DQN.
type AdaptiveConfig struct {
	DQN DQNConfig
	// EpochSessions is the number of closed sessions between decisions;
	// EpochEvents, if positive, ends an epoch after that many events too,
	// whichever comes first: a stream whose sessions rarely close (one
	// anonymous session per user, never idle long) still gets decisions.
	EpochSessions int
	EpochEvents   int
	// Step is the number of units a widen or narrow action moves.
	Step   int
	Bounds ArchBounds
	// Lambda weighs parameters against quality in the controller's reward:
	// reward = NDCG@10 gain − Lambda · (parameters added)/1000.
	Lambda float64
	// SampleEvery scores one in this many events for the quality signal
	// (ranking every event would cost more than learning from it).
	SampleEvery int
	// Tiers and TierAt, if set, replace DQN.Tiers and DQN.TierAt: the
	// adaptive model's item embeddings start in these tiers, whose
	// thresholds its controller then scales (TiersNarrower, TiersWider).
	Tiers  []int
	TierAt []float64
	// MaxNewUsers, if set, replaces DQN.MaxNewUsers when its users are
	// compact (DQN.CompactUsers): the adaptive model prices memory, and
	// keeps a user past its first event only if its second comes before
	// this many other users' first events.
	MaxNewUsers int
	// Revert undoes a decision whose reward came out negative: the
	// network goes back to the one before it (weights, target and Adam
	// moments as they were), a tier action's rows to their widths and
	// tails. A decision stands only if it paid.
	Revert bool
}

// Decision is one architecture decision with the terms of its reward,
// which arrive one epoch later.
type Decision struct {
	Epoch  int    `json:"epoch"`
	Before []int  `json:"before"`
	Action Action `json:"action"`
	After  []int  `json:"after"`
	// ParamsAdded is what the action added to all the model's
	// parameters, item tables included (negative: freed); Params is the
	// Q-network's size after it and TableParams the item tables', TierAt
	// the tier thresholds (with tiers).
	ParamsAdded int       `json:"params_added"`
	Params      int       `json:"params"`
	TableParams int       `json:"table_params"`
	TierAt      []float64 `json:"tier_at,omitempty"`
	Quality     float64   `json:"quality_before"`
	// QualityAfter is the NDCG@10 of the network over the epoch after the
	// decision, QualityRef that of the network as it was before the
	// decision, frozen, on the same events; Gain is their difference.
	QualityAfter float64 `json:"quality_after"`
	QualityRef   float64 `json:"quality_reference"`
	Gain         float64 `json:"gain"`
	Cost         float64 `json:"cost"`
	Reward       float64 `json:"reward"`
	Rewarded     bool    `json:"rewarded"`
	// Reverted is set when the reward came out negative and the model
	// undid the decision (AdaptiveConfig.Revert).
	Reverted   bool   `json:"reverted,omitempty"`
	Controller string `json:"controller"`
	// At is when the decision was taken and Took how long taking and
	// applying it lasted (for tracing; not published).
	At   time.Time     `json:"-"`
	Took time.Duration `json:"-"`
}

// Adaptive is the DQN whose Q-network a controller grows and prunes while
// it learns. Every EpochSessions closed sessions it measures prequential
// NDCG@10 on a sample of the epoch's events, rewards the previous decision
// with the quality gain minus λ per thousand parameters added, and takes
// the next decision.
type Adaptive struct {
	*DQN
	acfg    AdaptiveConfig
	ctrl    Controller
	closed  int
	events  int // events learned in the epoch
	epoch   int
	ndcg    float64
	ndcgRef float64 // the same events ranked by ref
	ref     *qnet   // the network before the pending decision, frozen
	// before are the target network and Adam moments before the pending
	// decision, for Revert (nil: nothing to revert to).
	before    *netState
	scored    int
	seen      int
	lossStart float32
	itemsAt   int
	pending   int  // index of the decision awaiting its reward, -1: none
	follower  bool // another replica decides the architecture
	// decisions are the latest decisions, at most logCap (a long-running
	// worker takes one every epoch for ever; OnDecision publishes them
	// all).
	decisions []Decision
	logCap    int
	// OnDecision, if set, is called with each decision once it is taken
	// and again once its reward is known (Rewarded true).
	OnDecision func(Decision)
}

// SetDecisionHook sets OnDecision (pipeline.DecisionSource).
func (a *Adaptive) SetDecisionHook(f func(Decision)) { a.OnDecision = f }

// NewAdaptive returns an adaptive DQN driven by ctrl.
func NewAdaptive(cfg AdaptiveConfig, ctrl Controller) (*Adaptive, error) {
	if len(cfg.Tiers) > 0 || len(cfg.TierAt) > 0 {
		cfg.DQN.Tiers, cfg.DQN.TierAt = cfg.Tiers, cfg.TierAt
	}
	if cfg.MaxNewUsers > 0 && cfg.DQN.CompactUsers {
		cfg.DQN.MaxNewUsers = cfg.MaxNewUsers
	}
	d, err := NewDQN(cfg.DQN)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("adaptive: %w", err)
	}
	a := &Adaptive{DQN: d, acfg: cfg, ctrl: ctrl, pending: -1, logCap: DecisionLog}
	d.onSessionEnd = func() { a.closed++ }
	// Decisions are taken at the event that ends an epoch, wherever the
	// batch around it ends.
	d.afterEvent = func() {
		a.events++
		ends := a.closed >= a.acfg.EpochSessions || (a.acfg.EpochEvents > 0 && a.events >= a.acfg.EpochEvents)
		if ends && a.scored > 0 {
			a.decide()
		}
	}
	return a, nil
}

// SetDecider makes this replica the group's architecture decider (the
// default) or a follower, which takes no decisions of its own and adopts
// the decider's architecture when it merges (Adopt).
func (a *Adaptive) SetDecider(on bool) { a.follower = !on }

// Decider reports whether this replica takes architecture decisions.
func (a *Adaptive) Decider() bool { return !a.follower }

// Adopt takes the decider's networks (DQN.Adopt); a decision of this
// replica awaiting its reward is dropped: its network is gone.
func (a *Adaptive) Adopt(s *Snapshot) error {
	if err := a.DQN.Adopt(s); err != nil {
		return err
	}
	a.dropPending()
	return nil
}

// Restore restores the DQN's state (DQN.Restore); a decision awaiting its
// reward is dropped, as Adopt drops it: the network it would be measured
// against, or reverted to, is not the restored one.
func (a *Adaptive) Restore(s *Snapshot) error {
	if err := a.DQN.Restore(s); err != nil {
		return err
	}
	a.dropPending()
	return nil
}

// dropPending forgets the decision awaiting its reward, with what it would
// be measured against or reverted to.
func (a *Adaptive) dropPending() {
	a.ref, a.before, a.refMoved, a.pending = nil, nil, nil, -1
}

// Name implements Recommender.
func (a *Adaptive) Name() string { return "adaptive-" + a.ctrl.Name() }

// DecisionLog is how many of its latest decisions an Adaptive keeps in
// memory (Decisions): each epoch's decision is also published through
// OnDecision, and the log must not grow for as long as a worker runs.
const DecisionLog = 10_000

// Decisions returns the decisions taken so far: the latest DecisionLog of
// them once there were more.
func (a *Adaptive) Decisions() []Decision { return a.decisions }

// Learn implements Recommender.
func (a *Adaptive) Learn(ctx context.Context, b *feedback.Batch) ([]Recommendation, error) {
	return a.LearnProbed(ctx, b, nil)
}

// LearnProbed implements Probed: the DQN's step, with a sample of events
// ranked for the controller's quality signal, and a decision at each event
// that ends an epoch.
func (a *Adaptive) LearnProbed(ctx context.Context, b *feedback.Batch, probe Probe) ([]Recommendation, error) {
	inner := func(i int, ok bool, rank func() int) {
		var r = -1
		memo := rank
		if ok {
			memo = func() int {
				if r < 0 {
					r = rank()
				}
				return r
			}
			a.seen++
			if a.seen%a.acfg.SampleEvery == 0 {
				if a.ref != nil {
					var other int
					r, other = a.rankPair(a.ref, a.probeUser, a.probeItem) // memo returns r from now on
					a.ndcgRef += ndcgAt10(other)
				}
				a.ndcg += ndcgAt10(memo())
				a.scored++
			}
		}
		if probe != nil {
			probe(i, ok, memo)
		}
	}
	return a.DQN.LearnProbed(ctx, b, inner)
}

// ndcgAt10 is one event's NDCG@10 given the rank of its item.
func ndcgAt10(rank int) float64 {
	if rank >= 10 {
		return 0
	}
	return 1 / math.Log2(float64(rank)+2)
}

// decide rewards the pending decision and takes the next one. The reward's
// quality gain is paired: the network after the decision against a frozen
// copy of the network before it, on the same sampled events of the epoch
// that followed, so the difficulty of those events cancels out.
func (a *Adaptive) decide() {
	if a.follower {
		a.closed, a.events, a.ndcg, a.ndcgRef, a.scored, a.seen = 0, 0, 0, 0, 0, 0
		return
	}
	t0 := time.Now()
	quality := a.ndcg / float64(a.scored)
	bpr, _, _ := a.TrainStats()
	var prev *Decision
	if a.pending >= 0 {
		prev = &a.decisions[a.pending]
		prev.QualityAfter, prev.QualityRef = quality, a.ndcgRef/float64(a.scored)
		prev.Reward, prev.Gain, prev.Cost = ArchReward(prev.QualityRef, prev.QualityAfter, prev.ParamsAdded, a.acfg.Lambda)
		prev.Rewarded, prev.At, prev.Took = true, t0, 0
		if a.acfg.Revert && prev.Reward < 0 && prev.Action.Kind != Keep {
			prev.Reverted = a.revert(prev.Action) == nil
		}
		a.ctrl.Feedback(prev.Reward)
		if a.OnDecision != nil {
			a.OnDecision(*prev)
		}
	}
	lossTrend := 0.0
	if a.lossStart > 0 {
		lossTrend = float64(bpr-a.lossStart) / float64(a.lossStart)
	}
	obs := Observation{
		Widths: a.Widths(), NetParams: a.NetParams(), Quality: quality, LossTrend: lossTrend,
		DataRate: float64(a.seen), VocabGrowth: float64(max(a.items.Len()-a.itemsAt, 0)) / math.Max(1, float64(a.items.Len())), // 0 once items expired
		IdleUnits: a.idleFraction(),
	}
	if prev != nil {
		obs.QualityTrend = quality - prev.Quality
	}
	prev = nil // appending below may move the slice
	act := a.ctrl.Decide(obs, append(Candidates(a.net, a.acfg.Bounds, a.acfg.Step), a.tierActions()...))
	before, paramsBefore := a.Widths(), a.Params()
	a.ref, a.before = a.net.clone(), nil
	if a.acfg.Revert {
		a.before = a.saveNet()
	}
	if err := a.Apply(act, a.acfg.Bounds); err != nil {
		act = Action{Kind: Keep} // only valid actions are offered; keep on the unexpected
	}
	a.epoch++
	dec := Decision{
		Epoch: a.epoch, Before: before, Action: act, After: a.Widths(), Params: a.NetParams(),
		TableParams: a.tableParams(), TierAt: a.TierAt(),
		ParamsAdded: a.Params() - paramsBefore, Quality: quality, Controller: a.ctrl.Name(),
		At: t0, Took: time.Since(t0),
	}
	if len(a.decisions) >= a.logCap { // drop the oldest half, rewarded long since
		a.decisions = slices.Delete(a.decisions, 0, len(a.decisions)-a.logCap/2)
	}
	a.decisions = append(a.decisions, dec)
	a.pending = len(a.decisions) - 1
	if a.OnDecision != nil {
		a.OnDecision(dec)
	}
	a.closed, a.events, a.ndcg, a.ndcgRef, a.scored, a.seen = 0, 0, 0, 0, 0, 0
	a.lossStart, a.itemsAt = bpr, a.items.Len()
}

// idleFraction is the share of last-layer units that are zero for the
// empty state and a few replayed states: units that carry nothing.
func (a *Adaptive) idleFraction() float64 {
	if len(a.net.hidden) == 0 || len(a.replay) == 0 {
		return 0
	}
	last := a.net.hidden[len(a.net.hidden)-1].out
	fired := make([]bool, last)
	h := make([]float32, a.cfg.Dim)
	for k := range min(64, len(a.replay)) {
		tr := &a.replay[(k*7919)%len(a.replay)]
		a.features(tr.recent[:tr.n], tr.types[:tr.n], a.x)
		a.net.forward(a.x, h, &a.scr)
		// forward leaves the last hidden activations in one scratch buffer
		act := a.scr[(len(a.net.hidden)-1)%2][:last]
		for u, v := range act {
			fired[u] = fired[u] || v > 0
		}
	}
	idle := 0
	for _, f := range fired {
		if !f {
			idle++
		}
	}
	return float64(idle) / float64(last)
}

// netState is what a network action changes besides the online network:
// the target network and the Adam moments (as networks) and step.
type netState struct {
	target, m, v *qnet
	t            int
}

// saveNet copies the target network and the Adam moments.
func (a *Adaptive) saveNet() *netState {
	m, v := a.momentNets()
	st := &netState{target: a.target.clone(), m: m.clone(), v: v.clone()}
	if len(a.opts) > 0 {
		st.t = a.opts[0].t
	}
	return st
}

// revert undoes act, the pending decision (AdaptiveConfig.Revert). A
// network action's network goes back to the frozen one before it, with
// its target and Adam moments: the epoch's training of the network is
// lost with the decision. A tier action's thresholds go back, and the rows
// it narrowed get their tails back as they were.
func (a *Adaptive) revert(act Action) error {
	switch act.Kind {
	case TiersNarrower, TiersWider:
		old := a.refMoved
		at := make([]int, len(old)) // each moved row's width now
		for k, r := range old {
			if r.x >= 0 && int(r.x) < a.tab.len() {
				at[k] = a.tab.width(r.x)
			}
		}
		inverse := TiersWider
		if act.Kind == TiersWider {
			inverse = TiersNarrower
		}
		if _, err := a.scaleTiers(inverse); err != nil {
			return err
		}
		for k, r := range old {
			if r.x < 0 || int(r.x) >= a.tab.len() {
				continue
			}
			if row := a.tab.row(r.x); len(row) == len(r.old) && at[k] < len(row) {
				copy(row[at[k]:], r.old[at[k]:])
			}
		}
		a.refMoved = nil
		return nil
	}
	if a.ref == nil || a.before == nil {
		return fmt.Errorf("adaptive: no network to revert to")
	}
	a.net, a.target = a.ref, a.before.target
	a.ref = a.net.clone()
	if err := a.rebuild(); err != nil {
		return err
	}
	m, v := a.before.m.layers(), a.before.v.layers()
	for i := range m {
		a.opts[2*i].m, a.opts[2*i].v, a.opts[2*i].t = m[i].W, v[i].W, a.before.t
		a.opts[2*i+1].m, a.opts[2*i+1].v, a.opts[2*i+1].t = m[i].B, v[i].B, a.before.t
	}
	a.resetSums()
	a.before = nil
	return nil
}
