package model

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// revertModel is an adaptive model with tiered items and two hidden
// layers, trained a little (so the Adam moments and the rows' widths are
// not their starting ones), that takes no decision of its own.
func revertModel(t *testing.T, revert bool, ctrl Controller) *Adaptive {
	t.Helper()
	cfg := DefaultAdaptive()
	cfg.DQN, cfg.Tiers, cfg.TierAt = tieredDQN(t), nil, nil
	cfg.DQN.Hidden = []int{32, 32}
	cfg.EpochSessions, cfg.EpochEvents, cfg.SampleEvery, cfg.Revert = 1_000_000, 150, 1, revert
	a, err := NewAdaptive(cfg, ctrl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// netFingerprint is everything a network action changes: the online and
// target networks, the Adam moments and step, the tables and thresholds.
func netFingerprint(a *Adaptive) string {
	var s []string
	for _, n := range []*qnet{a.net, a.target} {
		for _, l := range n.layers() {
			s = append(s, fmt.Sprint(l.W, l.B))
		}
	}
	for _, o := range a.opts {
		s = append(s, fmt.Sprint(o.m, o.v, o.t))
	}
	widths := make([]int, a.tab.len())
	for x := range widths {
		widths[x] = a.tab.width(int32(x))
	}
	return fmt.Sprint(s, a.Checksum(), a.TierAt(), widths, a.Widths())
}

// Every kind of decision, reverted before anything is learned after it,
// leaves the model exactly as it was before it: its networks, target,
// Adam moments, thresholds, and each row's width and values (a narrowed
// row gets its tail back).
func TestRevertUndoesEveryAction(t *testing.T) {
	for _, kind := range []ActionKind{Widen, Narrow, AddLayer, RemoveLayer, TiersNarrower, TiersWider} {
		t.Run(string(kind), func(t *testing.T) {
			a := revertModel(t, true, &scripted{})
			b := feedback.BatchOf(clicks(0, 140, 9, func(i int) int { return (i * 7) % 41 })...)
			defer b.Release()
			if _, err := a.Learn(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			var act Action
			for _, c := range append(Candidates(a.net, a.acfg.Bounds, a.acfg.Step), a.tierActions()...) {
				if c.Kind == kind {
					act = c
					break
				}
			}
			if act.Kind != kind {
				t.Fatalf("no %s action offered", kind)
			}
			before := netFingerprint(a)
			a.ref, a.before = a.net.clone(), a.saveNet()
			if err := a.Apply(act, a.acfg.Bounds); err != nil {
				t.Fatal(err)
			}
			if netFingerprint(a) == before {
				t.Fatalf("%s changed nothing", act)
			}
			if err := a.revert(act); err != nil {
				t.Fatal(err)
			}
			if after := netFingerprint(a); after != before {
				t.Fatalf("after reverting %s the model differs", act)
			}
		})
	}
}

// A decision whose reward comes out negative (a widening priced far above
// any quality it could buy) is undone and marked reverted; without Revert
// it stands.
func TestNegativeRewardReverts(t *testing.T) {
	for _, revert := range []bool{true, false} {
		a := revertModel(t, revert, &scripted{kinds: []ActionKind{Widen}})
		a.acfg.Lambda = 1000
		b := feedback.BatchOf(clicks(0, 400, 9, func(i int) int { return (i * 7) % 41 })...)
		defer b.Release()
		if _, err := a.Learn(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		ds := a.Decisions()
		if len(ds) < 2 || ds[0].Action.Kind != Widen || !ds[0].Rewarded || ds[0].Reward >= 0 {
			t.Fatalf("revert %v: decisions %+v", revert, ds)
		}
		if ds[0].Reverted != revert || slices.Equal(ds[1].Before, ds[0].After) == revert || slices.Equal(ds[1].Before, ds[0].Before) != revert {
			t.Fatalf("revert %v: reverted %v, widths %v -> %v, then %v", revert, ds[0].Reverted, ds[0].Before, ds[0].After, ds[1].Before)
		}
	}
}

// A restore drops the decision awaiting its reward: it is neither
// rewarded nor reverted, so the restored network is not swapped for the
// one from before the decision.
func TestRestoreDropsThePendingDecision(t *testing.T) {
	a := revertModel(t, true, &scripted{kinds: []ActionKind{Widen}})
	a.acfg.Lambda = 1000 // the widening's reward would be negative
	learn := func(from, n int) {
		b := feedback.BatchOf(clicks(from, n, 9, func(i int) int { return (i * 7) % 41 })...)
		defer b.Release()
		if _, err := a.Learn(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	learn(0, 160) // the widening is taken at the 150th event
	if ds := a.Decisions(); len(ds) != 1 || ds[0].Action.Kind != Widen || ds[0].Rewarded {
		t.Fatalf("decisions %+v, want one widening awaiting its reward", ds)
	}
	if err := a.Restore(snapshotOf(t, a.DQN, "")); err != nil {
		t.Fatal(err)
	}
	restored := a.Widths()
	learn(160, 200)
	ds := a.Decisions()
	if len(ds) < 2 || ds[0].Rewarded || ds[0].Reverted || !slices.Equal(ds[1].Before, restored) {
		t.Fatalf("after the restore: decisions %+v, want the first unrewarded and the second from %v", ds, restored)
	}
}
