package model

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// tieredItems is a tiered DQN (8 and 16 below 64, at 3 and 6
// interactions) whose items cold, warm and hot have 1, 4 and 7.
func tieredItems(t *testing.T) (*DQN, map[string]int32) {
	d := newDQN(t, tieredDQN(t))
	counts := map[string]int{"cold": 1, "warm": 4, "hot": 7}
	u := 0
	for item, n := range counts {
		for range n {
			u++
			learnClick(t, d, "u"+strings.Repeat("x", u), item)
		}
	}
	ids := map[string]int32{}
	for item := range counts {
		ids[item], _ = d.items.Lookup(item)
	}
	return d, ids
}

// A tier action scales the thresholds and moves every row to the tier
// its interactions earn under them, keeping its prefix; it returns the
// rows it moved as they were; the actions stay within their bounds and
// need tiers.
func TestTierActionsMoveRows(t *testing.T) {
	d, ids := tieredItems(t)
	widths := func() []int {
		return []int{d.tab.width(ids["cold"]), d.tab.width(ids["warm"]), d.tab.width(ids["hot"])}
	}
	if w := widths(); !slices.Equal(w, []int{8, 16, 64}) {
		t.Fatalf("fixture: widths %v", w)
	}
	rows := map[int32][]float32{}
	for _, x := range ids {
		rows[x] = slices.Clone(d.tab.row(x))
	}
	params := d.Params()
	moved, err := d.scaleTiers(TiersNarrower) // thresholds 6, 12
	if err != nil {
		t.Fatal(err)
	}
	if w := widths(); !slices.Equal(w, []int{8, 8, 16}) || !slices.Equal(d.TierAt(), []float64{6, 12}) {
		t.Fatalf("after narrowing: widths %v, thresholds %v", w, d.TierAt())
	}
	if got, want := d.Params(), params-8-48; got != want {
		t.Fatalf("params %d after narrowing, want %d", got, want)
	}
	if len(moved) != 2 {
		t.Fatalf("%d rows moved, want 2 (warm, hot)", len(moved))
	}
	for _, m := range moved {
		if !slices.Equal(m.old, rows[m.x]) {
			t.Fatalf("item %d's moved row is not its row before", m.x)
		}
		if !slices.Equal(d.tab.row(m.x), rows[m.x][:d.tab.width(m.x)]) {
			t.Fatalf("item %d lost its prefix", m.x)
		}
	}
	// Wider twice: thresholds 1.5, 3: cold (1) stays at 8, warm and hot
	// go to the full width.
	for range 2 {
		if _, err := d.scaleTiers(TiersWider); err != nil {
			t.Fatal(err)
		}
	}
	if w := widths(); !slices.Equal(w, []int{8, 64, 64}) {
		t.Fatalf("after widening twice: widths %v", w)
	}
	if acts := d.tierActions(); !slices.Equal(acts, []Action{{Kind: TiersNarrower}}) {
		t.Fatalf("at threshold 1.5 the actions are %v, want only narrower", acts)
	}
	if _, err := d.scaleTiers(TiersWider); err == nil || !strings.Contains(err.Error(), "would leave") {
		t.Fatalf("a threshold below 1: %v", err)
	}
	plain := newDQN(t, DefaultDQN())
	if _, err := plain.scaleTiers(TiersNarrower); err == nil || !strings.Contains(err.Error(), "recommender.dqn.tiers") || plain.tierActions() != nil {
		t.Fatalf("without tiers: %v, actions %v", err, plain.tierActions())
	}
	if err := plain.Apply(Action{Kind: TiersWider}, ArchBounds{}); err == nil {
		t.Fatal("Apply took a tier action without tiers")
	}
}

// The reference scores of a pending tier decision score the rows it moved
// as they were, and every other row as it is.
func TestRefScoresUseTheRowsAsTheyWere(t *testing.T) {
	d, ids := tieredItems(t)
	moved, err := d.scaleTiers(TiersNarrower)
	if err != nil {
		t.Fatal(err)
	}
	q := make([]float32, d.cfg.Dim)
	for j := range q {
		q[j] = float32(j%7) - 3
	}
	n := len(d.bias)
	d.scores = make([]float64, n)
	d.refScores(q, moved)
	was := map[int32][]float32{}
	for _, m := range moved {
		was[m.x] = m.old
	}
	for _, x := range ids {
		var want float64
		if old, ok := was[x]; ok {
			for j, v := range old {
				want += float64(q[j] * v)
			}
			for j, v := range d.erow(x) {
				want -= float64(q[j] * v)
			}
		}
		if math.Abs(d.scores[x]-want) > 1e-4 {
			t.Fatalf("item %d: correction %v, want %v", x, d.scores[x], want)
		}
	}
}

// scripted is a controller that takes the first allowed action of a kind
// from its script, or keep, and records its rewards.
type scripted struct {
	kinds   []ActionKind
	rewards []float64
}

func (s *scripted) Name() string            { return "scripted" }
func (s *scripted) Feedback(reward float64) { s.rewards = append(s.rewards, reward) }
func (s *scripted) Decide(_ Observation, allowed []Action) Action {
	if len(s.kinds) > 0 {
		k := s.kinds[0]
		s.kinds = s.kinds[1:]
		for _, a := range allowed {
			if a.Kind == k {
				return a
			}
		}
	}
	return Action{Kind: Keep}
}

// The adaptive model offers the tier actions to its controller, prices
// what they free or add in all the parameters, and records the thresholds.
func TestAdaptiveDecidesTiers(t *testing.T) {
	cfg := DefaultAdaptive()
	cfg.DQN, cfg.Tiers, cfg.TierAt = tieredDQN(t), nil, nil // the dqn's tiers
	cfg.EpochSessions, cfg.EpochEvents, cfg.SampleEvery = 1000, 150, 1
	ctrl := &scripted{kinds: []ActionKind{TiersNarrower, TiersWider}}
	a, err := NewAdaptive(cfg, ctrl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b := feedback.BatchOf(clicks(0, 600, 9, func(i int) int { return (i * 7) % 41 })...)
	defer b.Release()
	if _, err := a.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	ds := a.Decisions()
	if len(ds) < 3 {
		t.Fatalf("%d decisions, want 3 or more", len(ds))
	}
	if ds[0].Action.Kind != TiersNarrower || ds[1].Action.Kind != TiersWider {
		t.Fatalf("actions %v, %v", ds[0].Action, ds[1].Action)
	}
	if !slices.Equal(ds[0].TierAt, []float64{6, 12}) || !slices.Equal(ds[1].TierAt, []float64{3, 6}) {
		t.Fatalf("thresholds %v, %v", ds[0].TierAt, ds[1].TierAt)
	}
	if ds[0].ParamsAdded >= 0 || ds[1].ParamsAdded <= 0 {
		t.Fatalf("params added: narrower %d, wider %d", ds[0].ParamsAdded, ds[1].ParamsAdded)
	}
	if !ds[0].Rewarded || ds[0].Cost >= 0 || !ds[1].Rewarded || ds[1].Cost <= 0 {
		t.Fatalf("costs: narrower %v (rewarded %v), wider %v (rewarded %v)", ds[0].Cost, ds[0].Rewarded, ds[1].Cost, ds[1].Rewarded)
	}
	if ctrl.rewards[0] != ds[0].Reward || ctrl.rewards[1] != ds[1].Reward {
		t.Fatalf("the controller got rewards %v, the decisions say %v, %v", ctrl.rewards[:2], ds[0].Reward, ds[1].Reward)
	}
	if ds[1].TableParams-ds[0].TableParams < ds[1].ParamsAdded {
		t.Fatalf("tables %d -> %d, the widening added %d", ds[0].TableParams, ds[1].TableParams, ds[1].ParamsAdded)
	}
}

// A snapshot carries the thresholds: a restored model has them, and a
// follower that adopts the decider's architecture moves its rows to them.
func TestTierThresholdsTravel(t *testing.T) {
	d, _ := tieredItems(t)
	if _, err := d.scaleTiers(TiersNarrower); err != nil {
		t.Fatal(err)
	}
	s := snapshotOf(t, d, "")
	if !slices.Equal(s.Meta.TierAt, []float64{6, 12}) {
		t.Fatalf("snapshot's thresholds %v", s.Meta.TierAt)
	}
	r := restoredDQN(t, tieredDQN(t), s)
	if !slices.Equal(r.TierAt(), []float64{6, 12}) || r.Checksum() != d.Checksum() {
		t.Fatalf("restored thresholds %v", r.TierAt())
	}
	f, ids := tieredItems(t)
	if err := f.Adopt(s); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.TierAt(), []float64{6, 12}) || f.tab.width(ids["hot"]) != 16 {
		t.Fatalf("the follower's thresholds %v, hot %d wide", f.TierAt(), f.tab.width(ids["hot"]))
	}
}

// The adaptive model's own tiers replace the dqn's, and are checked by
// their keys.
func TestAdaptiveTiers(t *testing.T) {
	a, err := NewAdaptive(DefaultAdaptive(), NewPolicyGradient(0.1, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if a.tab == nil || !slices.Equal(a.tab.widths, []int{26, 64}) || !slices.Equal(a.TierAt(), []float64{50}) {
		t.Fatalf("the default adaptive model's tiers: %v", a.TierAt())
	}
	if d := newDQN(t, DefaultDQN()); d.tab != nil {
		t.Fatal("the default dqn has tiers")
	}
	o := DefaultOptions()
	o.Adaptive.TierAt = []float64{50, 60}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "adaptive.tier_at: needs one threshold per tier") {
		t.Fatalf("got %v", err)
	}
	o = DefaultOptions()
	o.Adaptive.Tiers = []int{64}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "adaptive.tiers: widths must be ascending, positive and below dim 64") {
		t.Fatalf("got %v", err)
	}
}
