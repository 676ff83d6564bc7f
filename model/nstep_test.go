package model

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// learnEvents learns events one batch each.
func learnEvents(t *testing.T, d *DQN, evs ...feedback.Event) {
	t.Helper()
	for _, e := range evs {
		b := feedback.BatchOf(feedback.Located{Event: e})
		if _, err := d.Learn(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
}

// With n_step 3 a transition's TD target sums its session's next two
// rewards, discounted, and bootstraps from the state after the last with
// γ³; when its session closes first, the sum stops there and the target
// has no bootstrap. One-step transitions go straight to the pending ones.
func TestNStepReturnsStopAtTheSessionEnd(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows, cfg.NStep, cfg.Gamma = 64, 3, 0.5
	d := newDQN(t, cfg)
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ev := func(sec int, session, item string, typ feedback.Type, v float64) feedback.Event {
		return feedback.Event{UserID: "u", SessionID: session, ItemID: item, Type: typ, Value: v, HasValue: v != 0, TS: at.Add(time.Duration(sec) * time.Second)}
	}
	// rewards: click 1, view of 30 s 0.75, rating 5 1, click 1
	learnEvents(t, d, ev(0, "s1", "a", feedback.Click, 0), ev(1, "s1", "b", feedback.View, 30), ev(2, "s1", "c", feedback.Rating, 5))
	if len(d.pending) != 1 || len(d.held[d.userOf(t, "u")]) != 2 {
		t.Fatalf("%d pending, %d held after 3 events of a session: want the first complete", len(d.pending), len(d.held[d.userOf(t, "u")]))
	}
	first := d.pending[0]
	if d.items.ID(first.pos) != "a" || first.reward != 1 || !approx(first.ns.ret, 0.5*0.75+0.25*1) || !approx(first.ns.disc, 0.125) || d.items.ID(first.ns.last.pos) != "c" {
		t.Fatalf("first transition: item %s, reward %v, return %v, discount %v, last %s", d.items.ID(first.pos), first.reward, first.ns.ret, first.ns.disc, d.items.ID(first.ns.last.pos))
	}
	// A new session closes s1: b and c complete with what s1 earned after them.
	learnEvents(t, d, ev(3, "s2", "d", feedback.Click, 0))
	if len(d.pending) != 3 || len(d.held[d.userOf(t, "u")]) != 1 {
		t.Fatalf("%d pending, %d held after the session closed", len(d.pending), len(d.held[d.userOf(t, "u")]))
	}
	b, c := d.pending[1], d.pending[2]
	if !approx(b.ns.ret, 0.5*1) || b.ns.disc != 0 || c.ns.ret != 0 || c.ns.disc != 0 {
		t.Fatalf("closed session: b return %v discount %v, c return %v discount %v", b.ns.ret, b.ns.disc, c.ns.ret, c.ns.disc)
	}
	nh := cfg.Hard + cfg.RowUniform
	// tdTarget reads the next states' forward passes from nextStates.
	target := func(tr transition) float32 {
		rows := []transition{tr}
		d.nextStates(rows)
		return d.tdTarget(0, &rows[0], nh)
	}
	if y := target(b); !approx(y, 0.75+0.5) {
		t.Fatalf("TD target of b %v, want its reward and the rest of its session, 1.25", y)
	}
	// The bootstrap: raising the target network's v(s) by 8 raises the
	// unfinished transition's target by γ³·8 and not the closed one's.
	y := target(first)
	d.target.value.B[0] += 8
	if y2 := target(first); !approx(y2-y, 0.125*8) {
		t.Fatalf("target %v, then %v with v(s') + 8: want + %v", y, y2, 0.125*8)
	}
	if y := target(b); !approx(y, 0.75+0.5) {
		t.Fatalf("a closed session's target moved with the bootstrap: %v", y)
	}

	one := DefaultDQN()
	one.Rows = 64
	d1 := newDQN(t, one)
	learnEvents(t, d1, ev(0, "s1", "a", feedback.Click, 0))
	if len(d1.pending) != 1 || d1.pending[0].ns != nil || len(d1.held) != 0 {
		t.Fatalf("one-step: %d pending, %d held", len(d1.pending), len(d1.held))
	}
}

// approx reports whether a and b agree within 1e-5.
func approx(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-5 }

// userOf is the state of user id.
func (d *DQN) userOf(t *testing.T, id string) *UserState {
	t.Helper()
	u, ok := d.users.Lookup(id)
	if !ok {
		t.Fatalf("no user %s", id)
	}
	return u
}
