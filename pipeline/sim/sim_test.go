package sim

import (
	"cmp"
	"context"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
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

// topicPolicy shows each user the 10 items it likes most among cand, the
// items of some topics.
type topicPolicy struct {
	s    *Sim
	cand []int
}

func newTopicPolicy(s *Sim, topics map[int]bool) topicPolicy {
	p := topicPolicy{s: s}
	for i := range s.items {
		if topics[s.items[i].topic] {
			p.cand = append(p.cand, i)
		}
	}
	return p
}

func (p topicPolicy) Name() string { return "topics" }

func (p topicPolicy) Lists(_ context.Context, events []feedback.Event) (Lists, error) {
	out := Lists{}
	for _, e := range events {
		k, _ := strconv.Atoi(strings.TrimPrefix(e.UserID, "u"))
		u := &p.s.users[k]
		cand := slices.Clone(p.cand)
		slices.SortFunc(cand, func(a, b int) int { return cmp.Compare(p.s.satisfaction(u, b), p.s.satisfaction(u, a)) })
		l := make([]string, 0, 10)
		for _, i := range cand[:10] {
			l = append(l, p.s.items[i].id)
		}
		out[e.UserID] = l
	}
	return out, nil
}

// Item quality (sim.quality) is hidden from the choice and from the
// reward of a pick: the population is the same with it and without, and
// what it moves is how long sessions last, by the topics picked from.
func TestSimQualityMovesOnlySessionLength(t *testing.T) {
	c := small()
	c.Sessions = 600
	q := c
	q.Quality = 1.5
	a, _ := New(c)
	b, _ := New(q)
	for i := range a.items {
		if !slices.Equal(a.items[i].vec, b.items[i].vec) || a.items[i].logp != b.items[i].logp {
			t.Fatalf("item %d differs with quality on", i)
		}
	}
	for u := range a.users {
		if !slices.Equal(a.users[u].pref, b.users[u].pref) {
			t.Fatalf("user %d differs with quality on", u)
		}
	}
	if first, last := meanQuality(a, 0), meanQuality(a, c.Topics-1); first > -0.8 || last < 0.8 {
		t.Fatalf("topic 0's mean quality %.2f, topic %d's %.2f: want about -1 and 1", first, c.Topics-1, last)
	}
	low, high := map[int]bool{}, map[int]bool{}
	for k := range 4 {
		low[k], high[c.Topics-1-k] = true, true
	}
	length := func(c Config, topics map[int]bool) float64 {
		_, _, r := digest(t, c, func(s *Sim) Policy { return newTopicPolicy(s, topics) })
		return r.MeanSessionLength
	}
	lowOff, highOff, lowOn, highOn := length(c, low), length(c, high), length(q, low), length(q, high)
	t.Logf("mean session length, quality off: low topics %.2f, high %.2f; on: %.2f, %.2f", lowOff, highOff, lowOn, highOn)
	if lowOn >= 0.8*lowOff || highOn <= 1.2*highOff {
		t.Fatalf("mean session length, quality off: low topics %.2f, high %.2f; on: %.2f, %.2f", lowOff, highOff, lowOn, highOn)
	}
	bad := small()
	bad.Quality = -1
	if err := bad.Check(); err == nil || !strings.Contains(err.Error(), "sim.quality") {
		t.Fatalf("a negative quality: %v, want an error naming sim.quality", err)
	}
}

func meanQuality(s *Sim, topic int) float64 {
	sum, n := 0.0, 0
	for _, it := range s.items {
		if it.topic == topic {
			sum += it.quality
			n++
		}
	}
	return sum / float64(n)
}
