package model

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// maxWindow bounds DQNConfig.Window (transitions store the window inline).
const maxWindow = 32

// DQNConfig configures the DQN recommender.
type DQNConfig struct {
	Dim    int   // item embedding size d
	Hidden []int // hidden layer widths of f(s)
	Window int   // recent items in the state (L, at most 32)
	Decay  float64

	LR float64 // Adam learning rate of the network
	// EmbLR is the SGD step of the item tables, which learn transition by
	// transition, in order, the ranking of each chosen item above
	// EmbNegatives uniform and Hard co-occurring negatives (sparse updates,
	// as embedding tables are usually trained). The gradient step trains
	// the network.
	EmbLR        float64
	EmbNegatives int
	// BiasLR is the SGD step of the item biases in the same ranking loss
	// (0: they stay 0). Below EmbLR, a bias, which is an item's
	// popularity, follows its recent events less than its row does.
	BiasLR float64
	// ContextNegatives and ContextLR train the tables on item pairs too:
	// each event also ranks the chosen item above ContextNegatives uniform
	// items as seen from each item of its window, by SGD at ContextLR
	// (0 negatives: no pairs).
	ContextNegatives int
	ContextLR        float64
	// Tied makes the state's input embedding of an item its output
	// embedding: one table, which every event trains through both the
	// state and the scored items, instead of two.
	Tied bool
	// Tiers are narrower widths than Dim for the tied embedding of items
	// with little evidence (ascending): an item starts in the first and
	// moves up a tier once its interactions reach TierAt of its tier
	// (one threshold per tier; the last tier, past them all, is Dim wide).
	// Rows of a tier are stored at its width. Empty: every row is Dim.
	Tiers  []int
	TierAt []float64
	// Nested are narrower widths than Dim (ascending) at which the item
	// tables also learn to rank, each a prefix of the full width, with
	// NestedWeight the weight of their ranking losses against the full
	// width's 1; WidthPolicy chooses the width each session's lists are
	// scored at (slim.go). Empty: every list at the full width.
	Nested          []int
	NestedWeight    float64
	WidthPolicy     string
	WidthLambda     float64
	WidthProbeEvery int
	Negatives       int     // sampled negatives per training step, shared by its rows
	Hard            int     // per-row negatives that co-occur with the row's session
	RowUniform      int     // per-row uniformly drawn negatives
	Rows            int     // transitions per training step
	Gamma           float64 // discount of the TD target
	// NStep is the number of a session's rewards the TD target sums
	// before it bootstraps: r_t + γ·r_t+1 + … + γ^(n-1)·r_t+n-1 +
	// γ^n·Q_target(s_t+n, ·), cut at the session's end (no bootstrap
	// once it closed), so what an item leads to later in its session
	// (or that the session ended) reaches its TD target. 1: one-step.
	NStep      int
	TDWeight   float64 // weight of the TD loss against the ranking loss
	TargetSync int     // rounds of steps between target-network syncs
	Replay     int     // replay buffer capacity, transitions

	// Temperature of the Boltzmann exploration over the ExploreTop best
	// items; 0 serves the greedy top-N.
	Temperature float64
	ExploreTop  int

	Reward Reward

	// StepsPerBatch is the number of gradient steps on every Rows
	// transitions (one round).
	StepsPerBatch int
	// Engine runs the training step: EngineKernel (a hand-written forward
	// and backward pass of the gorgonia graph's loss over preallocated
	// buffers, gonum's BLAS) or EngineGorgonia (the graph itself, on
	// gorgonia's TapeMachine): the same loss and gradients, within float
	// rounding; the kernel is several times faster.
	Engine string
	// Skip adds the state's embedding mean to f(s) (a residual connection).
	Skip bool
	// ZeroHead starts the q head at zero, so that with Skip f(s) starts as
	// the state's embedding mean and the MLP learns a correction.
	ZeroHead bool
	// HeadLR, if positive, is the Adam rate of the q head (default LR): the
	// head corrects the state summary slowly, while the tables learn fast.
	HeadLR float64
	// EWCLambda is the strength of the elastic weight consolidation penalty
	// on the network's weights (0: off); the weights are consolidated every
	// EWCEvery rounds of steps.
	EWCLambda float64
	EWCEvery  int
	// NoKNN drops the co-occurrence term from Q (an ablation).
	NoKNN bool
	// AlphaInit is the initial trust in co-occurrence, α of a fresh network.
	AlphaInit float64
	// Mix serves the mixture of the network's Q and the experts'
	// (co-occurrence, sequential rules, recency popularity) scores, weighted by their recent
	// prequential quality (see mixture), instead of Q alone. MixRate is the
	// rate of the exponential weights (0: fixed, equal weights), MixMemory
	// the decay of each scorer's hit rate per check, MixEvery the events
	// between checks; SRDecay weighs the rules of older window items.
	Mix       bool
	MixRate   float64
	MixMemory float64
	MixEvery  int
	// MixLearn is the rate of the mixture's gating head (its log-gains per
	// bucket and scorer, trained on the pairwise ranking loss of each
	// checked choice against the served top-K); 0 keeps the gains at 0.
	MixLearn float64
	SRDecay  float64
	// PopHalfLife is the events over which the recency popularity
	// expert's weight of an event halves; TrendHalfLife the same for the
	// trending expert, a second recency popularity over far fewer events
	// (0 leaves it out).
	PopHalfLife   float64
	TrendHalfLife float64
	// NoNet leaves the network's score out of the mixture (an ablation).
	NoNet bool

	Shared
	Seed uint64
}

// Reward maps feedback to reward: a click earns Click; a view earns View
// plus ViewPerMinute per minute of dwell (capped at one minute); a rating v
// earns (v - RatingCenter) / RatingScale, so low ratings are negative.
type Reward struct {
	Click, View, ViewPerMinute, RatingCenter, RatingScale float64
}

// Of returns the reward of event i of b.
func (r Reward) Of(b *feedback.Batch, i int) float32 {
	v, has := b.Value(i)
	switch b.Type(i) {
	case feedback.Click:
		return float32(r.Click)
	case feedback.View:
		dwell := 0.0
		if has {
			dwell = min(v/60, 1)
		}
		return float32(r.View + r.ViewPerMinute*dwell)
	case feedback.Rating:
		return float32((v - r.RatingCenter) / r.RatingScale)
	}
	return 0
}

// DefaultDQN is the configuration of the defaults file.
func DefaultDQN() DQNConfig {
	return DQNConfig{
		Dim: 64, Hidden: []int{64}, Window: 10, Decay: 0.7,
		LR: 1e-3, HeadLR: 1e-5, EmbLR: 0.05, BiasLR: 0.025, ContextNegatives: 4, ContextLR: 0.015, EmbNegatives: 64, Tied: true, Negatives: 0, Hard: 0, RowUniform: 24, Rows: 256, Gamma: 0.5, NStep: 1, TDWeight: 0.01, TargetSync: 10, Replay: 50_000,
		Temperature: 0.5, ExploreTop: 50,
		Reward:   Reward{Click: 1, View: 0.5, ViewPerMinute: 0.5, RatingCenter: 3, RatingScale: 2},
		EWCEvery: 50,
		Shared:   Shared{TopN: 10, MaxUsers: 1_000_000}, Seed: 1, StepsPerBatch: 1, Engine: EngineKernel, AlphaInit: 4, Skip: true, ZeroHead: true,
		NestedWeight: 0.2, WidthPolicy: WidthLearned, WidthLambda: 0.005, WidthProbeEvery: 16,
		Mix: true, MixRate: 20, MixMemory: 0.99, MixEvery: 4, MixLearn: 5, SRDecay: 0.8, PopHalfLife: 1000, TrendHalfLife: 50,
	}
}

// DQN is the deep RL recommender: a double DQN whose Q-network scores a
// user's session state against every item,
//
//	Q(s, a) = f(s)·e_a + b_a + α(s)·knn(s, a),
//
// where f is an MLP (trained on the loss of a gorgonia graph, which
// stepKernel runs) over the recency-weighted mean of the input embeddings
// of the session's last items and their feedback mix, e_a and
// b_a are the item's output embedding and bias, and knn(s, a) is the
// co-occurrence similarity of a to the session's items, weighted by α(s),
// which the network learns (how much to trust co-occurrence is learned
// online, not fixed). Events are learned one by one: each is scored,
// updates its user's state and the item tables; every Rows events gradient
// steps train the network on their transitions, with a ranking loss against
// sampled negatives and a TD loss towards r + γ·Q_target(s', argmax Q(s', ·)).
// With Mix, lists and ranks serve not Q alone but the mixture of Q and the
// experts it keeps beside it (mixture.go), weighted by their recent
// prequential quality.
type DQN struct {
	name  string
	cfg   DQNConfig
	rng   *rand.Rand
	pcg   *rand.PCG // rng's source, whose state snapshots carry
	in    int
	items *Vocab
	// item tables, row-major rows×dim; ein is eout when cfg.Tied; with
	// cfg.Tiers the embeddings are tab's rows instead (ein, eout empty)
	ein, eout, bias []float32
	tab             *tiers
	tierAt          []float64    // the thresholds of tab's tiers now (cfg.TierAt, scaled by decisions)
	refMoved        []movedRow   // the rows the pending tier decision moved, as they were (rankPair)
	wp              *widthPolicy // nil without cfg.Nested
	tierBuf         []float32    // scratch of tab's products
	co              cooc
	rules           cooc    // sequential rules a → b, the sr expert
	pop             recency // the recency popularity expert
	trend           recency // the trending expert: pop over the last few events
	mix             mixture // the weights of the served ranking's scorers
	// fresh counts each item's interactions learned since the last
	// snapshot; merged (nil until a merge) accumulates them with the
	// replicas merged since (Merge weighs each item by them).
	fresh, merged []float32
	// seen is each item's last event time (expire.go; growSeen pads it);
	// expired counts the items expired.
	seen           []int64
	expired        atomic.Int64
	sums           replicaSums // what this replica and its peers learned
	net, target    *qnet
	opts           []*adam // per layer: W then B
	ewc            *ewc    // nil: off
	onSessionEnd   func()  // called when a user's session closes
	closedSessions atomic.Int64
	evictedUsers   atomic.Int64
	afterEvent     func()     // called after each event is learned
	xrng           *rand.Rand // exploration: lists never move the learning's draws
	xpcg           *rand.PCG
	probeUser      *UserState // the user and item of the event being probed
	probeItem      int32
	qRef           []float32 // rankPair's q of the reference network
	dotBuf         []float32 // scoreItems' q·E
	armUsers       []int32   // qBatch's users of one width
	armQ, armDots  []float32
	graph          *trainGraph // defines the step's loss; the kernel runs it
	kernel         *stepKernel
	serve          *netPass  // the forward pass of a batch's users (qBatch)
	serveX         []float32 // their states
	users          *UserStore
	replay         []transition
	replayNext     int
	pending        []transition
	// held are the NStep > 1 transitions waiting for their session's next
	// events, by user; ready those complete, not yet pending.
	held            map[*UserState][]transition
	ready           []transition
	batches, steps  int64
	trainTime       time.Duration
	lastBPR, lastTD float32
	batch           touched
	// scratch
	x, q, qt []float32
	gq       []float32
	scr      [2][]float32
	scores   []float64
	knn, sr  []float64
	heap     minHeap
	blendBuf []float64 // the served scores while the mixture's gains learn
	negs     []int32
	dots     []float32
	expW     []float64
	negCol   [][]int32
	wts      []float32
}

type transition struct {
	recent [maxWindow]int32
	types  [maxWindow]feedback.Type
	n      uint8
	pos    int32
	reward float32
	hard   [maxHard]int32 // the step's hard negatives (scratch)
	ns     *nstep         // NStep > 1: the return after this step
}

const maxHard = 64

// NewDQN returns an untrained DQN.
func NewDQN(cfg DQNConfig) (*DQN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dqn: %w", err)
	}
	if cfg.TopN <= 0 || cfg.MaxUsers <= 0 {
		return nil, fmt.Errorf("dqn: top_n and max_users must be positive, got %d and %d", cfg.TopN, cfg.MaxUsers)
	}
	if cfg.MaxNewUsers < 0 || cfg.MaxNewUsers > 0 && !cfg.CompactUsers {
		return nil, fmt.Errorf("dqn: max_new_users bounds the compact users: must be 0, or positive with compact_users, got %d", cfg.MaxNewUsers)
	}
	d := &DQN{
		cfg:   cfg,
		pcg:   rand.NewPCG(cfg.Seed, 0xd9e),
		in:    cfg.Dim + 4,
		items: NewVocab(),
	}
	d.users = d.newUsers()
	if len(cfg.Tiers) > 0 {
		d.tab, _ = newTiers(append(slices.Clone(cfg.Tiers), cfg.Dim)) // Validate checked the widths
		d.tierAt = slices.Clone(cfg.TierAt)
	}
	d.wp = newWidthPolicy(cfg)
	d.mix = newMixture(cfg)
	d.rng = rand.New(d.pcg)
	d.xpcg = rand.NewPCG(cfg.Seed, 0xe47)
	d.xrng = rand.New(d.xpcg)
	d.net = newQNet(d.in, cfg.Dim, cfg.Hidden, d.rng)
	d.net.skip = cfg.Skip
	if cfg.ZeroHead {
		clear(d.net.head.W)
	}
	if cfg.AlphaInit > 0 { // softplus⁻¹, so that α starts at AlphaInit
		d.net.alpha.B[0] = float32(math.Log(math.Expm1(cfg.AlphaInit)))
	}
	d.target = d.net.clone()
	d.syncOwn()
	if err := d.rebuild(); err != nil {
		return nil, err
	}
	d.x, d.q, d.qt = make([]float32, d.in), make([]float32, cfg.Dim), make([]float32, cfg.Dim)
	return d, nil
}

// rebuild makes the training graph and optimiser state for the current
// architecture.
func (d *DQN) rebuild() error {
	if d.graph != nil {
		d.graph.close()
	}
	g, err := newTrainGraph(d.net, d.cfg.Rows, d.cfg.Negatives, d.cfg.Hard+d.cfg.RowUniform, float32(d.cfg.TDWeight))
	if err != nil {
		return err
	}
	d.graph = g
	d.kernel = newStepKernel(d.net, d.cfg.Rows, d.cfg.Negatives, d.cfg.Hard+d.cfg.RowUniform, float32(d.cfg.TDWeight))
	d.serve = nil // sized for the old architecture
	d.opts = d.opts[:0]
	for _, l := range d.net.layers() {
		lr := d.cfg.LR
		if l == &d.net.head && d.cfg.HeadLR > 0 {
			lr = d.cfg.HeadLR
		}
		d.opts = append(d.opts, newAdam(len(l.W), lr), newAdam(len(l.B), lr))
	}
	d.ewc = nil
	if d.cfg.EWCLambda > 0 {
		// A new architecture starts a new consolidation: the old Fisher
		// estimate has other shapes.
		d.ewc = newEWC(d.cfg.EWCLambda, d.netTensors())
	}
	return nil
}

// netTensors lists the network's weight tensors in optimiser order.
func (d *DQN) netTensors() [][]float32 {
	var ts [][]float32
	for _, l := range d.net.layers() {
		ts = append(ts, l.W, l.B)
	}
	return ts
}

// Apply changes the Q-network's architecture by a, within bounds. Widen
// and AddLayer preserve the function; Narrow and RemoveLayer change it
// (their cost is measured by the controller's reward). The optimiser state
// of surviving weights is carried over; the target network is changed the
// same way. A tier action (TiersNarrower, TiersWider) scales the item
// tiers' thresholds instead and keeps the rows it moved, as they were, for
// the reference scores of the decision (rankPair); any other action drops
// them.
func (d *DQN) Apply(a Action, b ArchBounds) error {
	d.refMoved = nil
	switch a.Kind {
	case Keep:
		return nil
	case TiersNarrower, TiersWider:
		moved, err := d.scaleTiers(a.Kind)
		d.refMoved = moved
		return err
	}
	if err := d.net.valid(a, b); err != nil {
		return fmt.Errorf("architecture action %s: %w", a, err)
	}
	return d.applyPlan(d.net.plan(a, d.rng))
}

// applyPlan performs a planned architecture change on the online and
// target networks and on the Adam moments, and rebuilds the training graph.
func (d *DQN) applyPlan(p plan) error {
	m, v := d.momentNets()
	d.net.apply(p, 0)
	d.target.apply(p, 0)
	m.apply(p, 1)
	v.apply(p, 2)
	t := 0
	if len(d.opts) > 0 {
		t = d.opts[0].t
	}
	if err := d.rebuild(); err != nil {
		return err
	}
	for i, l := range m.layers() {
		vl := v.layers()[i]
		d.opts[2*i].m, d.opts[2*i].v, d.opts[2*i].t = l.W, vl.W, t
		d.opts[2*i+1].m, d.opts[2*i+1].v, d.opts[2*i+1].t = l.B, vl.B, t
	}
	d.resetSums()
	return nil
}

// momentNets returns the Adam moments of the network's weights shaped as
// networks, so architecture operations can transform them too.
func (d *DQN) momentNets() (m, v *qnet) {
	m, v = d.net.clone(), d.net.clone()
	ml, vl := m.layers(), v.layers()
	for i := range d.net.layers() {
		ml[i].W, ml[i].B = d.opts[2*i].m, d.opts[2*i+1].m
		vl[i].W, vl[i].B = d.opts[2*i].v, d.opts[2*i+1].v
	}
	return m, v
}

// Widths are the hidden layer widths of the Q-network.
func (d *DQN) Widths() []int { return d.net.widths() }

// NetParams is the number of Q-network weights (without the item tables).
func (d *DQN) NetParams() int { return d.net.params() }

// Close releases the training graph.
func (d *DQN) Close() { d.graph.close() }

// Name implements Recommender.
func (d *DQN) Name() string {
	if d.name != "" {
		return d.name
	}
	return "dqn"
}

// Params implements Recommender: network weights plus item tables.
func (d *DQN) Params() int { return d.net.params() + d.tableParams() }

// tableParams is the number of the item tables' parameters (one embedding
// table when tied).
func (d *DQN) tableParams() int {
	if d.tab != nil {
		return d.tab.params() + len(d.bias)
	}
	if d.cfg.Tied {
		return len(d.eout) + len(d.bias)
	}
	return len(d.ein) + len(d.eout) + len(d.bias)
}

// TrainTime is the time spent in gradient steps (eval.Trainer).
func (d *DQN) TrainTime() time.Duration { return d.trainTime }

// Users is the number of users remembered.
func (d *DQN) Users() int { return d.users.Len() }

// newUsers returns an empty user store of d's bounds, whose closed
// sessions d counts (and the adaptive model's epochs).
func (d *DQN) newUsers() *UserStore {
	// A user whose transitions wait for its next events (n_step) stays in
	// full: they are keyed by its state.
	users := newUsers(d.cfg.Shared, d.cfg.Window, func(u *UserState) bool { return len(d.held[u]) > 0 })
	users.OnEvict = func() { d.evictedUsers.Add(1) }
	users.OnClose = func(u *UserState) {
		d.endHeld(u)
		d.closedSessions.Add(1)
		if d.onSessionEnd != nil {
			d.onSessionEnd()
		}
	}
	return users
}

// SessionsClosed implements SessionCounter.
func (d *DQN) SessionsClosed() int64 { return d.closedSessions.Load() }

// UsersEvicted implements UserEvicter.
func (d *DQN) UsersEvicted() int64 { return d.evictedUsers.Load() }

// Learn implements Recommender.
func (d *DQN) Learn(ctx context.Context, b *feedback.Batch) ([]Recommendation, error) {
	return d.LearnProbed(ctx, b, nil)
}

// LearnProbed implements Probed. Events are learned one at a time, in
// order: each updates its user's state and the item tables at once, and
// every cfg.Rows events the network takes its gradient steps on them.
// Nothing depends on where a batch ends (only the lists are served per
// batch, and their exploration draws from a generator of its own), so the
// same events in the same order reach the same weights, bit for bit,
// however the worker happened to batch them.
func (d *DQN) LearnProbed(ctx context.Context, b *feedback.Batch, probe Probe) ([]Recommendation, error) {
	d.batch.reset()
	for i := range b.Len() {
		u, lastTS := d.users.getLast(b.UserID(i), b.TSMicros(i))
		// An event is scorable when the model knows its item and the user
		// has not consumed it.
		item, known := d.items.Lookup(b.ItemID(i))
		_, seen := u.Consumed[item]
		scorable := known && !seen
		if d.wp != nil {
			if !u.open || b.SessionID(i) != u.Session {
				d.startSession(u, lastTS, b.TSMicros(i))
			}
			if scorable {
				if d.wp.seen++; d.wp.seen%int64(d.wp.every) == 0 {
					d.probeWidths(u, item)
				}
			}
		}
		if probe != nil {
			if scorable {
				d.probeUser, d.probeItem = u, item
				probe(i, true, func() int {
					d.scoreAll(u)
					return order{score: d.scores}.rank(item, u.Consumed)
				})
			} else {
				probe(i, false, nil)
			}
		}
		d.checkMixture(u, b.ItemID(i))
		x := d.addItem(b.ItemID(i))
		var tr transition
		tr.n = uint8(copy(tr.recent[:], u.Recent))
		copy(tr.types[:], u.RecentTypes)
		tr.pos, tr.reward = x, d.cfg.Reward.Of(b, i)
		d.co.add(x, u.Recent)
		d.widen(x, d.co.count[x])
		if d.cfg.Mix {
			d.rules.addRules(x, u.Recent)
			if f := d.pop.add(x, d.cfg.PopHalfLife); f != 1 {
				d.rescalePop(f)
			}
			if d.cfg.TrendHalfLife > 0 {
				d.trend.add(x, d.cfg.TrendHalfLife) // no peer's: nothing to rescale
			}
		}
		d.fresh[x]++
		d.seenItem(x, b.TSMicros(i))
		if d.merged != nil {
			d.merged[x]++
		}
		d.users.Consume(u, x, b.Type(i))
		d.users.note(u, b, i)
		d.batch.add(u)
		start := time.Now()
		if err := d.learnTransition(u, tr); err != nil {
			return nil, err
		}
		d.trainTime += time.Since(start)
		if d.afterEvent != nil {
			d.afterEvent()
		}
	}
	d.batches++
	recs := d.lists()
	d.boundItems()
	d.users.Compact()
	return recs, ctx.Err()
}

// Observe rebuilds the users' session state from b's events without
// learning from them or serving lists: the state of users whose earlier
// events another replica, or an earlier run, learned (session.rebuild).
// An event at or before the partition offset a user's state already
// reflects is skipped, so observing twice changes nothing. Items it has
// not seen are added to the vocabulary.
func (d *DQN) Observe(b *feedback.Batch) {
	for i := range b.Len() {
		if u, ok := d.users.Lookup(b.UserID(i)); ok && u.Partition == b.Partition(i) && b.Offset(i) <= u.Offset {
			continue
		}
		u := d.users.Get(b.UserID(i), b.TSMicros(i))
		x := d.addItem(b.ItemID(i))
		d.seenItem(x, b.TSMicros(i))
		d.users.Consume(u, x, b.Type(i))
		d.users.note(u, b, i)
	}
	d.boundItems()
	d.users.Compact()
}

// erow is item x's output embedding (and, tied, its input one): Dim
// values, or its tier's width with cfg.Tiers (the rest being zero).
func (d *DQN) erow(x int32) []float32 {
	if d.tab != nil {
		return d.tab.row(x)
	}
	return d.eout[int(x)*d.cfg.Dim : int(x+1)*d.cfg.Dim]
}

// putRow writes item x's output embedding into dst (Dim long), zero past
// its width.
func (d *DQN) putRow(dst []float32, x int32) {
	clear(dst[copy(dst, d.erow(x)):])
}

// inrow is item x's input embedding, as erow.
func (d *DQN) inrow(x int32) []float32 {
	if d.tab != nil {
		return d.tab.row(x)
	}
	return d.ein[int(x)*d.cfg.Dim : int(x+1)*d.cfg.Dim]
}

// widen moves item x up the tiers its interactions (count) reached.
func (d *DQN) widen(x int32, count float64) {
	if d.tab == nil {
		return
	}
	if to := d.tierOf(count); to > int(d.tab.tier[x]) {
		d.tab.move(x, to, widenSigma, d.rng)
	}
}

// tierOf is the tier an item of count interactions earns under the
// thresholds now.
func (d *DQN) tierOf(count float64) int {
	to := 0
	for to < len(d.tierAt) && count >= d.tierAt[to] {
		to++
	}
	return to
}

// tierWidths are the widths of the item tiers, the last dim; nil without
// cfg.Tiers.
func (d *DQN) tierWidths() []int {
	if d.tab == nil {
		return nil
	}
	return d.tab.widths
}

// widenSigma is the spread of the values a widened row starts its new
// dimensions at (see tiers.move).
const widenSigma = 0.01

// tie makes the input table the output one when cfg.Tied; called after
// every change of eout's length or backing array.
func (d *DQN) tie() {
	if d.cfg.Tied {
		d.ein = d.eout
	}
}

// addItem returns the index of id, growing the item tables for a new one.
func (d *DQN) addItem(id string) int32 {
	x := d.items.Add(id)
	for int(x) >= len(d.bias) {
		if d.tab != nil {
			row := make([]float32, d.tab.widths[0])
			for j := range row {
				row[j] = float32(d.rng.NormFloat64() * 0.1)
			}
			d.tab.add(0, row)
		} else {
			for range d.cfg.Dim {
				if !d.cfg.Tied {
					d.ein = append(d.ein, float32(d.rng.NormFloat64()*0.1))
				}
				d.eout = append(d.eout, float32(d.rng.NormFloat64()*0.1))
			}
			d.tie()
		}
		d.bias = append(d.bias, 0)
		d.fresh = append(d.fresh, 0)
		if d.merged != nil {
			d.merged = append(d.merged, 0)
		}
	}
	d.growSeen()
	d.co.grow(x)
	return x
}

// features writes the state vector of a window into x and returns the
// weight of each window item in the embedding mean (for the backward pass).
func (d *DQN) features(recent []int32, types []feedback.Type, x []float32) []float32 {
	dim := d.cfg.Dim
	clear(x)
	d.wts = d.wts[:0]
	if len(recent) == 0 {
		return d.wts
	}
	w, total := float32(1), float32(0)
	d.wts = slices.Grow(d.wts, len(recent))[:len(recent)]
	for k := len(recent) - 1; k >= 0; k-- {
		d.wts[k] = w
		total += w
		w *= float32(d.cfg.Decay)
	}
	for k, item := range recent {
		d.wts[k] /= total
		row := d.inrow(item)
		for j, v := range row {
			x[j] += d.wts[k] * v
		}
		switch types[k] {
		case feedback.Click:
			x[dim]++
		case feedback.View:
			x[dim+1]++
		case feedback.Rating:
			x[dim+2]++
		}
	}
	for j := dim; j < dim+3; j++ {
		x[j] /= float32(len(recent))
	}
	x[dim+3] = float32(len(recent)) / float32(d.cfg.Window)
	return d.wts
}

// Rank is the rank (0: first) of item among the items the model knows and
// the user has not consumed, by Q in the user's current state, without
// learning anything; ok is false for an item the model does not know or
// the user consumed (it cannot be recommended). An unknown user is ranked
// from an empty state.
func (d *DQN) Rank(userID, itemID string) (rank int, ok bool) {
	item, known := d.items.Lookup(itemID)
	u, seen := d.users.Lookup(userID)
	if !seen {
		u = &UserState{ID: userID, Consumed: map[int32]struct{}{}}
	}
	if _, consumed := u.Consumed[item]; !known || consumed {
		return 0, false
	}
	d.scoreAll(u)
	return order{score: d.scores}.rank(item, u.Consumed), true
}

// scoreAll fills d.scores with the served score of every known item for
// u's state, with the online network: Q(s, a), or the mixture of Q and
// the experts with Mix.
func (d *DQN) scoreAll(u *UserState) {
	d.components(u)
	d.blend(len(u.Recent))
}

// components fills d.scores with Q(s, a) of every known item for u's
// state, with the online network, and d.knn and d.sr with the experts'.
func (d *DQN) components(u *UserState) {
	alpha := d.state(u)
	arm := d.armOf(u)
	if d.wp != nil {
		d.wp.count(arm, 1, len(d.bias), d.netFlops())
	}
	d.scoreItems(d.q, alpha, d.widthOf(arm))
}

// state computes u's state vector into d.x, the network's q into d.q and
// the experts' scores, and returns α(s).
func (d *DQN) state(u *UserState) (alpha float32) {
	d.features(u.Recent, u.RecentTypes, d.x)
	alpha = d.net.forward(d.x, d.q, &d.scr)
	d.expertScores(u.Recent)
	return alpha
}

// scoreItems writes Q(s, a) = q·e_a + b_a + α·knn(s, a) of every item into
// d.scores, given q and α of the state and d.knn; q·E is one matrix-vector
// product, over the first w values of q and the embeddings (w < Dim: a
// nested width).
func (d *DQN) scoreItems(q []float32, alpha float32, w int) {
	dots := grow(&d.dotBuf, len(d.bias))
	d.dotsRange(q, dots, 0, w, false)
	d.qScores(dots, alpha)
}

// qScores writes Q(s, a) = f(s)·e_a + b_a + α·knn(s, a) of every item a
// into d.scores, given f(s)·e_a in dots, α, and knn(s, ·) in d.knn. It is
// unrolled by four with the bounds checks hoisted out: the plain loop ran
// at a third of this speed, a quarter of a batch's scoring time
// (BenchmarkScoreBatch).
func (d *DQN) qScores(dots []float32, alpha float32) {
	n, al := len(dots), float64(alpha)
	scores, bias, knn := d.scores[:n], d.bias[:n], d.knn[:n]
	a := 0
	for ; a+4 <= n; a += 4 {
		q, b, k, s := dots[a:a+4:a+4], bias[a:a+4:a+4], knn[a:a+4:a+4], scores[a:a+4:a+4]
		s[0] = float64(q[0]+b[0]) + al*k[0]
		s[1] = float64(q[1]+b[1]) + al*k[1]
		s[2] = float64(q[2]+b[2]) + al*k[2]
		s[3] = float64(q[3]+b[3]) + al*k[3]
	}
	for ; a < n; a++ {
		scores[a] = float64(dots[a]+bias[a]) + al*knn[a]
	}
}

// qBatch computes, for each of users, f(s)·e_a of every known item a (row
// i of dots, users×items) and α(s): one forward pass of all their states,
// then the product F·Eᵀ as one gonum Sgemm (at dim 64 it runs 1.6 times
// as fast as one Sgemv per user, which won at dim 32; BenchmarkScoreBatch
// measures both).
func (d *DQN) qBatch(users []*UserState) (dots, alphas []float32) {
	nu, dim, n, in := len(users), d.cfg.Dim, len(d.bias), d.in
	if nu == 0 {
		return nil, nil
	}
	if d.serve == nil || d.serve.rows < nu {
		p := newNetPass(d.net, max(nu, 64))
		d.serve, d.serveX = &p, make([]float32, p.rows*in)
	}
	x := d.serveX[:nu*in]
	for i, u := range users {
		d.features(u.Recent, u.RecentTypes, x[i*in:(i+1)*in])
	}
	d.serve.run(d.net, x)
	dots = grow(&d.dots, nu*n)
	if d.wp == nil {
		d.productAt(d.serve.q[:nu*dim], nu, dim, dots)
		return dots, d.serve.alpha[:nu]
	}
	// With nested widths, the users of each width take one product at it.
	for arm, w := range d.wp.widths {
		group := d.armUsers[:0]
		for i, u := range users {
			if u.arm == uint8(arm) {
				group = append(group, int32(i))
			}
		}
		d.armUsers = group
		if len(group) == 0 {
			continue
		}
		d.wp.count(uint8(arm), len(group), n, d.netFlops())
		if len(group) == nu {
			d.productAt(d.serve.q[:nu*dim], nu, w, dots)
			break
		}
		ng := len(group)
		qs, out := grow(&d.armQ, ng*dim), grow(&d.armDots, ng*n)
		for k, i := range group {
			copy(qs[k*dim:(k+1)*dim], d.serve.q[int(i)*dim:])
		}
		d.productAt(qs, ng, w, out)
		for k, i := range group {
			copy(dots[int(i)*n:(int(i)+1)*n], out[k*n:(k+1)*n])
		}
	}
	return dots, d.serve.alpha[:nu]
}

// productAt writes into out (nu×items) the products of nu state vectors
// qs (nu×Dim) with every item's embedding over their first w values.
func (d *DQN) productAt(qs []float32, nu, w int, out []float32) {
	n, dim := len(d.bias), d.cfg.Dim
	if d.tab != nil {
		d.tab.dotsBatch(qs, nu, dim, w, out, &d.tierBuf)
		return
	}
	blas32.Gemm(blas.NoTrans, blas.Trans, 1,
		blas32.General{Rows: nu, Cols: w, Stride: dim, Data: qs},
		blas32.General{Rows: n, Cols: w, Stride: dim, Data: d.eout[:n*dim]},
		0, blas32.General{Rows: nu, Cols: n, Stride: n, Data: out})
}

// grow returns (*buf)[:n], growing it as append does: not to the exact
// size, since the catalogue grows by a few items between batches and an
// exact fit reallocated the whole buffer every time.
func grow[T any](buf *[]T, n int) []T {
	*buf = slices.Grow((*buf)[:0], n)
	return (*buf)[:n]
}

// rankPair is the rank of item among u's unconsumed items under the online
// network (as the probe's rank) and, up to 10 (all NDCG@10 needs), under ref
// in place of it. The state features and co-occurrence scores are shared,
// and the item tables are the current ones.
func (d *DQN) rankPair(ref *qnet, u *UserState, item int32) (live, other int) {
	d.scoreAll(u) // leaves the state in d.x and knn(s, ·) in d.knn
	live = order{score: d.scores}.rank(item, u.Consumed)
	if len(d.qRef) != d.cfg.Dim {
		d.qRef = make([]float32, d.cfg.Dim)
	}
	w := d.widthOf(d.armOf(u))
	d.scoreItems(d.qRef, ref.forward(d.x, d.qRef, &d.scr), w)
	d.refScores(d.qRef[:w], d.refMoved)
	d.blend(len(u.Recent))
	return live, order{score: d.scores}.rankUpTo(item, u.Consumed, 10)
}

// qOf is Q(s, a) for one item given q and α of the state.
func (d *DQN) qOf(q []float32, alpha float32, recent []int32, a int32) float32 {
	return d.qTD(q, a) + alpha*d.knnOf(recent, a)
}

// knnToNegatives writes knn(s, a) of every shared negative a into out.
func (d *DQN) knnToNegatives(recent []int32, out []float32) {
	clear(out)
	if d.cfg.NoKNN || len(out) == 0 { // no shared negatives: nothing to score
		return
	}
	w := 1.0
	for r := len(recent) - 1; r >= 0; r-- {
		y := recent[r]
		ny := d.co.nbrs[y]
		inv := w * d.co.norm(y)
		for j, it := range ny.item {
			for _, col := range d.negCol[it] {
				out[col] += float32(inv * ny.count[j] * d.co.norm(it))
			}
		}
		w *= d.cfg.Decay
	}
}

// knnNowAndNext writes knnOf of every candidate for tr's state into now
// and for its next state (the window nextWindow makes) into next, each
// equal to knnOf's bit for bit (the same terms, summed in the same order).
// The two states share all but one item, and every candidate of a row
// meets the same items, so each item's co-occurrence counts with the
// candidates are found once: by scanning its neighbours against a mark of
// the candidates when it has few (most items), else by one lookup per
// candidate, where knnOf would take a lookup per item and candidate, for
// each state.
func (d *DQN) knnNowAndNext(tr *transition, cands []int32, now, next []float32) {
	if d.cfg.NoKNN {
		clear(now)
		clear(next)
		return
	}
	k, c, recent := d.kernel, &d.co, tr.recent[:tr.n]
	if n := max(len(c.nbrs), len(d.bias)); len(k.knnMark) < n {
		k.knnMark = make([]int32, n)
	}
	for j, a := range cands {
		if k.knnMark[a] == 0 {
			k.knnMark[a] = int32(j + 1)
		}
	}
	// Row i of the counts is recent[i]'s, row len(recent) pos's.
	for i := range len(recent) + 1 {
		y := tr.pos
		if i < len(recent) {
			y = recent[i]
		}
		d.knnCounts(y, cands, k.knnCnt[i*len(cands):(i+1)*len(cands)], &k.knnFound[i])
	}
	drop := 0 // the next state drops the oldest item of a full window
	if len(recent) == d.cfg.Window {
		drop = 1
	}
	nr := len(recent)
	for j, a := range cands {
		if first := int(k.knnMark[a]) - 1; first != j { // a repeated candidate
			now[j], next[j] = now[first], next[first]
			continue
		}
		var sNow, sNext float64
		if k.knnFound[nr]&(1<<j) != 0 { // the next state's newest item, weight 1
			sNext += 1 * k.knnCnt[nr*len(cands)+j] * c.norm(tr.pos) * c.norm(a)
		}
		w, wNext := 1.0, d.cfg.Decay
		for r := nr - 1; r >= 0; r-- {
			if k.knnFound[r]&(1<<j) != 0 {
				y, cnt := recent[r], k.knnCnt[r*len(cands)+j]
				sNow += w * cnt * c.norm(y) * c.norm(a)
				if r >= drop {
					sNext += wNext * cnt * c.norm(y) * c.norm(a)
				}
			}
			w *= d.cfg.Decay
			wNext *= d.cfg.Decay
		}
		now[j], next[j] = float32(sNow), float32(sNext)
	}
	for _, a := range cands {
		k.knnMark[a] = 0
	}
}

// knnCounts writes y's co-occurrence count with each candidate into cnt
// and sets bit j of found where y neighbours candidate j (the candidates
// marked in the kernel's knnMark; a repeated one only at its first place).
func (d *DQN) knnCounts(y int32, cands []int32, cnt []float64, found *uint64) {
	nb, mark := &d.co.nbrs[y], d.kernel.knnMark
	*found = 0
	if len(nb.item) <= 8*len(cands) {
		for p, it := range nb.item {
			if m := mark[it]; m != 0 {
				cnt[m-1] = nb.count[p]
				*found |= 1 << (m - 1)
			}
		}
		return
	}
	for j, a := range cands {
		if p, ok := nb.at(a); ok && int(mark[a]) == j+1 {
			cnt[j] = nb.count[p]
			*found |= 1 << j
		}
	}
}

// knnOf is knn(s, a), or 0 in the NoKNN ablation.
func (d *DQN) knnOf(recent []int32, a int32) float32 {
	if d.cfg.NoKNN {
		return 0
	}
	return float32(d.co.scoreOf(recent, d.cfg.Decay, a))
}

// qTD is the part of Q the TD loss fits, less v(s): f(s)·e_a + b_a.
func (d *DQN) qTD(q []float32, a int32) float32 {
	row := d.erow(a)
	q = q[:len(row)]
	var s0, s1, s2, s3 float32
	j := 0
	for ; j+4 <= len(row); j += 4 {
		r, x := row[j:j+4:j+4], q[j:j+4:j+4]
		s0 += x[0] * r[0]
		s1 += x[1] * r[1]
		s2 += x[2] * r[2]
		s3 += x[3] * r[3]
	}
	for ; j < len(row); j++ {
		s0 += q[j] * row[j]
	}
	return d.bias[a] + ((s0 + s1) + (s2 + s3))
}

// trainRows runs the network's gradient steps on the cfg.Rows pending
// transitions, keeps them in the replay buffer, and syncs the target
// network every cfg.TargetSync such rounds.
func (d *DQN) trainRows() error {
	per := max(d.cfg.StepsPerBatch, 1)
	for range per {
		if err := d.step(d.pending); err != nil {
			return err
		}
	}
	for _, tr := range d.pending {
		if len(d.replay) < d.cfg.Replay {
			d.replay = append(d.replay, tr)
		} else {
			d.replay[d.replayNext] = tr
			d.replayNext = (d.replayNext + 1) % d.cfg.Replay
		}
	}
	d.pending = d.pending[:0]
	rounds := d.steps / int64(per)
	if rounds%int64(d.cfg.TargetSync) == 0 {
		d.target.copyFrom(d.net)
	}
	if d.ewc != nil && d.cfg.EWCEvery > 0 && rounds%int64(d.cfg.EWCEvery) == 0 {
		d.ewc.consolidate(d.netTensors())
	}
	return nil
}

// trainTable runs one SGD step of the ranking loss on a transition,
// updating only the item tables.
func (d *DQN) trainTable(tr *transition) {
	dim := d.cfg.Dim
	lr := float32(d.cfg.EmbLR)
	br := d.biasScale()
	nItems := int32(len(d.bias))
	if len(d.gq) != dim {
		d.gq = make([]float32, dim)
	}
	gq := d.gq
	recent := tr.recent[:tr.n]
	wts := d.features(recent, tr.types[:tr.n], d.x)
	d.net.forward(d.x, d.q, &d.scr)
	clear(gq)
	for k := range d.cfg.EmbNegatives + d.cfg.Hard {
		a := d.rng.Int32N(nItems)
		if k >= d.cfg.EmbNegatives {
			a = d.hardNegative(recent, tr.pos, nItems)
		}
		if a == tr.pos {
			continue
		}
		if d.wp != nil {
			d.nestedPair(tr.pos, a, lr, gq)
			continue
		}
		// The tables learn the ranking on their own, without the
		// co-occurrence term: two evidence sources learned apart,
		// mixed by the network's α(s).
		diff := d.qTD(d.q, tr.pos) - d.qTD(d.q, a)
		g := lr * float32(1/(1+math.Exp(float64(diff)))) // lr·σ(-diff)
		// With tiers the rows may differ in width (a row is zero past
		// its own): the common prefix, then each one's tail.
		pos, neg := d.erow(tr.pos), d.erow(a)
		m := min(len(pos), len(neg))
		{
			pos, neg, gq, q := pos[:m], neg[:m], gq[:m], d.q[:m]
			for j := range m {
				gq[j] += g * (pos[j] - neg[j])
				pos[j] += g * q[j]
				neg[j] -= g * q[j]
			}
		}
		for j := m; j < len(pos); j++ {
			gq[j] += g * pos[j]
			pos[j] += g * d.q[j]
		}
		for j := m; j < len(neg); j++ {
			gq[j] -= g * neg[j]
			neg[j] -= g * d.q[j]
		}
		d.bias[tr.pos] += g * br
		d.bias[a] -= g * br
	}
	// The state's embedding mean reaches q through the skip path.
	for k, item := range recent {
		row := d.inrow(item)
		for j := range row {
			row[j] += wts[k] * gq[j]
		}
	}
	if d.cfg.ContextNegatives > 0 {
		d.trainContext(recent, tr.pos, nItems)
	}
}

// trainContext ranks the chosen item's row above ContextNegatives uniform
// items' rows as seen from the input row of each item in the window, one
// BPR step per pair at ContextLR (item2vec's skip-gram with a ranking
// loss): the tables learn what follows what directly, item to item, not
// only through the window's mean.
func (d *DQN) trainContext(recent []int32, pos, nItems int32) {
	lr := float32(d.cfg.ContextLR)
	for _, c := range recent {
		if c == pos {
			continue
		}
		for range d.cfg.ContextNegatives {
			a := d.rng.Int32N(nItems)
			if a == pos || a == c {
				continue
			}
			contextPair(d.inrow(c), d.erow(pos), d.erow(a), lr)
		}
	}
}

// contextPair is one SGD step of -log σ(ctx·pos - ctx·neg) with step lr on
// three rows, which may differ in width (a row is zero past its own).
func contextPair(ctx, pos, neg []float32, lr float32) {
	mp, mn := min(len(ctx), len(pos)), min(len(ctx), len(neg))
	diff := dot32(ctx[:mp], pos[:mp]) - dot32(ctx[:mn], neg[:mn])
	g := lr * float32(1/(1+math.Exp(float64(diff)))) // lr·σ(-diff)
	if mp == len(ctx) && mn == len(ctx) {            // equal widths: no branch per value
		pos, neg := pos[:len(ctx)], neg[:len(ctx)]
		for j, c := range ctx {
			p, n := pos[j], neg[j]
			ctx[j] = c + g*(p-n)
			pos[j] = p + g*c
			neg[j] = n - g*c
		}
		return
	}
	for j := range max(mp, mn) {
		c, gc := ctx[j], float32(0)
		if j < mp {
			gc += pos[j]
			pos[j] += g * c
		}
		if j < mn {
			gc -= neg[j]
			neg[j] -= g * c
		}
		ctx[j] += g * gc
	}
}

// biasScale is the biases' step relative to the rows' (BiasLR / EmbLR):
// the ranking steps scale their bias updates by it.
func (d *DQN) biasScale() float32 { return float32(d.cfg.BiasLR / d.cfg.EmbLR) }

// The training step's engines (DQNConfig.Engine).
const (
	EngineKernel   = "kernel"
	EngineGorgonia = "gorgonia"
)

// step is one gradient step on exactly cfg.Rows transitions.
func (d *DQN) step(rows []transition) error {
	g := d.graph
	nItems := int32(len(d.bias))
	d.sampleNegatives(nItems)
	d.nextStates(rows)
	for r := range rows {
		d.fillRow(r, &rows[r], nItems)
	}
	bpr, td, err := d.run(g)
	if err != nil {
		return err
	}
	if math.IsNaN(float64(bpr)) || math.IsNaN(float64(td)) || math.IsInf(float64(bpr+td), 0) {
		return fmt.Errorf("dqn diverged at step %d (ranking loss %v, TD loss %v): lower the learning rates", d.steps, bpr, td)
	}
	d.lastBPR, d.lastTD = bpr, td
	d.steps++
	d.applyGradients()
	return nil
}

// sampleNegatives draws the step's shared negatives into the graph's
// inputs and maps each to its columns (negCol).
func (d *DQN) sampleNegatives(nItems int32) {
	g, dim := d.graph, d.cfg.Dim
	d.negs = d.negs[:0]
	for range d.cfg.Negatives {
		d.negs = append(d.negs, d.rng.Int32N(nItems))
	}
	for j, a := range d.negs {
		d.putRow(g.Eneg[j*dim:(j+1)*dim], a)
		g.Bneg[j] = d.bias[a]
	}
	// negCol maps an item to its negative columns, so each row's knn to all
	// negatives costs one pass over its recent items' neighbours.
	d.negCol = grow(&d.negCol, int(nItems))
	for _, a := range d.negs {
		d.negCol[a] = d.negCol[a][:0]
	}
	for j, a := range d.negs {
		d.negCol[a] = append(d.negCol[a], int32(j))
	}
}

// fillRow writes transition tr into row r of the graph's inputs: its
// state, its item, its per-row negatives (drawn now) and its TD target.
func (d *DQN) fillRow(r int, tr *transition, nItems int32) {
	g, dim, in, nn := d.graph, d.cfg.Dim, d.in, d.cfg.Negatives
	recent := tr.recent[:tr.n]
	d.features(recent, tr.types[:tr.n], g.X[r*in:(r+1)*in])
	d.putRow(g.Epos[r*dim:(r+1)*dim], tr.pos)
	g.Bpos[r] = d.bias[tr.pos]
	g.KnnPos[r] = d.knnOf(recent, tr.pos)
	d.knnToNegatives(recent, g.KnnNeg[r*nn:(r+1)*nn])
	nh := d.cfg.Hard + d.cfg.RowUniform
	for j := range nh {
		a := d.rng.Int32N(nItems)
		if j < d.cfg.Hard {
			a = d.hardNegative(recent, tr.pos, nItems)
		}
		tr.hard[j] = a
		d.putRow(g.Ehard[(r*nh+j)*dim:(r*nh+j+1)*dim], a)
		g.Bhard[r*nh+j] = d.bias[a]
	}
	d.knnNowAndNext(tr, tr.hard[:nh], g.KnnHard[r*nh:(r+1)*nh], d.kernel.knnNext[r*nh:(r+1)*nh])
	g.Y[r] = d.tdTarget(r, tr, nh)
}

// nextWindow writes the window of tr's next state into next and types
// and returns its length: tr's items then its chosen one (as a click),
// the oldest dropped at the window's size.
func (d *DQN) nextWindow(tr *transition, next *[maxWindow]int32, types *[maxWindow]feedback.Type) int {
	nn0 := copy(next[:], tr.recent[:tr.n])
	if nn0 == d.cfg.Window {
		copy(next[:], next[1:nn0])
		copy(types[:], tr.types[1:tr.n])
		nn0--
	} else {
		copy(types[:], tr.types[:tr.n])
	}
	next[nn0], types[nn0] = tr.pos, feedback.Click
	return nn0 + 1
}

// nextStates runs the online and the target network over the next state
// of every row at once (one batch of matrix products each, not a forward
// pass per row), for tdTarget.
func (d *DQN) nextStates(rows []transition) {
	k := d.kernel
	var next [maxWindow]int32
	var types [maxWindow]feedback.Type
	for r := range rows {
		n := d.nextWindow(bootstrap(&rows[r]), &next, &types)
		d.features(next[:n], types[:n], k.nextX[r*d.in:(r+1)*d.in])
	}
	k.nextOn.run(d.net, k.nextX)
	k.nextTg.run(d.target, k.nextX)
}

// bootstrap is the transition whose next state tr's TD target
// bootstraps from: tr itself, or with NStep > 1 the last of the session's
// transitions its return sums.
func bootstrap(tr *transition) *transition {
	if tr.ns != nil {
		return &tr.ns.last
	}
	return tr
}

// tdTarget is the double DQN target of tr, row r of the step: the online
// network picks the best next action among the negatives, the target
// network values it (both over the next state, from nextStates). With
// NStep > 1 the target sums the session's rewards after tr and bootstraps
// from the state after the last of them, if the session went on.
func (d *DQN) tdTarget(r int, tr *transition, nh int) float32 {
	y, disc := tr.reward, float32(d.cfg.Gamma)
	boot := bootstrap(tr)
	if tr.ns != nil {
		y, disc = y+tr.ns.ret, tr.ns.disc
		if disc == 0 {
			return y
		}
	}
	var next [maxWindow]int32
	var nextTypes [maxWindow]feedback.Type
	nw := next[:d.nextWindow(boot, &next, &nextTypes)]
	dim, on, tg := d.cfg.Dim, &d.kernel.nextOn, &d.kernel.nextTg
	q, aOn := on.q[r*dim:(r+1)*dim], on.alpha[r]
	qt, vTg := tg.q[r*dim:(r+1)*dim], tg.value[r]
	best, bestQ := int32(-1), float32(math.Inf(-1))
	cands, knnNext := d.negs, []float32(nil)
	if len(cands) == 0 {
		cands = tr.hard[:nh]
		if boot == tr { // fillRow's knn(s', a) is of tr's own next state
			knnNext = d.kernel.knnNext[r*nh : (r+1)*nh]
		}
	}
	for j, a := range cands {
		if a == boot.pos {
			continue
		}
		var qa float32
		if knnNext != nil { // knn(s', a), from fillRow
			qa = d.qTD(q, a) + aOn*knnNext[j]
		} else {
			qa = d.qOf(q, aOn, nw, a)
		}
		if qa > bestQ {
			best, bestQ = a, qa
		}
	}
	if best >= 0 {
		y += disc * (vTg + d.qTD(qt, best))
	}
	return y
}

// run runs the step whose inputs g holds on the configured engine, and
// leaves its gradients in the kernel's (stepKernel.grads).
func (d *DQN) run(g *trainGraph) (bpr, td float32, err error) {
	if d.cfg.Engine != EngineGorgonia {
		bpr, td = d.kernel.run(d.net, &g.stepInputs)
		return bpr, td, nil
	}
	if bpr, td, err = g.run(); err != nil {
		return 0, 0, err
	}
	for i, w := range g.weights {
		gr := grad(w)
		copy(d.kernel.grads[i], gr)
		// gorgonia adds each run's gradient into the weight's dual value:
		// zero it, or the next step would see the sum of all.
		clear(gr)
	}
	return bpr, td, nil
}

// applyGradients moves the network's weights by Adam on the gradients of
// the step just run (with the EWC penalty when it is on).
func (d *DQN) applyGradients() {
	for i, l := range d.net.layers() {
		for k, w := range [][]float32{l.W, l.B} {
			gr := d.kernel.grads[weightIndex(i, k == 1)]
			if d.ewc != nil {
				d.ewc.observe(2*i+k, gr)
				d.ewc.penalize(2*i+k, w, gr)
			}
			d.opts[2*i+k].step(w, gr, 1)
		}
	}
}

// hardNegative draws an item that co-occurred with one of the session's
// items (a neighbour of a random recent item), other than pos; uniform when
// the session has no neighbours.
func (d *DQN) hardNegative(recent []int32, pos, nItems int32) int32 {
	for range 4 {
		if len(recent) == 0 {
			break
		}
		nb := d.co.nbrs[recent[d.rng.IntN(len(recent))]].item
		if len(nb) == 0 {
			continue
		}
		if a := nb[d.rng.IntN(len(nb))]; a != pos {
			return a
		}
	}
	return d.rng.Int32N(nItems)
}

// weightIndex maps layer i of the network (W, or B if bias) to its node in
// the training graph and its gradient in the kernel (stepKernel.grads):
// every layer, hidden ones then the q, α and v heads, contributes W then B.
func weightIndex(i int, bias bool) int {
	if bias {
		return 2*i + 1
	}
	return 2 * i
}

// lists serves each touched user: the best items by Q, with Boltzmann
// exploration over the top ExploreTop and the probability of each pick.
func (d *DQN) lists() []Recommendation {
	version := fmt.Sprintf("dqn-%d", d.batches)
	now := time.Now().UTC()
	out := make([]Recommendation, 0, len(d.batch.order))
	n := len(d.bias)
	dots, alphas := d.qBatch(d.batch.order)
	for i, u := range d.batch.order {
		d.expertScores(u.Recent)
		d.qScores(dots[i*n:(i+1)*n], alphas[i])
		d.blend(len(u.Recent))
		r := Recommendation{UserID: u.ID, SessionID: u.Session, Partition: u.Partition, Offset: u.Offset, ModelVersion: version, TS: now}
		if d.cfg.Temperature <= 0 {
			for _, it := range (order{score: d.scores}).top(d.cfg.TopN, u.Consumed, &d.heap) {
				r.Items = append(r.Items, Item{ItemID: d.items.ID(it), Score: d.scores[it], Propensity: 1})
			}
		} else {
			cand := order{score: d.scores}.top(max(d.cfg.ExploreTop, d.cfg.TopN), u.Consumed, &d.heap)
			r.Items = d.explore(cand)
		}
		out = append(out, r)
	}
	return out
}

// explore draws TopN of cand without replacement from softmax(Q/T) and
// logs each pick's probability given the picks before it.
func (d *DQN) explore(cand []int32) []Item {
	items := make([]Item, 0, d.cfg.TopN)
	if len(cand) == 0 {
		return items
	}
	top := d.scores[cand[0]]
	w := grow(&d.expW, len(cand))
	total := 0.0
	for i, c := range cand {
		w[i] = math.Exp((d.scores[c] - top) / d.cfg.Temperature)
		total += w[i]
	}
	if math.IsNaN(total) || math.IsInf(total, 0) || total <= 0 {
		// Non-finite scores: serve the candidates in order, uniformly likely.
		for _, c := range cand[:min(len(cand), d.cfg.TopN)] {
			items = append(items, Item{ItemID: d.items.ID(c), Score: 0, Propensity: 1 / float64(len(cand))})
		}
		return items
	}
	for len(items) < d.cfg.TopN && total > 0 {
		u := d.xrng.Float64() * total
		pick := len(w) - 1
		for i, wi := range w {
			if u < wi {
				pick = i
				break
			}
			u -= wi
		}
		for pick > 0 && w[pick] == 0 { // rounding landed on a drawn item
			pick--
		}
		if w[pick] == 0 {
			break
		}
		c := cand[pick]
		items = append(items, Item{ItemID: d.items.ID(c), Score: d.scores[c], Propensity: min(1, w[pick]/total)})
		total -= w[pick]
		w[pick] = 0
	}
	return items
}

// Checksum hashes every learned weight (network and item tables), for
// determinism checks.
func (d *DQN) Checksum() uint64 {
	h := fnv.New64a()
	put := func(s []float32) {
		var b [4]byte
		for _, v := range s {
			u := math.Float32bits(v)
			b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
			h.Write(b[:])
		}
	}
	for _, l := range d.net.layers() {
		put(l.W)
		put(l.B)
	}
	put(d.ein)
	put(d.eout)
	if d.tab != nil {
		put(d.tab.dense())
		for x := range int32(d.tab.len()) {
			put([]float32{float32(d.tab.width(x))})
		}
	}
	put(d.bias)
	for _, b := range d.mix.quality {
		for _, q := range b {
			put([]float32{float32(q)})
		}
	}
	return h.Sum64()
}

// TrainStats reports the losses of the last step and the steps taken.
func (d *DQN) TrainStats() (bpr, td float32, steps int64) { return d.lastBPR, d.lastTD, d.steps }
