package sim

import (
	"context"
	"hash/fnv"
	"slices"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

func small() Config {
	c := Default()
	c.Users, c.Items, c.Concurrency, c.Sessions = 400, 300, 32, 1500
	return c
}

func digest(t *testing.T, c Config, p func(*Sim) Policy) (uint64, []string, Result) {
	t.Helper()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	h := fnv.New64a()
	var arrivals []string
	seen := map[string]bool{}
	r, err := Run(context.Background(), s, p(s), func(tk Tick) {
		for _, e := range tk.Events {
			h.Write(feedback.Encode(e))
			if !seen[e.SessionID] { // a session's first event
				seen[e.SessionID] = true
				arrivals = append(arrivals, e.SessionID)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return h.Sum64(), arrivals, r
}

// Seeded: the same population and lists give the same events; every
// policy meets the same users in the same order.
func TestSimSeededAndSameUsersForEveryPolicy(t *testing.T) {
	c := small()
	a, arrA, _ := digest(t, c, func(*Sim) Policy { return NewRandom(10, 1) })
	b, _, _ := digest(t, c, func(*Sim) Policy { return NewRandom(10, 1) })
	if a != b {
		t.Fatal("same seed and policy, different events")
	}
	c2 := c
	c2.Seed = 2
	if d, _, _ := digest(t, c2, func(*Sim) Policy { return NewRandom(10, 1) }); d == a {
		t.Fatal("another seed, same events")
	}
	_, arrO, _ := digest(t, c, func(s *Sim) Policy { return Oracle{S: s, N: 10} })
	if len(arrA) != c.Sessions || len(arrO) != c.Sessions {
		t.Fatalf("%d and %d sessions started, want %d", len(arrA), len(arrO), c.Sessions)
	}
	slices.Sort(arrA)
	slices.Sort(arrO)
	if !slices.Equal(arrA, arrO) {
		t.Fatal("the random policy and the oracle ran different sessions (user and index)")
	}
}

// Users respond to what they are shown: lists that match their
// preferences earn more clicks, more reward and longer sessions than
// random ones, and the oracle's regret is a small fraction of random's (not
// zero: a list is chosen from at the next tick, when the user's fatigue has
// moved on).
func TestSimRewardsGoodLists(t *testing.T) {
	c := small()
	_, _, random := digest(t, c, func(*Sim) Policy { return NewRandom(10, 1) })
	_, _, oracle := digest(t, c, func(s *Sim) Policy { return Oracle{S: s, N: 10} })
	if oracle.CTR <= random.CTR+0.1 || oracle.MeanSessionLength <= 1.5*random.MeanSessionLength || oracle.CumulativeReward <= 1.5*random.CumulativeReward {
		t.Fatalf("oracle CTR %.3f length %.2f reward %.0f; random CTR %.3f length %.2f reward %.0f",
			oracle.CTR, oracle.MeanSessionLength, oracle.CumulativeReward, random.CTR, random.MeanSessionLength, random.CumulativeReward)
	}
	regret := func(p func(*Sim) Policy) float64 {
		s, _ := New(c)
		s.Oracle = true
		r, err := Run(context.Background(), s, p(s), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Regret / float64(r.Shown)
	}
	ro, rr := regret(func(s *Sim) Policy { return Oracle{S: s, N: 10} }), regret(func(*Sim) Policy { return NewRandom(10, 1) })
	if ro > 0.1*rr || rr <= 0 {
		t.Fatalf("regret per list: oracle %.3f, random %.3f", ro, rr)
	}
	t.Logf("random: CTR %.3f, length %.2f, reward %.0f; oracle: CTR %.3f, length %.2f, reward %.0f",
		random.CTR, random.MeanSessionLength, random.CumulativeReward, oracle.CTR, oracle.MeanSessionLength, oracle.CumulativeReward)
}

// The scheduled shift moves every user's interests: the items a user
// liked most before it are liked less after it.
func TestSimShiftMovesInterests(t *testing.T) {
	s, err := New(small())
	if err != nil {
		t.Fatal(err)
	}
	u := &s.users[7]
	best, top := 0, 0.0
	for i := range s.items {
		if v := s.satisfaction(u, i); v > top {
			best, top = i, v
		}
	}
	s.shift()
	if after := s.satisfaction(u, best); after > top-0.3 {
		t.Fatalf("favourite item's satisfaction %.2f before the shift, %.2f after", top, after)
	}
}

// Sessions started mid-run see the clock advance one second per tick.
func TestSimClock(t *testing.T) {
	s, _ := New(small())
	t0 := s.Step(nil).Events[0].TS
	t1 := s.Step(nil).Events
	if len(t1) > 0 && t1[0].TS.Sub(t0) != time.Second {
		t.Fatalf("tick advanced the clock by %v", t1[0].TS.Sub(t0))
	}
}
