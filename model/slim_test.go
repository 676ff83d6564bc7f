package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// slimDQN is a small DQN with nested widths 4 and 8 below dim 16.
func slimDQN(policy string) DQNConfig {
	cfg := DefaultDQN()
	cfg.Dim, cfg.Hidden, cfg.Rows = 16, []int{16}, 32
	cfg.Nested, cfg.WidthPolicy, cfg.WidthProbeEvery = []int{4, 8}, policy, 1
	return cfg
}

// nestedLoss is the nested ranking objective of pos over neg for state
// vector q: the sum over the widths of weight × log σ(prefix score
// difference), the full width weighing 1.
func nestedLoss(q, pos, neg []float32, bpos, bneg float32, widths []int, weight float64) float64 {
	at := func(r []float32, j int) float64 {
		if j < len(r) {
			return float64(r[j])
		}
		return 0
	}
	loss, diff := 0.0, float64(bpos-bneg)
	from := 0
	for m, w := range widths {
		for j := from; j < w; j++ {
			diff += float64(q[j]) * (at(pos, j) - at(neg, j))
		}
		from = w
		wt := 1.0
		if m < len(widths)-1 {
			wt = weight
		}
		loss += wt * math.Log(1/(1+math.Exp(-diff)))
	}
	return loss
}

// nestedPair's step is lr × the gradient of the nested objective, for the
// rows, the biases and the state vector, full-width rows and rows of a
// narrower tier alike; with weight 0 it is the plain ranking step.
func TestNestedPairIsTheNestedGradient(t *testing.T) {
	for _, tiered := range []bool{false, true} {
		t.Run(fmt.Sprintf("tiers=%v", tiered), func(t *testing.T) {
			cfg := slimDQN(WidthFull)
			cfg.NestedWeight = 0.3
			if tiered {
				cfg.Tiers, cfg.TierAt = []int{6}, []float64{100}
			}
			d := newDQN(t, cfg)
			learnClick(t, d, "u", "a")
			learnClick(t, d, "v", "b")
			pos, neg := int32(0), int32(1)
			rng := rand.New(rand.NewPCG(3, 4))
			d.q = make([]float32, cfg.Dim)
			for j := range d.q {
				d.q[j] = float32(rng.NormFloat64())
			}
			for _, x := range []int32{pos, neg} {
				for j := range d.erow(x) {
					d.erow(x)[j] = float32(rng.NormFloat64() * 0.3)
				}
			}
			if tiered && len(d.erow(pos)) != 6 {
				t.Fatalf("a cold item's row has %d values, want 6", len(d.erow(pos)))
			}
			loss := func() float64 {
				return nestedLoss(d.q, d.erow(pos), d.erow(neg), d.bias[pos], d.bias[neg], d.wp.widths, cfg.NestedWeight)
			}
			// Numerical gradient of every value the step moves.
			const h = 1e-3
			grad := func(v *float32) float64 {
				old := *v
				*v = old + h
				up := loss()
				*v = old - h
				down := loss()
				*v = old
				return (up - down) / (2 * h)
			}
			var wantPos, wantNeg, wantQ []float64
			for j := range d.erow(pos) {
				wantPos = append(wantPos, grad(&d.erow(pos)[j]))
			}
			for j := range d.erow(neg) {
				wantNeg = append(wantNeg, grad(&d.erow(neg)[j]))
			}
			for j := range d.q {
				wantQ = append(wantQ, grad(&d.q[j]))
			}
			wantBias := grad(&d.bias[pos])
			p0, n0, b0 := append([]float32(nil), d.erow(pos)...), append([]float32(nil), d.erow(neg)...), d.bias[pos]
			const lr = 0.01
			gq := make([]float32, cfg.Dim)
			d.nestedPair(pos, neg, lr, gq)
			near := func(what string, j int, got, want float64) {
				t.Helper()
				if math.Abs(got-want) > 2e-3*math.Max(1, math.Abs(want)) {
					t.Fatalf("%s[%d]: step/lr %v, gradient %v", what, j, got, want)
				}
			}
			for j := range p0 {
				near("pos", j, float64(d.erow(pos)[j]-p0[j])/lr, wantPos[j])
			}
			for j := range n0 {
				near("neg", j, float64(d.erow(neg)[j]-n0[j])/lr, wantNeg[j])
			}
			for j := range gq {
				near("q", j, float64(gq[j])/lr, wantQ[j])
			}
			// The bias steps at bias_lr where the rows step at emb_lr.
			near("bias", 0, float64(d.bias[pos]-b0)/(lr*cfg.BiasLR/cfg.EmbLR), wantBias)
		})
	}
	// Weight 0: only the full width's term, the plain step.
	cfg := slimDQN(WidthFull)
	cfg.NestedWeight = 0
	d := newDQN(t, cfg)
	learnClick(t, d, "u", "a")
	learnClick(t, d, "v", "b")
	d.q = make([]float32, cfg.Dim)
	for j := range d.q {
		d.q[j] = float32(j%5) * 0.1
	}
	diff := d.qTD(d.q, 0) - d.qTD(d.q, 1)
	g := float32(0.01 * (1 / (1 + math.Exp(float64(diff)))))
	p0 := append([]float32(nil), d.erow(0)...)
	d.nestedPair(0, 1, 0.01, make([]float32, cfg.Dim))
	for j := range p0 {
		if want := p0[j] + g*d.q[j]; math.Abs(float64(d.erow(0)[j]-want)) > 1e-6 {
			t.Fatalf("weight 0, pos[%d] = %v, want the plain step's %v", j, d.erow(0)[j], want)
		}
	}
}

// A session's context is its user's history and the gap since the user's
// last event, in buckets.
func TestWidthContext(t *testing.T) {
	for _, tt := range []struct {
		history int
		gap     time.Duration
		want    int
	}{
		{0, 0, 0}, {1, 0, 3}, {4, 59 * time.Minute, 3}, {5, time.Hour, 7}, {19, 23 * time.Hour, 7},
		{20, 24 * time.Hour, 11}, {99, 0, 9}, {100, 48 * time.Hour, 14}, {5000, time.Minute, 12},
	} {
		if got := widthContext(tt.history, tt.gap); got != tt.want {
			t.Errorf("history %d, gap %v: context %d, want %d", tt.history, tt.gap, got, tt.want)
		}
	}
}

// The learned policy serves a context at full width until it has enough
// probes, then at the width whose hit rate less λ × its relative FLOPs is
// best; full and narrowest never look at the probes.
func TestWidthPolicyChooses(t *testing.T) {
	p := &widthPolicy{kind: WidthLearned, widths: []int{16, 32, 64}, lambda: 0.01}
	probe := func(c, n int, rates ...float64) {
		for i := range n {
			hit := make([]bool, len(rates))
			for a, r := range rates {
				hit[a] = float64(i%100) < r*100
			}
			p.observe(c, hit)
		}
	}
	probe(1, widthWarmup-1, 0.2, 0.2, 0.2)
	if a := p.choose(1); a != 2 {
		t.Fatalf("before %d probes: arm %d, want the full width", widthWarmup, a)
	}
	probe(1, 200, 0.2, 0.2, 0.2) // no width loses anything: the narrowest
	probe(2, 200, 0.1, 0.2, 0.2) // 16 loses 0.1, more than it saves: 32
	probe(3, 200, 0, 0, 0.3)     // only the full width hits
	for c, want := range map[int]uint8{1: 0, 2: 1, 3: 2, 4: 2} {
		if a := p.choose(c); a != want {
			t.Errorf("context %d: arm %d, want %d", c, a, want)
		}
	}
	p.kind = WidthFull
	if a := p.choose(1); a != 2 {
		t.Errorf("full: arm %d", a)
	}
	p.kind = WidthNarrowest
	if a := p.choose(3); a != 0 {
		t.Errorf("narrowest: arm %d", a)
	}
	// The memory discounts old probes: a context whose narrow width
	// starts losing turns wider.
	p.kind = WidthLearned
	probe(1, 5000, 0, 0.2, 0.2)
	if a := p.choose(1); a != 1 {
		t.Errorf("after the narrow width stopped hitting: arm %d, want 1", a)
	}
}

// Lists and ranks are scored at the session's width: one user's products
// are the prefix products of its width, and a batch of users of several
// widths gets each user's row as if scored alone, dense and tiered.
func TestSlimScoresAtTheSessionWidth(t *testing.T) {
	for _, tiered := range []bool{false, true} {
		t.Run(fmt.Sprintf("tiers=%v", tiered), func(t *testing.T) {
			cfg := slimDQN(WidthLearned)
			if tiered {
				cfg.Tiers, cfg.TierAt = []int{6}, []float64{3}
			}
			d := newDQN(t, cfg)
			b := feedback.BatchOf(clicks(0, 300, 5, func(i int) int { return (i * 7) % 23 })...)
			defer b.Release()
			if _, err := d.Learn(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			n := len(d.bias)
			var users []*UserState
			for k := range 5 {
				u, _ := d.users.Lookup(fmt.Sprint("u", k))
				u.arm = uint8(k % 3)
				users = append(users, u)
			}
			prefix := func(u *UserState, q []float32) []float32 {
				w := d.wp.widths[u.arm]
				out := make([]float32, n)
				for x := range int32(n) {
					for j, v := range d.erow(x) {
						if j < w {
							out[x] += q[j] * v
						}
					}
				}
				return out
			}
			dots, _ := d.qBatch(users)
			for i, u := range users {
				d.features(u.Recent, u.RecentTypes, d.x)
				d.net.forward(d.x, d.q, &d.scr)
				want := prefix(u, d.q)
				for x := range n {
					if diff := dots[i*n+x] - want[x]; math.Abs(float64(diff)) > 1e-4 {
						t.Fatalf("user %d at width %d, item %d: batch %v, prefix product %v", i, d.wp.widths[u.arm], x, dots[i*n+x], want[x])
					}
				}
				d.components(u)
				alpha := d.net.forward(d.x, d.q, &d.scr)
				for x := range n {
					wantQ := float64(want[x]+d.bias[x]) + float64(alpha)*d.knn[x]
					if diff := d.scores[x] - wantQ; math.Abs(diff) > 1e-4 {
						t.Fatalf("user %d at width %d, item %d: Q %v, want %v", i, d.wp.widths[u.arm], x, d.scores[x], wantQ)
					}
				}
			}
		})
	}
}

// A session's width is chosen as it starts (its first event, a new
// session id, or after the idle gap) and kept for its other events; the
// bookkeeping counts every list at its width.
func TestSessionsKeepTheirWidth(t *testing.T) {
	cfg := slimDQN(WidthLearned)
	cfg.IdleGap = 30 * time.Minute
	d := newDQN(t, cfg)
	ev := func(sess string, ts int64, item string) {
		t.Helper()
		b := feedback.BatchOf(feedback.Located{Event: feedback.Event{UserID: "u", SessionID: sess, ItemID: item, Type: feedback.Click, TS: time.Unix(ts, 0)}})
		defer b.Release()
		if _, err := d.Learn(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	// Context 0 (no history) has every width hit alike: the narrowest.
	for range 100 {
		d.wp.observe(0, []bool{true, true, true})
	}
	ev("s1", 1000, "a")
	u, _ := d.users.Lookup("u")
	if u.arm != 0 || u.wctx != 0 {
		t.Fatalf("first session: arm %d in context %d, want 0 in 0", u.arm, u.wctx)
	}
	// Mid-session the policy changes its mind about context 0; the session
	// keeps its width.
	for range 5000 {
		d.wp.observe(0, []bool{false, false, true})
	}
	ev("s1", 1010, "b")
	if u.arm != 0 {
		t.Fatalf("the session's width changed mid-session to arm %d", u.arm)
	}
	// A new session id: history 2 (context 3), under an hour since the
	// last event; unprobed, so full.
	ev("s2", 1020, "c")
	if u.arm != 2 || u.wctx != 3 {
		t.Fatalf("second session: arm %d in context %d, want 2 in 3", u.arm, u.wctx)
	}
	// Two hours idle: the same session id starts a new session, in the
	// gap's bucket.
	ev("s2", 1020+7200, "d")
	if u.wctx != 4 {
		t.Fatalf("after two idle hours: context %d, want 4", u.wctx)
	}
	st, ok := d.WidthStats()
	if !ok {
		t.Fatal("no width stats with nested widths")
	}
	if st.FLOPsPerList <= 0 || len(st.Share) != 3 || math.Abs(st.Share[0]+st.Share[1]+st.Share[2]-1) > 1e-9 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := newDQN(t, DefaultDQN()).WidthStats(); ok {
		t.Fatal("width stats without nested widths")
	}
}

// The nested and width keys are checked by name.
func TestNestedOptions(t *testing.T) {
	for _, tt := range []struct {
		mod  func(*DQNConfig)
		want string
	}{
		{func(c *DQNConfig) { c.Nested = []int{32, 16} }, "nested: widths must be ascending"},
		{func(c *DQNConfig) { c.Nested = []int{16, 64} }, "below dim 64"},
		{func(c *DQNConfig) { c.Nested = []int{1, 2, 3, 4, 5, 6, 7, 8} }, "nested: at most 7 widths"},
		{func(c *DQNConfig) { c.NestedWeight = -1 }, "nested_weight: must not be negative"},
		{func(c *DQNConfig) { c.WidthPolicy = "widest" }, `width_policy: must be one of [full narrowest learned], got "widest"`},
		{func(c *DQNConfig) { c.WidthLambda = math.NaN() }, "width_lambda: must not be negative"},
		{func(c *DQNConfig) { c.WidthProbeEvery = 0 }, "width_probe_every: must be at least 1"},
	} {
		cfg := DefaultDQN()
		tt.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
}

// A snapshot carries the width policy and each user's session width; a
// model of other nested widths restores the weights and starts its policy
// afresh; a merge averages the policies' estimates.
func TestSlimSnapshots(t *testing.T) {
	cfg := slimDQN(WidthLearned)
	d := newDQN(t, cfg)
	b := feedback.BatchOf(clicks(0, 600, 7, func(i int) int { return (i * 5) % 31 })...)
	defer b.Release()
	if _, err := d.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	s := snapshotOf(t, d, "")
	r := restoredDQN(t, cfg, s)
	if r.wp.n != d.wp.n || r.wp.hits != d.wp.hits || r.wp.flops != d.wp.flops || r.wp.lists != d.wp.lists {
		t.Fatal("the restored policy differs")
	}
	u, _ := d.users.Lookup("u3")
	ru, _ := r.users.Lookup("u3")
	if ru.arm != u.arm || ru.wctx != u.wctx || ru.open != u.open || !ru.open {
		t.Fatalf("restored user: arm %d ctx %d open %v, want %d %d %v", ru.arm, ru.wctx, ru.open, u.arm, u.wctx, u.open)
	}
	other := cfg
	other.Nested = []int{8}
	o := restoredDQN(t, other, s)
	if o.wp.n != [widthContexts]float64{} || len(o.wp.widths) != 2 {
		t.Fatalf("a model of other widths kept the snapshot's policy: %+v", o.wp.n)
	}
	// Merging an empty policy with weight 1/2 halves the estimates.
	fresh := newDQN(t, cfg)
	learnClick(t, fresh, "u0", "i0")
	want := d.wp.hits
	if err := fresh.Merge(s, 0.5); err != nil {
		t.Fatal(err)
	}
	for c := range want {
		for a := range fresh.wp.widths {
			if got := fresh.wp.hits[c][a]; math.Abs(got-want[c][a]/2) > 1e-9 {
				t.Fatalf("merged hits[%d][%d] %v, want %v", c, a, got, want[c][a]/2)
			}
		}
	}
}
