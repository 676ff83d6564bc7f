package model

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func ev(user, item string, at time.Duration, offset int64) feedback.Located {
	return feedback.Located{
		Event:     feedback.Event{UserID: user, SessionID: user + "-s", ItemID: item, Type: feedback.Click, TS: t0.Add(at)},
		Partition: 1, Offset: offset, KafkaTime: t0,
	}
}

func learn(t *testing.T, r Recommender, events ...feedback.Located) []Recommendation {
	t.Helper()
	b := feedback.BatchOf(events...)
	defer b.Release()
	out, err := r.Learn(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ids(r Recommendation) []string {
	var s []string
	for _, it := range r.Items {
		s = append(s, it.ItemID)
	}
	return s
}

func TestPopularityRanksAndExcludesConsumed(t *testing.T) {
	p := NewPopularity(PopularityConfig{HalfLife: time.Hour, Shared: Shared{TopN: 2, MaxUsers: 10}})
	learn(t, p,
		ev("a", "x", 0, 0), ev("b", "x", 0, 1), ev("c", "x", 0, 2), // x: 3
		ev("a", "y", 0, 3), ev("b", "y", 0, 4), // y: 2
		ev("a", "z", 0, 5), // z: 1
	)
	out := learn(t, p, ev("d", "w", 0, 6), ev("c", "w", 0, 7), ev("d", "v", 0, 8))
	if len(out) != 2 {
		t.Fatalf("want one list per user of the batch, got %d", len(out))
	}
	d, c := out[0], out[1]
	if d.UserID != "d" || c.UserID != "c" {
		t.Fatalf("lists not in order of first appearance: %s %s", d.UserID, c.UserID)
	}
	if d.Offset != 8 || d.Partition != 1 || d.SessionID != "d-s" {
		t.Fatalf("list of d must reflect its last event (offset 8): %+v", d)
	}
	if got := ids(d); len(got) != 2 || got[0] != "x" || got[1] != "y" {
		t.Fatalf("d: got %v, want [x y]", got)
	}
	// c consumed x and w: y (2) then w is excluded, so z/v tie at 1: z was seen first.
	if got := ids(c); len(got) != 2 || got[0] != "y" || got[1] != "z" {
		t.Fatalf("c: got %v, want [y z]", got)
	}
	if d.Items[0].Score <= d.Items[1].Score || d.Items[0].Propensity != 1 {
		t.Fatalf("scores not descending or propensity not 1: %+v", d.Items)
	}
}

func TestPopularityRecencyWeighting(t *testing.T) {
	p := NewPopularity(PopularityConfig{HalfLife: time.Hour, Shared: Shared{TopN: 1, MaxUsers: 10}})
	// old: 3 interactions ten half-lives ago; new: 1 interaction now.
	learn(t, p, ev("a", "old", 0, 0), ev("b", "old", 0, 1), ev("c", "old", 0, 2))
	// Ten half-lives later (two events: one alone would not move the clock).
	out := learn(t, p, ev("e", "z", 10*time.Hour, 3), ev("d", "new", 10*time.Hour, 4), ev("e", "z2", 10*time.Hour, 5))
	if got := ids(out[0]); got[0] != "new" {
		t.Fatalf("recent item must outrank three decayed ones, got %v", got)
	}
	// Far-future events rebase the scale without overflow or changing order.
	out = learn(t, p, ev("f", "new", 2000*time.Hour, 6), ev("g", "q", 2000*time.Hour, 7))
	for _, it := range out[1].Items {
		if it.Score != it.Score || it.Score > 1e300 {
			t.Fatalf("score overflowed: %+v", it)
		}
	}
}

// One event dated in the year 3000 neither tops every list nor decays the
// other items away: its weight is taken at most one half-life past the
// event clock.
func TestPopularityFarFutureEvent(t *testing.T) {
	p := NewPopularity(PopularityConfig{HalfLife: time.Hour, Shared: Shared{TopN: 3, MaxUsers: 10}})
	learn(t, p, ev("a", "hit", 0, 0), ev("b", "hit", 0, 1), ev("c", "hit", 0, 2), ev("a", "ok", 0, 3))
	before := p.score[0]
	future := ev("x", "evil", 0, 4)
	future.TS = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	out := learn(t, p, future, ev("d", "other", time.Minute, 5))
	if got := ids(out[1]); got[0] != "hit" {
		t.Fatalf("d's list after a year-3000 event: %v, want hit first", got)
	}
	if hit, evil := p.score[0], p.score[2]; evil > 2*math.Exp(p.k*float64(p.users.Clock()-p.refMicros)) || hit < before/2 {
		t.Fatalf("hit %g (was %g), evil %g: one event moved the decay by more than a half-life", hit, before, evil)
	}
}

func TestPopularityForgetsLeastRecentUsers(t *testing.T) {
	p := NewPopularity(PopularityConfig{HalfLife: time.Hour, Shared: Shared{TopN: 5, MaxUsers: 2}})
	learn(t, p, ev("a", "x", 0, 0), ev("b", "y", 0, 1), ev("c", "z", 0, 2))
	if p.Users() != 2 {
		t.Fatalf("users = %d, want the cap 2", p.Users())
	}
	// a was evicted: x is recommended to a again.
	out := learn(t, p, ev("a", "w", 0, 3))
	found := false
	for _, id := range ids(out[0]) {
		found = found || id == "x"
	}
	if !found {
		t.Fatalf("evicted user's history still excluded: %v", ids(out[0]))
	}
}
