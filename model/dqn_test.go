package model_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/eval"
	"github.com/adaptrec/adaptrec/model/feedback"
)

var start = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func smallDQN(t testing.TB, mod func(*model.DQNConfig)) *model.DQN {
	t.Helper()
	cfg := model.DefaultDQN()
	cfg.Rows = 64
	if mod != nil {
		mod(&cfg)
	}
	d, err := model.NewDQN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// planted is a log in which item B_i always follows item A_i: each user
// picks a random pair and consumes A then B.
func planted(pairs, users int, seed uint64) []feedback.Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []feedback.Event
	for u := range users {
		p := rng.IntN(pairs)
		at := start.Add(time.Duration(u) * time.Minute)
		out = append(out,
			feedback.Event{UserID: fmt.Sprint("u", u), ItemID: fmt.Sprint("A", p), Type: feedback.Click, TS: at},
			feedback.Event{UserID: fmt.Sprint("u", u), ItemID: fmt.Sprint("B", p), Type: feedback.Click, TS: at.Add(time.Second)})
	}
	return out
}

// The DQN learns a planted pattern: after a few hundred events, the item
// that always follows the one just consumed is in the top 10. Without the
// co-occurrence term, so that the network and embeddings must learn it.
func TestDQNLearnsPlantedPattern(t *testing.T) {
	for _, tc := range []struct {
		noKNN bool
		ewc   float64
	}{{true, 0}, {false, 0}, {false, 0.05}} {
		noKNN := tc.noKNN
		t.Run(fmt.Sprintf("noknn=%v,ewc=%v", noKNN, tc.ewc), func(t *testing.T) {
			d := smallDQN(t, func(c *model.DQNConfig) { c.NoKNN = noKNN; c.EmbLR = 0.1; c.EWCLambda = tc.ewc; c.EWCEvery = 2 })
			events := planted(20, 200, 1)
			// Score only the B events: the A that starts each pair is random.
			var hits []bool
			for lo := 0; lo < len(events); lo += 32 {
				var located []feedback.Located
				for i, e := range events[lo:min(lo+32, len(events))] {
					located = append(located, feedback.Located{Event: e, Offset: int64(lo + i)})
				}
				b := feedback.BatchOf(located...)
				_, err := d.LearnProbed(context.Background(), b, func(i int, ok bool, rank func() int) {
					if ok && b.ItemID(i)[0] == 'B' {
						hits = append(hits, rank() < 10)
					}
				})
				b.Release()
				if err != nil {
					t.Fatal(err)
				}
			}
			last := hits[len(hits)-50:]
			n := 0
			for _, h := range last {
				if h {
					n++
				}
			}
			t.Logf("HR@10 of B over the last 50 of %d pairs: %.2f (40 items: chance 0.26)", len(events)/2, float64(n)/50)
			if n < 45 {
				t.Fatalf("HR@10 %.2f after %d events: the pattern was not learned", float64(n)/50, len(events))
			}
		})
	}
}

func TestDQNDeterministic(t *testing.T) {
	events := planted(20, 300, 2)
	sum := func(seed uint64) uint64 {
		d := smallDQN(t, func(c *model.DQNConfig) { c.Seed = seed })
		if _, err := eval.Run(context.Background(), events, d, eval.Options{Batch: 32}); err != nil {
			t.Fatal(err)
		}
		return d.Checksum()
	}
	a, b, c := sum(7), sum(7), sum(8)
	if a != b {
		t.Fatalf("same seed, different weights: %x %x", a, b)
	}
	if a == c {
		t.Fatalf("different seeds, same weights: %x", a)
	}
}

// New items mid-stream grow the tables without a restart and can be
// served: by one embedding row and a bias each when the tables are tied,
// two rows untied.
func TestDQNVocabularyGrows(t *testing.T) {
	for _, tied := range []bool{true, false} {
		t.Run(fmt.Sprintf("tied=%v", tied), func(t *testing.T) { vocabularyGrows(t, tied) })
	}
}

func vocabularyGrows(t *testing.T, tied bool) {
	d := smallDQN(t, func(c *model.DQNConfig) { c.Tied = tied })
	batch := func(items ...string) []model.Recommendation {
		var evs []feedback.Located
		for i, it := range items {
			evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%3), SessionID: "s", ItemID: it, Type: feedback.Click, TS: start}, Offset: int64(i)})
		}
		b := feedback.BatchOf(evs...)
		defer b.Release()
		out, err := d.Learn(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	batch("a", "b", "c")
	p1 := d.Params()
	out := batch("d", "e", "f", "g")
	p2 := d.Params()
	rows := 2
	if tied {
		rows = 1
	}
	if dim := model.DefaultDQN().Dim; p2-p1 != 4*(rows*dim+1) {
		t.Fatalf("params grew by %d for 4 new items, want 4·(%d·%d+1)", p2-p1, rows, dim)
	}
	seen := map[string]bool{}
	for _, r := range out {
		for _, it := range r.Items {
			seen[it.ItemID] = true
			if it.Propensity <= 0 || it.Propensity > 1 || math.IsNaN(it.Score) {
				t.Fatalf("bad item %+v", it)
			}
		}
	}
	if !seen["g"] && !seen["a"] && !seen["b"] {
		t.Fatalf("lists do not draw from the grown vocabulary: %v", seen)
	}
}

func TestDQNEvictsUsers(t *testing.T) {
	d := smallDQN(t, func(c *model.DQNConfig) { c.MaxUsers = 50 })
	var evs []feedback.Located
	for u := range 500 {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", u), SessionID: "s", ItemID: fmt.Sprint("i", u%40), Type: feedback.View, TS: start}})
	}
	b := feedback.BatchOf(evs...)
	defer b.Release()
	if _, err := d.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if d.Users() != 50 {
		t.Fatalf("remembers %d users, want the cap 50", d.Users())
	}
}

func TestRewardMap(t *testing.T) {
	r := model.DefaultDQN().Reward
	b := feedback.BatchOf(
		feedback.Located{Event: feedback.Event{UserID: "u", ItemID: "i", Type: feedback.Click, TS: start}},
		feedback.Located{Event: feedback.Event{UserID: "u", ItemID: "i", Type: feedback.View, TS: start, Value: 30, HasValue: true}},
		feedback.Located{Event: feedback.Event{UserID: "u", ItemID: "i", Type: feedback.View, TS: start}},
		feedback.Located{Event: feedback.Event{UserID: "u", ItemID: "i", Type: feedback.Rating, TS: start, Value: 5, HasValue: true}},
		feedback.Located{Event: feedback.Event{UserID: "u", ItemID: "i", Type: feedback.Rating, TS: start, Value: 1, HasValue: true}},
	)
	defer b.Release()
	want := []float32{1, 0.75, 0.5, 1, -1}
	for i, w := range want {
		if got := r.Of(b, i); math.Abs(float64(got-w)) > 1e-6 {
			t.Errorf("event %d: reward %v, want %v", i, got, w)
		}
	}
}
