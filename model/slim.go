package model

import (
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Capacity per session (issue 16). With DQNConfig.Nested the item
// embeddings are trained to rank at several nested widths, each a prefix
// of the full one (Matryoshka): the ranking loss of every prefix is added
// to the full width's. Scoring the items against the first w values of
// the state's vector then costs w/Dim of the full product, which is most
// of a list's serving work, and a widthPolicy picks, for each session as
// it starts, the width its lists are scored at.

// The width policies (DQNConfig.WidthPolicy).
const (
	WidthFull      = "full"      // every session at the full width
	WidthNarrowest = "narrowest" // every session at the narrowest
	WidthLearned   = "learned"   // per session, by the learned policy
)

// WidthPolicies lists the values DQNConfig.WidthPolicy accepts.
var WidthPolicies = []string{WidthFull, WidthNarrowest, WidthLearned}

// A session's context is its user's history size and the time since the
// user's last event, in buckets.
const (
	historyBuckets = 5 // no history, 1–4, 5–19, 20–99, 100+ items
	gapBuckets     = 3 // under an hour, under a day, longer
	widthContexts  = historyBuckets * gapBuckets
	maxArms        = 8
	// widthMemory is the weight a context's past probes keep at each new
	// one (a memory of about 2,000 probes), so the policy follows drift.
	widthMemory = 0.9995
	// widthWarmup is the probes a context needs before the policy trusts
	// its estimates; until then its sessions are served at full width.
	widthWarmup = 30
)

// widthContext is the context bucket of a session of a user with history
// items consumed, starting gap after the user's last event.
func widthContext(history int, gap time.Duration) int {
	h := 0
	switch {
	case history >= 100:
		h = 4
	case history >= 20:
		h = 3
	case history >= 5:
		h = 2
	case history >= 1:
		h = 1
	}
	g := 0
	switch {
	case gap >= 24*time.Hour:
		g = 2
	case gap >= time.Hour:
		g = 1
	}
	return h*gapBuckets + g
}

// widthPolicy chooses the width each session is served at and keeps the
// serving work's bookkeeping. The learned policy is a contextual bandit
// over the arms (the nested widths and the full one) whose reward is a
// session's hit rate at its width minus λ × the width's serving FLOPs
// relative to the full width's. Its feedback is not the served arm's
// alone: one in every Every scorable events is ranked at every width (one
// full-width product, its prefix sums giving the narrower ones), so each
// context's estimates are paired across the arms on the same events, and
// what a narrower width loses is measured, not guessed from noisy
// sessions. Those probes' extra work is counted in the FLOPs.
type widthPolicy struct {
	kind   string
	widths []int // the arms, ascending; the last is the full width
	lambda float64
	every  int
	seen   int64 // scorable events, for the probes' sampling
	// hits are the probes' discounted hits per context and arm, n their
	// discounted count per context.
	hits [widthContexts][maxArms]float64
	n    [widthContexts]float64
	// Bookkeeping of the serving work: the lists scored at each arm, and
	// the multiply-adds of every scoring (lists and probes).
	lists [maxArms]int64
	flops float64
	calls int64
}

func newWidthPolicy(cfg DQNConfig) *widthPolicy {
	if len(cfg.Nested) == 0 {
		return nil
	}
	widths := append(append([]int(nil), cfg.Nested...), cfg.Dim)
	return &widthPolicy{kind: cfg.WidthPolicy, widths: widths, lambda: cfg.WidthLambda, every: cfg.WidthProbeEvery}
}

// choose is the arm of a session starting in context c.
func (p *widthPolicy) choose(c int) uint8 {
	full := uint8(len(p.widths) - 1)
	switch p.kind {
	case WidthNarrowest:
		return 0
	case WidthLearned:
	default:
		return full
	}
	if p.n[c] < widthWarmup {
		return full
	}
	best, bestV := full, math.Inf(-1)
	for a, w := range p.widths {
		v := p.hits[c][a]/p.n[c] - p.lambda*float64(w)/float64(p.widths[len(p.widths)-1])
		if v > bestV {
			best, bestV = uint8(a), v
		}
	}
	return best
}

// observe adds one probe in context c: hit[a] says whether arm a's list
// held the event's item.
func (p *widthPolicy) observe(c int, hit []bool) {
	p.n[c] = p.n[c]*widthMemory + 1
	for a, h := range hit {
		p.hits[c][a] *= widthMemory
		if h {
			p.hits[c][a]++
		}
	}
}

// count adds lists scorings of nItems items at arm's width to the
// bookkeeping, with netFlops for each state's forward pass.
func (p *widthPolicy) count(arm uint8, lists, nItems, netFlops int) {
	p.lists[arm] += int64(lists)
	p.calls += int64(lists)
	p.flops += float64(lists * (netFlops + 2*p.widths[arm]*nItems))
}

// WidthStats is the serving work of a DQN's lists (issue 16): the mean
// FLOPs of a list's scoring (the state's forward pass and the product of
// its vector with the item table at the list's width, the width probes'
// extra work included) and the share of lists served at each width.
type WidthStats struct {
	FLOPsPerList float64
	Widths       []int
	Share        []float64
}

// WidthStats reports the serving work so far; ok is false without nested
// widths.
func (d *DQN) WidthStats() (s WidthStats, ok bool) {
	p := d.wp
	if p == nil {
		return s, false
	}
	s.Widths = append([]int(nil), p.widths...)
	total := int64(0)
	for _, n := range p.lists[:len(p.widths)] {
		total += n
	}
	for _, n := range p.lists[:len(p.widths)] {
		s.Share = append(s.Share, float64(n)/math.Max(1, float64(total)))
	}
	s.FLOPsPerList = p.flops / math.Max(1, float64(total))
	return s, true
}

// netFlops is the FLOPs of one state's forward pass through the network.
func (d *DQN) netFlops() int { return 2 * d.net.params() }

// armOf is the arm u's lists are served at: the full width without a
// policy.
func (d *DQN) armOf(u *UserState) uint8 {
	if d.wp == nil {
		return 0
	}
	return u.arm
}

// widthOf is the width of an arm.
func (d *DQN) widthOf(arm uint8) int {
	if d.wp == nil {
		return d.cfg.Dim
	}
	return d.wp.widths[arm]
}

// startSession chooses the arm of the session u starts at time ts, the
// user's last event having been at last (0: none).
func (d *DQN) startSession(u *UserState, last, ts int64) {
	gap := time.Duration(0)
	if last > 0 && ts > last {
		gap = time.Duration(ts-last) * time.Microsecond
	}
	u.wctx = uint8(widthContext(len(u.Consumed), gap))
	u.arm = d.wp.choose(int(u.wctx))
}

// probeWidths ranks item, which u is about to consume, at every arm for
// u's state: the policy's paired feedback. The item products of the arms
// are one full-width product, accumulated prefix by prefix.
func (d *DQN) probeWidths(u *UserState, item int32) {
	p := d.wp
	alpha := d.state(u)
	n := len(d.bias)
	dots := grow(&d.dotBuf, n)
	var hit [maxArms]bool
	from := 0
	for a, w := range p.widths {
		d.dotsRange(d.q, dots, from, w, a > 0)
		from = w
		d.qScores(dots, alpha)
		d.blend(len(u.Recent))
		hit[a] = order{score: d.scores}.rankUpTo(item, u.Consumed, d.cfg.TopN) < d.cfg.TopN
	}
	p.observe(int(u.wctx), hit[:len(p.widths)])

	// The probe's product is the full width's; the list at u's own width
	// is counted where it is scored, so only the difference is added.
	p.flops += float64(2 * (p.widths[len(p.widths)-1] - p.widths[u.arm]) * n)
}

// dotsRange writes (or, with add, adds) into out the product of every
// item's embedding values from to to (a range of columns) with q's.
func (d *DQN) dotsRange(q, out []float32, from, to int, add bool) {
	beta := float32(0)
	if add {
		beta = 1
	}
	if d.tab != nil {
		d.tab.dotsRange(q, out, from, to, beta, &d.tierBuf)
		return
	}
	n, dim := len(d.bias), d.cfg.Dim
	if from >= to {
		if !add {
			clear(out[:n])
		}
		return
	}
	rowDots(d.eout[:n*dim], dim, q, from, to, beta, out[:n])
}

// rowDots sets out[i] to beta·out[i] plus the product of row i of e (rows
// stride values apart, len(out) of them) with q, over columns from to to:
// gonum's Sgemv, or, with beta 0, an assembly kernel where the CPU has
// AVX2 and FMA: dots64 for whole rows of 64 (1.43x Sgemv here;
// BenchmarkDots64), dots for any other (a narrow tier's rows, a nested
// width's columns; BenchmarkDots).
func rowDots(e []float32, stride int, q []float32, from, to int, beta float32, out []float32) {
	n := len(out)
	if n == 0 {
		return
	}
	if beta == 0 {
		if from == 0 && to == 64 && stride == 64 && dots64(e[:n*64], q[:64], out) {
			return
		}
		if dots(e[from:], stride, to-from, q[from:to], out) {
			return
		}
	}
	blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: n, Cols: to - from, Stride: stride, Data: e[from : (n-1)*stride+to]},
		blas32.Vector{N: to - from, Inc: 1, Data: q[from:to]}, beta, blas32.Vector{N: n, Inc: 1, Data: out})
}

// nestedPair is one SGD step of the ranking loss of pos above neg at
// every nested width (cfg.Nested, then the full one): the prefix up to
// each width is scored on its own, as that width serves it, and the
// narrower widths' losses weigh cfg.NestedWeight against the full one's 1.
// Rows narrower than a prefix (tiers) are zero past their width. gq
// accumulates the gradient of the state's vector.
func (d *DQN) nestedPair(posX, negX int32, lr float32, gq []float32) {
	widths, q := d.wp.widths, d.q
	pos, neg := d.erow(posX), d.erow(negX)
	at := func(r []float32, j int) float32 {
		if j < len(r) {
			return r[j]
		}
		return 0
	}
	var seg, g [maxArms]float32
	from := 0
	for s, to := range widths {
		var acc float32
		for j := from; j < to; j++ {
			acc += q[j] * (at(pos, j) - at(neg, j))
		}
		seg[s], from = acc, to
	}
	diff, gb := d.bias[posX]-d.bias[negX], float32(0)
	last := len(widths) - 1
	for m := range widths {
		diff += seg[m]
		g[m] = lr * float32(1/(1+math.Exp(float64(diff)))) // lr·σ(-diff)
		if m < last {
			g[m] *= float32(d.cfg.NestedWeight)
		}
		gb += g[m]
	}
	// Column j is in every prefix at least as wide as its segment's end:
	// its step is the sum of those prefixes' steps.
	c := float32(0)
	for s := last; s >= 0; s-- {
		c += g[s]
		lo := 0
		if s > 0 {
			lo = widths[s-1]
		}
		for j := lo; j < widths[s]; j++ {
			gq[j] += c * (at(pos, j) - at(neg, j))
			if j < len(pos) {
				pos[j] += c * q[j]
			}
			if j < len(neg) {
				neg[j] -= c * q[j]
			}
		}
	}
	gb *= d.biasScale()
	d.bias[posX] += gb
	d.bias[negX] -= gb
}

// checkNested checks nested, nested_weight and the width policy's keys.
func checkNested(errs []error, c DQNConfig) []error {
	for i, w := range c.Nested {
		if w <= 0 || w >= c.Dim || i > 0 && w <= c.Nested[i-1] {
			return append(errs, optionErr("nested", "widths must be ascending, positive and below dim %d, got %v", c.Dim, c.Nested))
		}
	}
	if len(c.Nested) >= maxArms {
		errs = append(errs, optionErr("nested", "at most %d widths, got %d", maxArms-1, len(c.Nested)))
	}
	if !(c.NestedWeight >= 0) {
		errs = append(errs, optionErr("nested_weight", "must not be negative, got %v", c.NestedWeight))
	}
	known := false
	for _, k := range WidthPolicies {
		known = known || c.WidthPolicy == k
	}
	if !known {
		errs = append(errs, optionErr("width_policy", "must be one of %v, got %q", WidthPolicies, c.WidthPolicy))
	}
	if !(c.WidthLambda >= 0) {
		errs = append(errs, optionErr("width_lambda", "must not be negative, got %v", c.WidthLambda))
	}
	if c.WidthProbeEvery < 1 {
		errs = append(errs, optionErr("width_probe_every", "must be at least 1, got %d", c.WidthProbeEvery))
	}
	return errs
}

// widthRows are the width policy's state in a snapshot: what it learned
// and its bookkeeping (none without nested widths).
func (d *DQN) widthRows() []row {
	p := d.wp
	if p == nil {
		return nil
	}
	k := len(p.widths)
	hits := make([]float64, 0, widthContexts*k)
	for c := range p.hits {
		hits = append(hits, p.hits[c][:k]...)
	}
	return []row{
		{name: "width.widths", shape: []int64{int64(k)}, i64: toI64(p.widths)},
		{name: "width.hits.bits", shape: []int64{widthContexts, int64(k)}, i64: bits(hits)},
		{name: "width.n.bits", shape: []int64{widthContexts}, i64: bits(p.n[:])},
		{name: "width.lists", shape: []int64{int64(k)}, i64: slices.Clone(p.lists[:k])},
		{name: "width.work", shape: []int64{3}, i64: []int64{p.seen, p.calls, int64(math.Float64bits(p.flops))}},
	}
}

// readWidths reads a snapshot's width policy state, nil when the snapshot
// has none or its widths are not the model's: a policy of other widths
// tells nothing about these, and the model's starts afresh.
func (d *DQN) readWidths(s *Snapshot) *widthPolicy {
	p := d.wp
	if p == nil {
		return nil
	}
	k := len(p.widths)
	ws, hits, n, lists, work := s.rows["width.widths"].i64, s.rows["width.hits.bits"].i64, s.rows["width.n.bits"].i64, s.rows["width.lists"].i64, s.rows["width.work"].i64
	if !slices.Equal(ws, toI64(p.widths)) || len(hits) != widthContexts*k || len(n) != widthContexts || len(lists) != k || len(work) != 3 {
		return nil
	}
	o := &widthPolicy{kind: p.kind, widths: p.widths, lambda: p.lambda, every: p.every}
	for i, v := range hits {
		o.hits[i/k][i%k] = math.Float64frombits(uint64(v))
	}
	for c, v := range n {
		o.n[c] = math.Float64frombits(uint64(v))
	}
	copy(o.lists[:], lists)
	o.seen, o.calls, o.flops = work[0], work[1], math.Float64frombits(uint64(work[2]))
	return o
}

// restoreWidths sets the width policy's state from a snapshot, or starts
// it afresh (readWidths).
func (d *DQN) restoreWidths(s *Snapshot) {
	if d.wp == nil {
		return
	}
	if o := d.readWidths(s); o != nil {
		d.wp = o
		return
	}
	d.wp = newWidthPolicy(d.cfg)
}

// average averages the policy's estimates with another replica's, whose
// weigh w, so every replica picks widths by what all of them measured.
// The bookkeeping stays the replica's own.
func (p *widthPolicy) average(o *widthPolicy, w float64) {
	for c := range p.hits {
		p.n[c] = (1-w)*p.n[c] + w*o.n[c]
		for a := range p.widths {
			p.hits[c][a] = (1-w)*p.hits[c][a] + w*o.hits[c][a]
		}
	}
}

func toI64(xs []int) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return out
}
