package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// A tiered table holds each item's row at its tier's width, moves rows
// between tiers keeping their prefix (and every other row where it was),
// and scores every item as the dense table of zero-padded rows does.
func TestTiersMoveAndScore(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tb, err := newTiers([]int{4, 8, 16})
	if err != nil {
		t.Fatal(err)
	}
	const items = 50
	for x := range items {
		tr := x % 3
		row := make([]float32, tb.widths[tr])
		for j := range row {
			row[j] = float32(rng.NormFloat64())
		}
		if got := tb.add(tr, row); got != int32(x) {
			t.Fatalf("add returned %d, want %d", got, x)
		}
	}
	check := func(when string) {
		t.Helper()
		q := make([]float32, 16)
		for j := range q {
			q[j] = float32(rng.NormFloat64())
		}
		got := make([]float32, items)
		var buf []float32
		tb.dotsRange(q, got, 0, 16, 0, &buf)
		dense := tb.dense()
		params := 0
		for x := range items {
			var want float32
			for j := range 16 {
				want += q[j] * dense[x*16+j]
			}
			if d := got[x] - want; d > 1e-4 || d < -1e-4 {
				t.Fatalf("%s: item %d scores %v, the dense table %v", when, x, got[x], want)
			}
			params += tb.width(int32(x))
		}
		if tb.params() != params {
			t.Fatalf("%s: %d params, want %d", when, tb.params(), params)
		}
	}
	check("added")
	before := make([][]float32, items)
	for x := range items {
		before[x] = slices.Clone(tb.row(int32(x)))
	}
	// Widen item 3 (tier 0 -> 2) exactly, narrow item 2 (tier 2 -> 1).
	tb.move(3, 2, 0, rng)
	tb.move(2, 1, 0, rng)
	if w := tb.width(3); w != 16 || !slices.Equal(tb.row(3)[:4], before[3]) || slices.ContainsFunc(tb.row(3)[4:], func(v float32) bool { return v != 0 }) {
		t.Fatalf("widened row %v from %v", tb.row(3), before[3])
	}
	if !slices.Equal(tb.row(2), before[2][:8]) {
		t.Fatalf("narrowed row %v from %v", tb.row(2), before[2])
	}
	for x := range items {
		if x != 2 && x != 3 && !slices.Equal(tb.row(int32(x)), before[x]) {
			t.Fatalf("item %d's row moved: %v, was %v", x, tb.row(int32(x)), before[x])
		}
	}
	check("moved")
	// Widening with noise changes only the new values.
	tb.move(0, 1, 0.01, rng)
	if r := tb.row(0); !slices.Equal(r[:4], before[0]) || !slices.ContainsFunc(r[4:], func(v float32) bool { return v != 0 }) {
		t.Fatalf("noisy widening: %v from %v", r, before[0])
	}
	check("noisy")
	if _, err := newTiers([]int{8, 8}); err == nil {
		t.Fatal("accepted widths that do not ascend")
	}
}

// tieredDQN is a DQN with item tiers of 8 and 16 values below dim,
// widened at 3 and 6 interactions.
func tieredDQN(t testing.TB) DQNConfig {
	cfg := DefaultDQN()
	cfg.Rows, cfg.Tiers, cfg.TierAt = 32, []int{8, 16}, []float64{3, 6}
	return cfg
}

// An item starts at the narrowest width and is widened as its
// interactions reach each threshold; the model counts the parameters its
// rows hold, learns, serves, and scores every item as the zero-padded
// dense rows would.
func TestDQNTiersWidenWithEvidence(t *testing.T) {
	cfg := tieredDQN(t)
	d := newDQN(t, cfg)
	learn := func(user, item string, n int) {
		for range n {
			learnClick(t, d, user, item)
		}
	}
	learn("u1", "cold", 1)
	learn("u2", "warm", 1)
	learn("u3", "warm", 1)
	learn("u4", "warm", 1) // 3 interactions: tier 1
	for u := range 7 {
		learn(fmt.Sprint("h", u), "hot", 1) // 7: the full width
	}
	width := func(id string) int {
		x, _ := d.items.Lookup(id)
		return d.tab.width(x)
	}
	if w := []int{width("cold"), width("warm"), width("hot")}; !slices.Equal(w, []int{8, 16, 64}) {
		t.Fatalf("widths of cold, warm, hot: %v, want [8 16 64]", w)
	}
	if got, want := d.Params(), d.net.params()+8+16+64+3; got != want {
		t.Fatalf("params %d, want %d", got, want)
	}
	u, _ := d.users.Lookup("h6")
	d.features(u.Recent, u.RecentTypes, d.x)
	alpha := d.net.forward(d.x, d.q, &d.scr)
	d.expertScores(u.Recent)
	d.scoreItems(d.q, alpha, d.cfg.Dim)
	dense := d.tab.dense()
	for x := range int32(d.items.Len()) {
		want := float64(d.bias[x]) + float64(alpha)*d.knn[x]
		var dot float32
		for j := range cfg.Dim {
			dot += d.q[j] * dense[int(x)*cfg.Dim+j]
		}
		if got := d.scores[x]; math.Abs(got-want-float64(dot)) > 1e-4 {
			t.Fatalf("item %s scores %v, the dense rows %v", d.items.ID(x), got, want+float64(dot))
		}
	}
}

// Snapshots of tiered tables restore each row at its width and continue
// bit for bit; a merge takes the wider of two rows (the narrower's missing
// values averaging in as 0) and adds the replica's items at their widths;
// a snapshot tiered otherwise than the model is refused by name.
func TestDQNTiersSnapshotsAndMerges(t *testing.T) {
	cfg := tieredDQN(t)
	a, b := trainedDQN(t, cfg, 400), trainedDQN(t, cfg, 900) // b's items have more interactions
	s := snapshotOf(t, b, "")
	r := restoredDQN(t, cfg, s)
	if r.Checksum() != b.Checksum() || r.Params() != b.Params() {
		t.Fatalf("restored checksum %x params %d, original %x %d", r.Checksum(), r.Params(), b.Checksum(), b.Params())
	}
	learnClick(t, r, "u1", "i3")
	learnClick(t, b, "u1", "i3")
	if r.Checksum() != b.Checksum() {
		t.Fatal("the restored model learned the next event otherwise")
	}
	// Merge b's snapshot into a: every shared item ends at the wider width.
	x, _ := a.items.Lookup("i7")
	bx := slices.Index(s.rows["items.ids"].str, "i7")
	wa, wb := a.tab.width(x), int(s.rows["items.width"].i64[bx])
	if wa >= wb {
		t.Fatalf("fixture: i7 is %d wide in a, %d in b; want it wider in b", wa, wb)
	}
	before := slices.Clone(a.tab.row(x))
	fa, fb := a.fresh[x], s.rows["items.fresh"].f32[bx]
	if err := a.Merge(s, 0.5); err != nil {
		t.Fatal(err)
	}
	if a.tab.width(x) != wb {
		t.Fatalf("merged i7 is %d wide, want %d", a.tab.width(x), wb)
	}
	ib := fb / (fa + fb)
	for j, v := range a.tab.row(x) {
		own := float32(0)
		if j < wa {
			own = before[j]
		}
		if want := (1-ib)*own + ib*s.rows["items.eout"].f32[bx*cfg.Dim+j]; v != want {
			t.Fatalf("merged i7[%d] = %v, want %v", j, v, want)
		}
	}
	learnClick(t, a, "u2", "i7")
	// Tiers must match.
	plain := DefaultDQN()
	plain.Rows = 32
	p := newDQN(t, plain)
	if err := p.Restore(s); err == nil || !strings.Contains(err.Error(), "recommender.dqn.tiers") {
		t.Fatalf("a tiered snapshot restored into a model without tiers: %v", err)
	}
	if err := a.Merge(snapshotOf(t, trainedDQN(t, plain, 100), ""), 0.5); err == nil || !strings.Contains(err.Error(), "recommender.dqn.tiers is [8 16]") {
		t.Fatalf("a snapshot without tiers merged into a tiered model: %v", err)
	}
}

// tiers and tier_at are checked by name.
func TestDQNTiersOptions(t *testing.T) {
	for _, tt := range []struct {
		mod  func(*DQNConfig)
		want string
	}{
		{func(c *DQNConfig) { c.Tiers, c.TierAt, c.Tied = []int{8}, []float64{3}, false }, "tiers: needs tied"},
		{func(c *DQNConfig) { c.Tiers, c.TierAt = []int{8, 16}, []float64{3} }, "tier_at: needs one threshold per tier"},
		{func(c *DQNConfig) { c.Tiers, c.TierAt = []int{16, 8}, []float64{3, 6} }, "tiers: widths must be ascending"},
		{func(c *DQNConfig) { c.Tiers, c.TierAt = []int{8, 64}, []float64{3, 6} }, "below dim 64"},
		{func(c *DQNConfig) { c.Tiers, c.TierAt = []int{8, 16}, []float64{6, 3} }, "tier_at: thresholds must be positive and ascending"},
	} {
		cfg := DefaultDQN()
		tt.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v / %v: got %v, want %q", cfg.Tiers, cfg.TierAt, err, tt.want)
		}
	}
}
