package model

import (
	"fmt"
	"math"
)

// The scorers the DQN's served ranking mixes, in the order of the
// mixture's weights.
const (
	scorerNet   = iota // Q(s, a), the network's own score
	scorerKNN          // co-occurrence, as itemknn scores
	scorerSR           // sequential rules, as sr scores
	scorerPop          // recency popularity
	scorerTrend        // trending: recency popularity of the last few events
	nScorers
)

// mixBuckets are the state buckets the mixture weighs the scorers in
// separately (see mixBucket).
const mixBuckets = 3

// mixBucket is the bucket of a state of n recent items: a session's first
// item, its next few, and a longer history, whose best scorers differ.
func mixBucket(n int) int {
	switch {
	case n <= 1:
		return 0
	case n <= 4:
		return 1
	}
	return 2
}

// mixture weighs the scorers of the served ranking by their recent
// prequential quality, as exponentially weighted experts: every check
// (before an event is learned) each scorer's top-K either holds the item
// the user chose next or not; quality is the exponentially decayed mean of
// those hits, and a scorer's weight is proportional to exp(rate·quality).
// The served score of an item is Σ_i w_i·norm_i(a), each scorer's scores
// normalised over the items so that the mean item scores 0 and the best 1:
// the ranking follows the scorer that has recently been right, so it does
// not stay below the best of them for long. rate 0 keeps equal weights.
// The hit rates, and so the weights, are kept per state bucket
// (mixBucket): trust is learned per kind of state.
//
// On top, a gating head learns on the ranking loss: a log-gain per bucket
// and scorer multiplies the scorer's weight, moved at rate learn by a
// pairwise logistic loss of the chosen item against the served top-K (the
// items that compete with it for a place in the list). The hit rates say
// which scorer is right alone; the gains learn how to combine them.
type mixture struct {
	rate, memory float64
	learn        float64
	gain         [mixBuckets][nScorers]float64
	quality      [mixBuckets][nScorers]float64
	seen         [mixBuckets]int64 // checks per bucket, to unbias quality
	off          [nScorers]bool    // scorers left out (ablations)
	checks       int64             // events seen, to pick every every-th
}

// weights are the scorers' current weights in bucket b, summing to 1 over
// the scorers not left out. The hit rates are unbiased as Adam's moments
// are (divided by 1 - memory^checks), so that the first checks of a short
// log already count at their worth.
func (m *mixture) weights(b int) (w [nScorers]float64) {
	unbias := 1.0
	if m.seen[b] > 0 {
		unbias = 1 / (1 - math.Pow(m.memory, float64(m.seen[b])))
	}
	best := math.Inf(-1)
	for i, q := range m.quality[b] {
		if !m.off[i] {
			best = max(best, q)
		}
	}
	total := 0.0
	for i, q := range m.quality[b] {
		if !m.off[i] {
			w[i] = math.Exp(m.rate * (q - best) * unbias)
			total += w[i]
		}
	}
	for i := range w {
		w[i] /= total
	}
	return w
}

// served are the weights the served ranking uses in bucket b: the hit
// rates' weights times the learned gains.
func (m *mixture) served(b int) (w [nScorers]float64) {
	w = m.weights(b)
	for i := range w {
		w[i] *= math.Exp(m.gain[b][i])
	}
	return w
}

// flatGains are the gains, bucket by bucket.
func (m *mixture) flatGains() []float64 {
	out := make([]float64, 0, mixBuckets*nScorers)
	for _, b := range m.gain {
		out = append(out, b[:]...)
	}
	return out
}

// maxGain bounds the learned log-gains: no scorer's weight is moved by
// more than e^3 ≈ 20× either way.
const maxGain = 3

// learnGains moves bucket b's gains by one step of the pairwise logistic
// loss of pos against the items of top (the served top-K) under the
// scorers' normalised scores: shift and scale per scorer, scale holding
// the served weight.
func (m *mixture) learnGains(b int, parts [nScorers][]float64, scale [nScorers]float64, pos int32, top []int32) {
	served := func(a int32) (s float64) {
		for i, p := range parts {
			s += scale[i] * p[a]
		}
		return s
	}
	sp := served(pos)
	var grad [nScorers]float64
	n := 0
	for _, y := range top {
		if y == pos {
			continue
		}
		g := 1 / (1 + math.Exp(sp-served(y))) // σ(−Δ)
		for i, p := range parts {
			grad[i] += g * scale[i] * (p[pos] - p[y])
		}
		n++
	}
	if n == 0 {
		return
	}
	for i := range grad {
		if scale[i] != 0 {
			m.gain[b][i] = max(-maxGain, min(maxGain, m.gain[b][i]+m.learn*grad[i]/float64(n)))
		}
	}
}

// observe decays every scorer's quality in bucket b and credits the
// scorers whose top-K held the chosen item.
func (m *mixture) observe(b int, hit [nScorers]bool) {
	q := &m.quality[b]
	m.seen[b]++
	for i := range q {
		h := 0.0
		if hit[i] {
			h = 1
		}
		q[i] = m.memory*q[i] + (1-m.memory)*h
	}
}

// newMixture is the mixture cfg describes: NoNet leaves the network's score
// out, NoKNN co-occurrence, TrendHalfLife 0 the trending expert.
func newMixture(cfg DQNConfig) mixture {
	m := mixture{rate: cfg.MixRate, memory: cfg.MixMemory, learn: cfg.MixLearn}
	m.off[scorerNet], m.off[scorerKNN], m.off[scorerTrend] = cfg.NoNet, cfg.NoKNN, cfg.TrendHalfLife == 0
	return m
}

// recency is a recency popularity expert (pop and trend, at two
// half-lives): each event adds w to its item's weight, and w grows by
// 2^(1/halfLife) per event, so that an event's weight, relative to the
// newest's, halves every halfLife events.
type recency struct {
	score []float64
	w     float64
}

// add counts an event on x. It returns the factor it divided every
// weight by to rebase them before they overflow (1: none).
func (r *recency) add(x int32, halfLife float64) (rebased float64) {
	r.grow(int(x) + 1)
	if r.w == 0 {
		r.w = 1
	}
	r.score[x] += r.w
	r.w *= math.Exp2(1 / halfLife)
	if r.w <= 1e100 {
		return 1
	}
	f := r.w
	for i := range r.score {
		r.score[i] /= f
	}
	r.w = 1
	return f
}

// grow makes room for n items.
func (r *recency) grow(n int) {
	for len(r.score) < n {
		r.score = append(r.score, 0)
	}
}

// parts are the scorers' scores of every item, in the mixture's order,
// after components.
func (d *DQN) parts() [nScorers][]float64 {
	return [nScorers][]float64{d.scores, d.knn, d.sr, d.pop.score[:len(d.scores)], d.trend.score[:len(d.scores)]}
}

// expertScores fills d.knn and d.sr with the experts' scores of every item
// for the window recent (zero for an expert left out).
func (d *DQN) expertScores(recent []int32) {
	n := len(d.bias)
	d.knn, d.sr, d.scores = grow(&d.knn, n), grow(&d.sr, n), grow(&d.scores, n)
	d.pop.grow(n)
	d.trend.grow(n)
	if d.cfg.NoKNN {
		clear(d.knn)
	} else {
		d.co.score(recent, d.cfg.Decay, d.knn)
	}
	if d.cfg.Mix {
		d.rules.scoreRules(recent, d.cfg.SRDecay, d.sr)
	}
}

// blend replaces Q in d.scores with the mixture's score of every item for
// a state of n recent items, from Q and the experts' scores in d.knn and
// d.sr; without Mix the served score is Q.
func (d *DQN) blend(n int) {
	if !d.cfg.Mix {
		return
	}
	parts := d.parts()
	shift, scale := norms(parts, d.mix.served(mixBucket(n)))
	blendInto(d.scores, parts, shift, scale)
}

// blendInto writes into dst, item by item, the sum over scorers of
// scale_i × (score_i − shift_i), as Σ scale_i × score_i − Σ scale_i ×
// shift_i (the shifts' sum once per list: half the arithmetic per item).
// dst may be one of the parts: every item's parts are read before its sum
// is written. The five scorers are spelled out, their slices cut to dst's
// length first, so the loop runs without bounds checks (three times as
// fast as a loop over the scorers).
func blendInto(dst []float64, parts [nScorers][]float64, shift, scale [nScorers]float64) {
	n := len(dst)
	c := 0.0
	for i := range shift {
		c += scale[i] * shift[i]
	}
	p0, p1, p2, p3, p4 := parts[0][:n], parts[1][:n], parts[2][:n], parts[3][:n], parts[4][:n]
	s0, s1, s2, s3, s4 := scale[0], scale[1], scale[2], scale[3], scale[4]
	for a := range dst {
		dst[a] = s0*p0[a] + s1*p1[a] + s2*p2[a] + s3*p3[a] + s4*p4[a] - c
	}
}

// blendInto spells out five scorers: this fails to compile if there are
// more or fewer.
var _ = [1]struct{}{}[nScorers-5]

// norms are the shift and scale of each scorer's scores that make the
// mean item score 0 and the best w_i (scale 0: the scorer is left out, or
// scores every item the same).
func norms(parts [nScorers][]float64, w [nScorers]float64) (shift, scale [nScorers]float64) {
	for i, p := range parts {
		if w[i] == 0 {
			continue
		}
		mean, top := meanMax(p)
		if top > mean {
			shift[i], scale[i] = mean, w[i]/(top-mean)
		}
	}
	return shift, scale
}

// meanMax is the mean and the largest value of s (scores hold no NaN). It
// passes over every item once per scorer per served list and check: the
// first multiple of 16 of s in sixteen lanes (sumMax16: an AVX2 kernel
// where the CPU has it: 7.1 times the plain loop's speed), the rest
// one by one.
func meanMax(s []float64) (mean, top float64) {
	top = math.Inf(-1)
	n16 := len(s) &^ 15
	sum := 0.0
	if n16 > 0 {
		sum, top = sumMax16(s[:n16])
	}
	for _, v := range s[n16:] {
		sum += v
		if v > top {
			top = v
		}
	}
	return sum / float64(max(len(s), 1)), top
}

// sumMax16Go is sumMax16 in Go: lane k sums and maximises s[i] for i ≡ k
// (mod 16), and the lanes' sums combine in the kernel's order.
func sumMax16Go(s []float64) (sum, top float64) {
	var l, m [16]float64
	for k := range m {
		m[k] = math.Inf(-1)
	}
	for i := 0; i+16 <= len(s); i += 16 {
		for k, v := range s[i : i+16 : i+16] {
			l[k] += v
			if v > m[k] {
				m[k] = v
			}
		}
	}
	var a [4]float64
	for k := range a {
		a[k] = (l[k] + l[4+k]) + (l[8+k] + l[12+k])
	}
	top = m[0]
	for _, v := range m[1:] {
		if v > top {
			top = v
		}
	}
	return (a[0] + a[2]) + (a[1] + a[3]), top
}

// checkMixture is the mixture's prequential check of every MixEvery-th
// event, before it is learned: which scorers' top TopN for u hold item,
// the item u chose (unknown or consumed items are not checked).
func (d *DQN) checkMixture(u *UserState, id string) {
	if !d.cfg.Mix || d.cfg.MixRate == 0 {
		return
	}
	d.mix.checks++
	if d.mix.checks%int64(d.cfg.MixEvery) != 0 {
		return
	}
	item, known := d.items.Lookup(id)
	if !known {
		return
	}
	if _, seen := u.Consumed[item]; seen {
		return
	}
	d.components(u)
	var hit [nScorers]bool
	for i, p := range d.parts() {
		hit[i] = order{score: p}.rankUpTo(item, u.Consumed, d.cfg.TopN) < d.cfg.TopN
	}
	b := mixBucket(len(u.Recent))
	d.mix.observe(b, hit)
	if d.mix.learn > 0 {
		d.learnGains(b, item, u.Consumed)
	}
}

// learnGains trains bucket b's gains on the choice of item: against the
// top TopN of the ranking served before it (d.knn, d.sr and d.scores hold
// the components).
func (d *DQN) learnGains(b int, item int32, consumed map[int32]struct{}) {
	parts := d.parts()
	_, scale := norms(parts, d.mix.served(b))
	s := grow(&d.blendBuf, len(d.scores))
	blendInto(s, parts, [nScorers]float64{}, scale) // a shift moves no item's rank
	top := order{score: s}.top(d.cfg.TopN, consumed, &d.heap)
	d.mix.learnGains(b, parts, scale, item, top)
}

// bits are the float64 bits of s.
func bits(s []float64) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(math.Float64bits(v))
	}
	return out
}

// readPop reads the recency expert mixRows wrote, if the snapshot has it
// (readMix checked its size).
func readPop(s *Snapshot) recency { return readRecency(s, "mix.pop.bits") }

// recencyRow is the snapshot row of a recency expert's weights and scale,
// as float64 bits (readRecency reads it).
func recencyRow(name string, score []float64, w float64) row {
	return row{name: name, shape: []int64{int64(len(score) + 1)}, i64: append(bits(score), int64(math.Float64bits(w)))}
}

// readRecency reads a recency expert's weights and scale from row name
// (empty if the snapshot has none).
func readRecency(s *Snapshot, name string) recency {
	p := s.rows[name].i64
	if len(p) == 0 {
		return recency{}
	}
	r := recency{score: make([]float64, len(p)-1)}
	for i, v := range p[:len(p)-1] {
		r.score[i] = math.Float64frombits(uint64(v))
	}
	r.w = math.Float64frombits(uint64(p[len(p)-1]))
	return r
}

// mixRows are the mixture's learned state and what this replica learned
// itself of the sequential rules (sr) and the recency popularity (pop, in
// the model's scale), and the trending expert, for snapshots. The
// trending expert is not merged over replicas: an event in a peer's
// snapshot is older than its half-life (tens of events) by the time it is
// merged, so it would weigh nothing; each replica keeps its own. The hit
// rates and the rules' weights (sums of 1/g) are kept as float64 bits, so
// that a restored model continues bit for bit; the rules' CSR rows (sr.*)
// carry their structure.
func (d *DQN) mixRows(sr csr64, pop []float64) []row {
	q := make([]int64, 0, mixBuckets*nScorers)
	for _, b := range d.mix.quality {
		for _, v := range b {
			q = append(q, int64(math.Float64bits(v)))
		}
	}
	rows := []row{
		{name: "mix.quality", shape: []int64{mixBuckets, nScorers}, i64: q},
		{name: "mix.checks", shape: []int64{1}, i64: []int64{d.mix.checks}},
		{name: "mix.seen", shape: []int64{mixBuckets}, i64: d.mix.seen[:]},
		{name: "mix.gain.bits", shape: []int64{mixBuckets, nScorers}, i64: bits(d.mix.flatGains())},
		{name: "sr.count.bits", shape: []int64{int64(len(sr.count))}, i64: bits(sr.count)},
		{name: "sr.counts.bits", shape: []int64{int64(len(sr.counts))}, i64: bits(sr.counts)},
		recencyRow("mix.pop.bits", pop, d.pop.w),
		recencyRow("mix.trend.bits", d.trend.score, d.trend.w),
	}
	return append(rows, sr.table().rows("sr")...)
}

// readQuality reads the mixture's hit rates and checks from a snapshot
// (zero for one from before them; readMix checked their sizes).
func readQuality(s *Snapshot) (m mixture) {
	q, c, seen := s.rows["mix.quality"].i64, s.rows["mix.checks"].i64, s.rows["mix.seen"].i64
	k := scorersIn(len(q))
	if k == 0 || len(c) != 1 || len(seen) != mixBuckets {
		return m
	}
	for i, v := range q {
		m.quality[i/k][i%k] = math.Float64frombits(uint64(v))
	}
	m.checks = c[0]
	copy(m.seen[:], seen)
	if g := s.rows["mix.gain.bits"].i64; len(g) == len(q) {
		for i, v := range g {
			m.gain[i/k][i%k] = math.Float64frombits(uint64(v))
		}
	}
	return m
}

// oldScorers is how many scorers snapshots from before the trending expert
// weigh: the first ones of today's order.
const oldScorers = scorerTrend

// scorersIn is the number of scorers per bucket of a snapshot's mixture
// rows of n values: nScorers, or oldScorers for a snapshot from before the
// trending expert (whose weight there starts from nothing); 0 if neither.
func scorersIn(n int) int {
	switch n {
	case mixBuckets * nScorers:
		return nScorers
	case mixBuckets * oldScorers:
		return oldScorers
	}
	return 0
}

// average averages the hit rates and the gains with another replica's,
// whose weigh w:
// every replica trusts the scorers by what all of them saw. The checks
// per bucket, which unbias the rates, are the larger of the two.
func (m *mixture) average(o mixture, w float64) {
	for b := range m.quality {
		if o.seen[b] == 0 {
			continue
		}
		for i := range m.quality[b] {
			m.quality[b][i] = (1-w)*m.quality[b][i] + w*o.quality[b][i]
			m.gain[b][i] = (1-w)*m.gain[b][i] + w*o.gain[b][i]
		}
		m.seen[b] = max(m.seen[b], o.seen[b])
	}
}

// readMix reads what mixRows wrote from a snapshot of n items: the
// mixture's learned state (quality, checks, seen) and the sequential rules;
// a snapshot from before them restores an empty mixture state.
func readMix(s *Snapshot, n int) (m mixture, rules cooc, err error) {
	if _, ok := s.rows["mix.quality"]; !ok {
		return m, rules, nil
	}
	q, c, seen := s.rows["mix.quality"].i64, s.rows["mix.checks"].i64, s.rows["mix.seen"].i64
	if scorersIn(len(q)) == 0 || len(c) != 1 || len(seen) != mixBuckets {
		return m, rules, fmt.Errorf("snapshot's mix.quality, mix.checks and mix.seen hold %d, %d and %d values, want %d (or %d), 1 and %d",
			len(q), len(c), len(seen), mixBuckets*nScorers, mixBuckets*oldScorers, mixBuckets)
	}
	m = readQuality(s)
	t, err := readTable(s, "sr", n)
	if err != nil {
		return m, rules, err
	}
	if p := s.rows["mix.pop.bits"].i64; len(p) == 0 || len(p) > n+1 {
		return m, rules, fmt.Errorf("snapshot's mix.pop.bits holds %d values, want 1 to %d", len(p), n+1)
	}
	if p, ok := s.rows["mix.trend.bits"]; ok && (len(p.i64) == 0 || len(p.i64) > n+1) {
		return m, rules, fmt.Errorf("snapshot's mix.trend.bits holds %d values, want 1 to %d", len(p.i64), n+1)
	}
	counts, weights := s.rows["sr.count.bits"].i64, s.rows["sr.counts.bits"].i64
	if len(counts) != len(t.count) || len(weights) != len(t.counts) {
		return m, rules, fmt.Errorf("snapshot's sr.count.bits and sr.counts.bits do not match its sr table")
	}
	for k := range t.count {
		rules.grow(int32(k))
		rules.count[k] = math.Float64frombits(uint64(counts[k]))
		for j := t.offsets[k]; j < t.offsets[k+1]; j++ {
			rules.grow(t.nbr[j])
			if rules.nbrs[k].bump(t.nbr[j], math.Float64frombits(uint64(weights[j]))) {
				rules.pairs++
			}
		}
	}
	return m, rules, nil
}
