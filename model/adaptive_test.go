package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// sessions makes a stream of users with several sessions each.
func sessions(users, perUser, length int, seed uint64) []feedback.Located {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []feedback.Located
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for s := range perUser {
		for u := range users {
			base := rng.IntN(50)
			for k := range length {
				out = append(out, feedback.Located{Event: feedback.Event{
					UserID: fmt.Sprint("u", u), SessionID: fmt.Sprintf("u%d-s%d", u, s),
					ItemID: fmt.Sprint("i", (base+k)%60), Type: feedback.Click, TS: at,
				}, Offset: int64(len(out))})
				at = at.Add(time.Second)
			}
		}
	}
	return out
}

// smallAdaptive is these tests' adaptive configuration: an epoch every
// epochSessions closed sessions, every event sampled, a small network.
func smallAdaptive(epochSessions int) AdaptiveConfig {
	cfg := AdaptiveConfig{
		DQN: DefaultDQN(), EpochSessions: epochSessions, Step: 8, Lambda: 0.005, SampleEvery: 1,
		Bounds: ArchBounds{MinWidth: 8, MaxWidth: 96, MinDepth: 1, MaxDepth: 3},
	}
	cfg.DQN.Rows = 32
	return cfg
}

// learnBatches has r learn evs in batches of size events.
func learnBatches(t testing.TB, r Recommender, evs []feedback.Located, size int) {
	t.Helper()
	for lo := 0; lo < len(evs); lo += size {
		b := feedback.BatchOf(evs[lo:min(lo+size, len(evs))]...)
		_, err := r.Learn(context.Background(), b)
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAdaptiveTakesAndRewardsDecisions(t *testing.T) {
	for _, ctrl := range []Controller{NewPolicyGradient(0.1, 1), &Heuristic{Plateau: 0.5, IdleFrac: 0.9}} {
		t.Run(ctrl.Name(), func(t *testing.T) {
			a, err := NewAdaptive(smallAdaptive(30), ctrl)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			var seen []Decision
			a.OnDecision = func(d Decision) { seen = append(seen, d) }
			evs := sessions(40, 8, 5, 2)
			learnBatches(t, a, evs, 64)
			ds := a.Decisions()
			if len(ds) < 5 {
				t.Fatalf("%d decisions over %d sessions, want one per 30", len(ds), 40*8)
			}
			for i, d := range ds {
				if i < len(ds)-1 && !d.Rewarded {
					t.Fatalf("decision %d never rewarded: %+v", i, d)
				}
				for _, w := range d.After {
					if w < 8 || w > 96 {
						t.Fatalf("decision %d left width %d outside the bounds", i, w)
					}
				}
				if d.Rewarded && d.Reward != d.Gain-d.Cost {
					t.Fatalf("reward terms do not add up: %+v", d)
				}
				// The gain is paired: the epoch after the decision, scored
				// by the network and by the frozen pre-decision reference.
				if d.Rewarded && (d.Gain != d.QualityAfter-d.QualityRef || d.QualityAfter != ds[i+1].Quality) {
					t.Fatalf("decision %d: gain %v is not quality after %v − reference %v, or after is not the next epoch's quality %v",
						i, d.Gain, d.QualityAfter, d.QualityRef, ds[i+1].Quality)
				}
			}
			if len(seen) != 2*len(ds)-1 {
				t.Fatalf("OnDecision called %d times for %d decisions", len(seen), len(ds))
			}
			t.Logf("%s: %d decisions, final widths %v", a.Name(), len(ds), a.Widths())
		})
	}
}

// TestFollowerTakesNoDecisions checks that a replica which is not the
// group's decider never changes its own architecture.
func TestFollowerTakesNoDecisions(t *testing.T) {
	cfg := smallAdaptive(30)
	for _, decider := range []bool{true, false} {
		a, err := NewAdaptive(cfg, &Heuristic{Plateau: 10, IdleFrac: 0.9}) // always widens
		if err != nil {
			t.Fatal(err)
		}
		a.SetDecider(decider)
		evs := sessions(40, 4, 5, 3)
		learnBatches(t, a, evs, 64)
		if n := len(a.Decisions()); (n > 0) != decider {
			t.Fatalf("decider %v took %d decisions", decider, n)
		}
		a.Close()
	}
}

// TestLearningIgnoresBatchBoundaries feeds the same events in batches of
// 64 and in batches of irregular sizes: the DQN and the adaptive model
// (its decisions included) must reach the same weights, bit for bit.
func TestLearningIgnoresBatchBoundaries(t *testing.T) {
	evs := sessions(40, 6, 5, 4)
	feed := func(rec Probed, sizes []int) {
		for lo, k := 0, 0; lo < len(evs); k++ {
			hi := min(lo+sizes[k%len(sizes)], len(evs))
			b := feedback.BatchOf(evs[lo:hi]...)
			if _, err := rec.Learn(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			b.Release()
			lo = hi
		}
	}
	dcfg := DefaultDQN()
	dcfg.Rows = 32
	acfg := AdaptiveConfig{
		DQN: dcfg, EpochSessions: 20, Step: 8, Lambda: 0.005, SampleEvery: 1,
		Bounds: ArchBounds{MinWidth: 8, MaxWidth: 96, MinDepth: 1, MaxDepth: 3},
	}
	build := map[string]func() Probed{
		"dqn": func() Probed {
			d, err := NewDQN(dcfg)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"adaptive": func() Probed {
			a, err := NewAdaptive(acfg, NewPolicyGradient(0.1, 1))
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
	}
	for name, mk := range build {
		a, b := mk(), mk()
		feed(a, []int{64})
		feed(b, []int{1, 37, 100, 5, 250, 13})
		ca, cb := a.(interface{ Checksum() uint64 }).Checksum(), b.(interface{ Checksum() uint64 }).Checksum()
		if ca != cb {
			t.Errorf("%s: batches of 64 reach %x, irregular batches %x", name, ca, cb)
		}
		if ad, ok := a.(*Adaptive); ok {
			if len(ad.Decisions()) == 0 || len(ad.Decisions()) != len(b.(*Adaptive).Decisions()) {
				t.Errorf("adaptive: %d and %d decisions", len(ad.Decisions()), len(b.(*Adaptive).Decisions()))
			}
		}
	}
}

// anonymous is a click log of one session per user, as e-commerce logs
// without accounts are (user id = session id): no session ever closes by
// a change of session id, and the events come a second apart.
func anonymous(users, length int) []feedback.Located {
	var out []feedback.Located
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for u := range users {
		for k := range length {
			id := fmt.Sprint("anon", u)
			out = append(out, feedback.Located{Event: feedback.Event{
				UserID: id, SessionID: id, ItemID: fmt.Sprint("i", (u*3+k)%60), Type: feedback.Click, TS: at,
			}, Offset: int64(len(out))})
			at = at.Add(time.Second)
		}
	}
	return out
}

// Decisions on an anonymous-session log: its sessions close only by the
// idle gap (here long: none does), so epochs of sessions never end; with
// epoch_events they end every that many events.
func TestDecisionsOnAnAnonymousSessionLog(t *testing.T) {
	evs := anonymous(100, 6)
	run := func(epochEvents int) *Adaptive {
		cfg := DefaultAdaptive()
		cfg.DQN.Rows, cfg.EpochSessions, cfg.EpochEvents, cfg.SampleEvery = 32, 30, epochEvents, 1
		cfg.DQN.IdleGap = time.Hour
		a, err := NewAdaptive(cfg, NewPolicyGradient(0.1, 1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
		learnBatches(t, a, evs, 50)
		return a
	}
	if a := run(0); len(a.Decisions()) != 0 || a.SessionsClosed() != 0 {
		t.Fatalf("test is vacuous: %d decisions, %d sessions closed without epoch_events", len(a.Decisions()), a.SessionsClosed())
	}
	a := run(100)
	if got, want := len(a.Decisions()), len(evs)/100; got != want {
		t.Fatalf("%d decisions over %d events with epoch_events 100, want %d", got, len(evs), want)
	}
	if err := (AdaptiveConfig{EpochEvents: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "epoch_events") {
		t.Fatalf("epoch_events -1: %v, want an error naming it", err)
	}
}

// TestDecisionLogIsBounded checks that the decisions an Adaptive keeps in
// memory stop growing at its bound, the latest kept, while every decision
// is still rewarded and published.
func TestDecisionLogIsBounded(t *testing.T) {
	a, err := NewAdaptive(smallAdaptive(5), NewPolicyGradient(0.1, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.logCap = 8
	var taken, rewarded []int
	a.OnDecision = func(d Decision) {
		if d.Rewarded {
			rewarded = append(rewarded, d.Epoch)
		} else {
			taken = append(taken, d.Epoch)
		}
	}
	evs := sessions(40, 8, 5, 2)
	learnBatches(t, a, evs, 64)
	ds := a.Decisions()
	if len(taken) <= 2*a.logCap {
		t.Fatalf("%d decisions: too few to pass the bound %d twice", len(taken), a.logCap)
	}
	if len(ds) > a.logCap || len(ds) < a.logCap/2 {
		t.Fatalf("%d decisions kept of %d, bound %d", len(ds), len(taken), a.logCap)
	}
	for i, d := range ds {
		if want := len(taken) - len(ds) + i + 1; d.Epoch != want {
			t.Fatalf("kept decision %d is epoch %d, want the latest ones (epoch %d)", i, d.Epoch, want)
		}
		if i < len(ds)-1 && !d.Rewarded {
			t.Fatalf("kept decision of epoch %d never rewarded", d.Epoch)
		}
	}
	if len(rewarded) != len(taken)-1 {
		t.Fatalf("%d decisions taken, %d rewarded: want all but the last", len(taken), len(rewarded))
	}
	for i, e := range rewarded {
		if e != i+1 {
			t.Fatalf("reward %d was for epoch %d, want %d", i, e, i+1)
		}
	}
}
