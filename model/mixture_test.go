package model

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// The mixture moves its weight to the scorer whose top-K keeps holding the
// chosen item; rate 0 keeps equal weights, and a scorer left out has none.
func TestMixtureFavoursTheScorerThatIsRight(t *testing.T) {
	m := mixture{rate: 20, memory: 0.9}
	for range 100 {
		m.observe(0, [nScorers]bool{scorerSR: true})
	}
	sum := func(w [nScorers]float64) (s float64) {
		for _, v := range w {
			s += v
		}
		return s
	}
	w := m.weights(0)
	if w[scorerSR] < 0.99 || math.Abs(sum(w)-1) > 1e-12 {
		t.Fatalf("weights %v after sr alone was right, want nearly all on sr, summing to 1", w)
	}
	if w := m.weights(1); w[scorerSR] != w[scorerKNN] {
		t.Fatalf("weights %v in another state bucket, want them untouched (equal)", w)
	}
	m.rate = 0
	if w := m.weights(0); w[scorerNet] != w[scorerSR] || math.Abs(w[scorerKNN]-1.0/nScorers) > 1e-12 {
		t.Fatalf("weights %v at rate 0, want equal", w)
	}
	m.off[scorerNet] = true
	if w := m.weights(0); w[scorerNet] != 0 || math.Abs(w[scorerKNN]-1.0/(nScorers-1)) > 1e-12 {
		t.Fatalf("weights %v with the network left out, want 0 and equal for the experts", w)
	}
}

// directional is a log where order matters: users of the first kind
// consume A then B, twice as many of the second kind C then A, so that A's
// strongest co-occurrence is C, while what follows A is always B.
func directional(users int) []feedback.Located {
	var evs []feedback.Located
	for u := range users {
		p := u % 5
		first, second := fmt.Sprint("A", p), fmt.Sprint("B", p)
		if u%3 != 0 {
			first, second = fmt.Sprint("C", p), fmt.Sprint("A", p)
		}
		at := time.Unix(int64(2*u), 0)
		for k, it := range []string{first, second} {
			evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", u), SessionID: "s", ItemID: it, Type: feedback.Click, TS: at.Add(time.Duration(k) * time.Second)}})
		}
	}
	return evs
}

// On a log where the sequential rules are always right after A and
// co-occurrence is wrong, the DQN's prequential checks rate sr above knn,
// the mixture weighs it more, and the served ranking puts B first after A
// although co-occurrence puts C first; trusting co-occurrence instead
// serves C first.
func TestDQNMixtureFollowsTheExpertThatIsRight(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows, cfg.TopN, cfg.MixEvery, cfg.Temperature = 64, 1, 1, 0
	d := newDQN(t, cfg)
	for _, b := range chunks(directional(600), 64) {
		learn(t, d, b...)
	}
	if q := d.mix.quality[mixBucket(1)]; q[scorerSR] <= q[scorerKNN] {
		t.Fatalf("hit rates %v: sr not above knn", q)
	}
	if w := d.mix.weights(mixBucket(1)); w[scorerSR] <= w[scorerKNN] || w[scorerSR] <= w[scorerNet] {
		t.Fatalf("weights %v: sr not the heaviest", w)
	}
	u := &UserState{ID: "new", Consumed: map[int32]struct{}{}}
	a := d.items.Add("A0")
	u.Recent, u.RecentTypes, u.Consumed[a] = []int32{a}, []feedback.Type{feedback.Click}, struct{}{}
	d.components(u)
	if top := d.items.ID(order{score: d.knn}.top(1, u.Consumed, &d.heap)[0]); top != "C0" {
		t.Fatalf("co-occurrence's first item after A0 is %s, want C0 (the log is not what the test needs)", top)
	}
	served := func() string {
		d.components(u)
		d.blend(len(u.Recent))
		return d.items.ID(order{score: d.scores}.top(1, u.Consumed, &d.heap)[0])
	}
	if top := served(); top != "B0" {
		t.Fatalf("the served first item after A0 is %s, want B0", top)
	}
	// The served ranking follows whichever scorer the mixture trusts.
	d.mix.quality[mixBucket(1)] = [nScorers]float64{scorerKNN: 1}
	if top := served(); top != "C0" {
		t.Fatalf("trusting co-occurrence, the served first item after A0 is %s, want C0", top)
	}
	// Every user consumes an A item: trusting popularity serves one.
	d.mix.quality[mixBucket(1)] = [nScorers]float64{scorerPop: 1}
	if top := served(); !strings.HasPrefix(top, "A") {
		t.Fatalf("trusting popularity, the served first item after A0 is %s, want an A item", top)
	}
}

// chunks splits evs into batches of n.
func chunks(evs []feedback.Located, n int) [][]feedback.Located {
	var out [][]feedback.Located
	for len(evs) > n {
		out, evs = append(out, evs[:n]), evs[n:]
	}
	return append(out, evs)
}

// Each ablation builds through Build under its name, takes out its part,
// and learns.
func TestAblationsBuildAndLearn(t *testing.T) {
	checks := map[string]func(c DQNConfig) bool{
		"dqn-noexperts": func(c DQNConfig) bool { return c.NoKNN && !c.Mix },
		"dqn-nonet":     func(c DQNConfig) bool { return c.Mix && c.NoNet && c.MixRate == 0 },
		"dqn-myopic":    func(c DQNConfig) bool { return c.Gamma == 0 },
	}
	for name, ablated := range checks {
		t.Run(name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.DQN.Rows = 64
			r, err := Build(name, opts)
			if err != nil {
				t.Fatal(err)
			}
			d := r.(*DQN)
			t.Cleanup(d.Close)
			if d.Name() != name || !ablated(d.cfg) || d.mix.off[scorerNet] != d.cfg.NoNet || d.mix.off[scorerKNN] != d.cfg.NoKNN {
				t.Fatalf("%s built as %s with %+v", name, d.Name(), d.cfg)
			}
			before := d.Checksum()
			out := learn(t, d, clicks(0, 200, 20, func(i int) int { return i % 17 })...)
			if _, _, steps := d.TrainStats(); steps == 0 || d.Checksum() == before || len(out) == 0 || len(out[0].Items) == 0 {
				t.Fatalf("%s took %d steps and served %v: it did not learn", name, steps, out)
			}
		})
	}
}

// The recency expert halves an event's weight every halfLife events, and
// keeps its order across a rebase.
func TestRecencyHalvesEveryHalfLife(t *testing.T) {
	var r recency
	r.add(0, 2)
	r.add(1, 2)
	r.add(2, 2)
	if got := r.score[0] / r.score[2]; math.Abs(got-0.5) > 1e-12 {
		t.Fatalf("an event two events older weighs %v of the newest, want 0.5", got)
	}
	for range 1000 { // past the rebase
		r.add(1, 2)
	}
	if r.w > 1e100 || r.score[1] <= r.score[2] || r.score[2] <= r.score[0] {
		t.Fatalf("after a rebase: w %v, scores %v", r.w, r.score)
	}
}

// Unbiased, the hit rates of a few checks already weigh the scorers as
// their hits do: after 3 checks in which popularity alone was right, it
// carries nearly all the weight (biased, 3 checks at memory 0.99 would
// leave the weights nearly equal).
func TestMixtureUnbiasesFewChecks(t *testing.T) {
	m := mixture{rate: 20, memory: 0.99}
	for range 3 {
		m.observe(0, [nScorers]bool{scorerPop: true})
	}
	if w := m.weights(0); w[scorerPop] < 0.99 {
		t.Fatalf("weights %v after 3 checks popularity alone won, want nearly all on it", w)
	}
}

// The gating head learns how to combine the scorers on the ranking loss:
// where sr puts the chosen item above its competitor and knn the other
// way round, sr's gain grows and knn's shrinks until the served ranking
// puts the chosen item first; bounded by maxGain; rate 0 learns nothing.
func TestMixtureGainsLearnTheRankingLoss(t *testing.T) {
	// Items 0 (chosen) and 1 (its competitor), 2 and 3 filler.
	var parts [nScorers][]float64
	parts[scorerNet] = []float64{0, 0, 0, 0}
	parts[scorerKNN] = []float64{0.5, 1, 0, 0}
	parts[scorerSR] = []float64{0.6, 0.5, 0, 0}
	parts[scorerPop] = []float64{0, 0, 0, 0}
	parts[scorerTrend] = []float64{0, 0, 0, 0}
	served := func(m *mixture) (pos, other float64) {
		_, scale := norms(parts, m.served(0))
		for i, p := range parts {
			pos += scale[i] * p[0]
			other += scale[i] * p[1]
		}
		return pos, other
	}
	m := mixture{learn: 2}
	if p, o := served(&m); p >= o {
		t.Fatalf("test is vacuous: the chosen item already scores %g against %g", p, o)
	}
	for range 200 {
		_, scale := norms(parts, m.served(0))
		m.learnGains(0, parts, scale, 0, []int32{1, 0, 2})
	}
	if g := m.gain[0]; !(g[scorerSR] > 0 && g[scorerKNN] < 0) || g[scorerSR] > maxGain || g[scorerKNN] < -maxGain {
		t.Fatalf("gains %v, want sr's up and knn's down, within ±%d", g, maxGain)
	}
	if p, o := served(&m); p <= o {
		t.Fatalf("after learning the chosen item scores %g against its competitor's %g", p, o)
	}
	if m.gain[1] != ([nScorers]float64{}) {
		t.Fatalf("another bucket's gains moved: %v", m.gain[1])
	}
	still := mixture{}
	_, scale := norms(parts, still.served(0))
	still.learnGains(0, parts, scale, 0, []int32{1})
	if still.gain[0] != ([nScorers]float64{}) {
		t.Fatalf("rate 0 moved the gains: %v", still.gain[0])
	}
}

// meanMax gives the plain loop's largest value exactly and its mean within
// rounding, for lengths below, at and past the sixteen lanes and every
// tail; the AVX2 kernel (where the CPU has it) gives sumMax16Go's bits.
func TestMeanMaxMatchesThePlainLoop(t *testing.T) {
	for _, n := range []int{0, 1, 5, 15, 16, 17, 31, 32, 33, 47, 100, 9724} {
		s := make([]float64, n)
		for i := range s {
			s[i] = math.Sin(float64(7*i+n)) * 100 // negative and positive, the largest anywhere
		}
		want, top := 0.0, math.Inf(-1)
		for _, v := range s {
			want += v
			top = max(top, v)
		}
		want /= float64(max(n, 1))
		gotMean, gotTop := meanMax(s)
		if gotTop != top || math.Abs(gotMean-want) > 1e-12 {
			t.Errorf("%d values: meanMax %v, %v; want %v, %v", n, gotMean, gotTop, want, top)
		}
		if n16 := n &^ 15; n16 > 0 {
			s1, t1 := sumMax16(s[:n16])
			s2, t2 := sumMax16Go(s[:n16])
			if math.Float64bits(s1) != math.Float64bits(s2) || t1 != t2 {
				t.Errorf("%d values: sumMax16 %v, %v; sumMax16Go %v, %v", n16, s1, t1, s2, t2)
			}
		}
	}
	if dots64Built && runtime.GOARCH == "amd64" && cpu.X86.HasAVX2 && !haveSumMax16 { // dots64Built: amd64 without purego
		t.Fatal("the CPU has AVX2 but meanMax does not use the kernel")
	}
}

// qScores, unrolled, writes what the plain loop writes, for every length
// (the unrolled body and its tail).
func TestQScoresMatchesThePlainLoop(t *testing.T) {
	for n := range 11 {
		d := &DQN{scores: make([]float64, n), bias: make([]float32, n), knn: make([]float64, n)}
		dots := make([]float32, n)
		for i := range n {
			dots[i] = float32(math.Sin(float64(3*i + n)))
			d.bias[i] = float32(math.Cos(float64(5*i + n)))
			d.knn[i] = math.Sin(float64(11*i+n)) * 10
		}
		const alpha = 0.37
		d.qScores(dots, alpha)
		for i := range n {
			if want := float64(dots[i]+d.bias[i]) + float64(float32(alpha))*d.knn[i]; d.scores[i] != want {
				t.Errorf("%d items: score %d is %v, want %v", n, i, d.scores[i], want)
			}
		}
	}
}

// hotNow is a log of two-event visits by new users: each visit starts on
// the item that is hot in its epoch of epoch visits (a new one every
// epoch) and goes on to one of 20 evergreen items. Over a thousand events
// the evergreens are the popular items; what a visit starts on is what
// was popular in the last few dozen.
func hotNow(epochs, epoch int) []feedback.Located {
	var evs []feedback.Located
	for v := range epochs * epoch {
		at := time.Unix(int64(10*v), 0)
		for k, it := range []string{fmt.Sprint("hot", v/epoch), fmt.Sprint("ever", (v*7)%20)} {
			evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("v", v), SessionID: "s", ItemID: it,
				Type: feedback.Click, TS: at.Add(time.Duration(k) * time.Second)}})
		}
	}
	return evs
}

// Where what starts a visit turns over every few dozen events, the trending
// expert (a recency popularity of a short half-life) holds the chosen first
// item in its top-K where popularity over a thousand events does not: the
// mixture's hit rates for a visit's first item say so, and it weighs the
// trending expert most there. trend_half_life 0 leaves it out: no weight,
// and the served first items miss the hot item more often. The network is
// left out: its item biases learn the hot item too.
func TestTrendingExpertFollowsWhatIsHotNow(t *testing.T) {
	hits := func(trend float64) (d *DQN, hit int) {
		cfg := DefaultDQN()
		cfg.Rows, cfg.MixEvery, cfg.Temperature, cfg.TrendHalfLife, cfg.NoNet = 64, 1, 0, trend, true
		d = newDQN(t, cfg)
		for _, b := range chunks(hotNow(120, 10), 64) {
			learn(t, d, b...)
		}
		// Ten new visitors, each served a first list: is the hot item in it?
		for v := range 10 {
			u := &UserState{ID: fmt.Sprint("probe", v), Consumed: map[int32]struct{}{}}
			d.components(u)
			d.blend(0)
			for _, a := range (order{score: d.scores}).top(d.cfg.TopN, u.Consumed, &d.heap) {
				if d.items.ID(a) == "hot119" {
					hit++
				}
			}
		}
		return d, hit
	}
	d, withTrend := hits(50)
	q, w := d.mix.quality[mixBucket(0)], d.mix.weights(mixBucket(0))
	if q[scorerTrend] < q[scorerPop]+0.3 {
		t.Fatalf("hit rates of a visit's first item %v: trending not well above popularity", q)
	}
	for i := range w {
		if i != scorerTrend && w[i] >= w[scorerTrend] {
			t.Fatalf("weights of a visit's first item %v: trending not the heaviest", w)
		}
	}
	off, without := hits(0)
	if w := off.mix.weights(mixBucket(0)); w[scorerTrend] != 0 {
		t.Fatalf("trend_half_life 0: the trending expert weighs %v", w[scorerTrend])
	}
	if withTrend != 10 || without >= withTrend {
		t.Fatalf("first lists holding the hot item: %d of 10 with the trending expert, %d without; want 10 and fewer", withTrend, without)
	}
}

// A snapshot from before the trending expert (a mixture of four scorers
// per bucket, no trending weights) restores: the four scorers' hit rates
// and gains in their places, the trending expert's from nothing. A
// mixture of another size is refused by name.
func TestSnapshotFromBeforeTheTrendingExpert(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows, cfg.MixEvery = 32, 1
	d := trainedDQN(t, cfg, 300)
	s := snapshotOf(t, d, "")
	for _, name := range []string{"mix.quality", "mix.gain.bits"} {
		r := s.rows[name]
		var old []int64
		for i, v := range r.i64 {
			if i%nScorers != scorerTrend {
				old = append(old, v)
			}
		}
		r.i64, r.shape = old, []int64{mixBuckets, oldScorers}
		s.rows[name] = r
	}
	delete(s.rows, "mix.trend.bits")
	r := restoredDQN(t, cfg, s)
	for b := range mixBuckets {
		for i := range oldScorers {
			if r.mix.quality[b][i] != d.mix.quality[b][i] || r.mix.gain[b][i] != d.mix.gain[b][i] {
				t.Fatalf("bucket %d scorer %d: restored %v / %v, written %v / %v", b, i, r.mix.quality[b][i], r.mix.gain[b][i], d.mix.quality[b][i], d.mix.gain[b][i])
			}
		}
		if r.mix.quality[b][scorerTrend] != 0 || r.mix.gain[b][scorerTrend] != 0 {
			t.Fatalf("bucket %d: the trending expert restored %v / %v, want nothing", b, r.mix.quality[b][scorerTrend], r.mix.gain[b][scorerTrend])
		}
	}
	if d.mix.quality == ([mixBuckets][nScorers]float64{}) {
		t.Fatal("test is vacuous: no scorer ever hit")
	}
	if len(r.trend.score) != 0 {
		t.Fatalf("the trending expert restored %d weights from a snapshot without them", len(r.trend.score))
	}
	learn(t, r, clicks(1000, 50, 7, func(i int) int { return i % 13 })...) // and it learns on
	q := s.rows["mix.quality"]
	q.i64 = q.i64[:mixBuckets*3]
	s.rows["mix.quality"] = q
	bad, err := NewDQN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Restore(s); err == nil || !strings.Contains(err.Error(), "mix.quality") {
		t.Fatalf("a mixture of 3 scorers restored with %v, want an error naming mix.quality", err)
	}
}

// blendInto, unrolled over the scorers with the shifts summed once, gives
// the plain sum of scale_i × (score_i − shift_i) within rounding, also
// when dst is one of the parts.
func TestBlendIntoMatchesThePlainSum(t *testing.T) {
	const n = 37
	var parts [nScorers][]float64
	var shift, scale [nScorers]float64
	for i := range parts {
		parts[i] = make([]float64, n)
		for a := range n {
			parts[i][a] = math.Sin(float64(13*i+7*a)) * 10
		}
		shift[i], scale[i] = math.Cos(float64(i))*3, 1/float64(i+2)
	}
	want := make([]float64, n)
	for a := range n {
		for i := range parts {
			want[a] += scale[i] * (parts[i][a] - shift[i])
		}
	}
	got := make([]float64, n)
	blendInto(got, parts, shift, scale)
	blendInto(parts[scorerSR], parts, shift, scale) // in place
	for a := range n {
		if math.Abs(got[a]-want[a]) > 1e-12 || parts[scorerSR][a] != got[a] {
			t.Fatalf("item %d: %v (in place %v), want %v", a, got[a], parts[scorerSR][a], want[a])
		}
	}
}
