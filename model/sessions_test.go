package model

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// at is an event of user in session sid at minute m (session ids as an
// anonymous-session log gives them: one per user, never changing).
func at(user, sid string, m int, offset int64) feedback.Located {
	return feedback.Located{Event: feedback.Event{UserID: user, SessionID: sid, ItemID: fmt.Sprint("i", offset%7),
		Type: feedback.Click, TS: t0.Add(time.Duration(m) * time.Minute)}, Offset: offset}
}

// A session closes once the event clock has moved the idle gap past its
// last event, although its user never comes back and its id never changes.
func TestSessionClosesAfterIdleGap(t *testing.T) {
	opts := DefaultOptions()
	opts.IdleGap = 30 * time.Minute
	k := NewItemKNN(opts.itemKNN())
	var closed []string
	k.users.OnClose = func(u *UserState) { closed = append(closed, u.ID) }
	learn(t, k, at("a", "a", 0, 0), at("a", "a", 1, 1), at("b", "b", 10, 2), at("b", "b", 30, 3))
	if len(closed) != 0 {
		t.Fatalf("closed %v within the idle gap, want none", closed)
	}
	// The clock reaches minute 40 (the older of the last two events):
	// a, last seen at minute 1, is idle 39 > 30 minutes; b is not.
	learn(t, k, at("c", "c", 40, 4), at("c", "c", 41, 5))
	if len(closed) != 1 || closed[0] != "a" || k.SessionsClosed() != 1 {
		t.Fatalf("closed %v (%d), want [a]", closed, k.SessionsClosed())
	}
	// a comes back in the same session id: a new session opens, and the
	// closed one is not counted twice.
	learn(t, k, at("a", "a", 42, 6))
	if k.SessionsClosed() != 1 {
		t.Fatalf("%d sessions closed after a came back, want 1", k.SessionsClosed())
	}
	// b's own next event, 45 minutes after its last, closes its session
	// before the clock alone would have.
	learn(t, k, at("b", "b", 75, 7))
	if k.SessionsClosed() != 2 || closed[1] != "b" {
		t.Fatalf("closed %v, want [a b]", closed)
	}
}

// A change of session id closes the previous session; with no idle gap,
// only that and eviction close sessions.
func TestSessionClosesOnNewSessionID(t *testing.T) {
	opts := DefaultOptions()
	opts.IdleGap = 0
	p := NewPopularity(opts.popularity())
	learn(t, p, at("a", "a1", 0, 0), at("a", "a1", 600, 1))
	if p.SessionsClosed() != 0 {
		t.Fatalf("%d closed without an idle gap, want 0", p.SessionsClosed())
	}
	learn(t, p, at("a", "a2", 601, 2))
	if p.SessionsClosed() != 1 {
		t.Fatalf("%d closed after a new session id, want 1", p.SessionsClosed())
	}
}

// Evicting a user, by the user cap or by the TTL, closes its session.
func TestSessionClosesOnEviction(t *testing.T) {
	opts := DefaultOptions()
	opts.IdleGap, opts.MaxUsers = 0, 2
	k := NewItemKNN(opts.itemKNN())
	learn(t, k, at("a", "a", 0, 0), at("b", "b", 1, 1))
	learn(t, k, at("c", "c", 2, 2)) // a is the least recently seen of three
	if k.SessionsClosed() != 1 {
		t.Fatalf("%d closed after the cap evicted a user, want 1", k.SessionsClosed())
	}
	opts.MaxUsers, opts.UserTTL = 100, time.Hour
	k = NewItemKNN(opts.itemKNN())
	learn(t, k, at("a", "a", 0, 0), at("b", "b", 90, 1), at("b", "b", 91, 2))
	if k.SessionsClosed() != 1 || k.users.Len() != 1 {
		t.Fatalf("%d closed, %d users after the TTL evicted a, want 1 and 1", k.SessionsClosed(), k.users.Len())
	}
}

// On an anonymous-session stream (every session a user of its own, whose
// id never changes) sessions close by the idle gap, so the adaptive model
// takes decisions; with sessions closing only on a change it takes none.
func TestAnonymousSessionsYieldDecisions(t *testing.T) {
	var evs []feedback.Located
	for s := range 40 {
		user := fmt.Sprint("anon", s)
		for k := range 6 {
			evs = append(evs, at(user, user, s*60+k, int64(len(evs))))
		}
	}
	for _, gap := range []time.Duration{30 * time.Minute, 0} {
		opts := DefaultOptions()
		opts.IdleGap = gap
		cfg := opts.adaptive()
		cfg.EpochSessions, cfg.SampleEvery = 10, 1
		a, err := NewAdaptive(cfg, NewPolicyGradient(0.1, 1))
		if err != nil {
			t.Fatal(err)
		}
		b := feedback.BatchOf(evs...)
		if _, err := a.Learn(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		b.Release()
		a.Close()
		switch got := len(a.Decisions()); {
		case gap > 0 && (got < 3 || a.SessionsClosed() != 39):
			t.Fatalf("idle gap %v: %d decisions, %d sessions closed; want 3 (one per 10 of the 39 closed) and 39", gap, got, a.SessionsClosed())
		case gap == 0 && got != 0:
			t.Fatalf("no idle gap: %d decisions, want 0 (no session closes)", got)
		}
	}
}

// SessionsClosed may be read from another goroutine while the model
// learns (the worker's metrics do): under -race, a counter that is not
// safe for that fails here.
func TestSessionsClosedReadWhileLearning(t *testing.T) {
	opts := DefaultOptions()
	opts.IdleGap = time.Minute
	for _, name := range []string{"itemknn", "sknn", "dqn"} {
		m, err := Build(name, opts)
		if err != nil {
			t.Fatal(err)
		}
		c := m.(SessionCounter)
		stop, done := make(chan struct{}), make(chan int64)
		go func() {
			var seen int64
			for {
				select {
				case <-stop:
					done <- seen
					return
				default:
					seen = max(seen, c.SessionsClosed())
				}
			}
		}()
		for s := range 12 {
			user := fmt.Sprint("anon", s)
			learn(t, m, at(user, user, 5*s, int64(2*s)), at(user, user, 5*s+1, int64(2*s+1)))
		}
		close(stop)
		if seen := <-done; seen > 11 || c.SessionsClosed() != 11 {
			t.Fatalf("%s: read %d, %d closed at the end; want at most 11, and 11 (each but the last user's)", name, seen, c.SessionsClosed())
		}
		if cl, ok := m.(interface{ Close() }); ok {
			cl.Close()
		}
	}
}
