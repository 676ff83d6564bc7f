package model

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// churn is a stream over a catalogue that drifts: event i picks among
// the items around i/10, so old items go cold and new ones arrive.
func churn(n int) []feedback.Located {
	rng := rand.New(rand.NewPCG(5, 6))
	evs := make([]feedback.Located, n)
	for i := range evs {
		evs[i] = feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", rng.IntN(40)), SessionID: fmt.Sprint("s", i/100),
			ItemID: fmt.Sprint("i", i/10+rng.IntN(30)), Type: feedback.Click, TS: time.Unix(int64(1_700_000_000+i), 0)}, Offset: int64(i)}
	}
	return evs
}

// itemView is what a DQN holds about its items, by item ID.
type itemView struct {
	row      map[string][]float32
	bias     map[string]float32
	seen     map[string]int64
	pop      map[string]float64
	co, sr   map[[2]string]float64
	count    map[string]float64
	recent   map[string][]string // per user
	consumed map[string][]string
	replay   []string   // oldest first: the chosen item and the state's
	trs      [][]string // the same as lists
}

func viewOf(d *DQN) itemView {
	id := d.items.ID
	v := itemView{row: map[string][]float32{}, bias: map[string]float32{}, seen: map[string]int64{}, pop: map[string]float64{},
		co: map[[2]string]float64{}, sr: map[[2]string]float64{}, count: map[string]float64{},
		recent: map[string][]string{}, consumed: map[string][]string{}}
	d.growSeen()
	for x := range int32(d.items.Len()) {
		v.row[id(x)], v.bias[id(x)], v.seen[id(x)] = slices.Clone(d.erow(x)), d.bias[x], d.seen[x]
		if int(x) < len(d.pop.score) {
			v.pop[id(x)] = d.pop.score[x]
		}
	}
	for _, c := range []struct {
		co  *cooc
		out map[[2]string]float64
	}{{&d.co, v.co}, {&d.rules, v.sr}} {
		for x, nb := range c.co.nbrs {
			for j, y := range nb.item {
				c.out[[2]string{id(int32(x)), id(y)}] = nb.count[j]
			}
			for j, y := range nb.item {
				if p, ok := nb.at(y); !ok || int(p) != j {
					panic("a neighbour index out of step")
				}
			}
		}
	}
	for x, n := range d.co.count {
		v.count[id(int32(x))] = n
	}
	d.users.each(func(u *UserState) {
		for _, it := range u.Recent {
			v.recent[u.ID] = append(v.recent[u.ID], id(it))
		}
		for it := range u.Consumed {
			v.consumed[u.ID] = append(v.consumed[u.ID], id(it))
		}
		slices.Sort(v.consumed[u.ID])
	})
	for _, tr := range append(slices.Clone(d.replay[d.replayNext:]), d.replay[:d.replayNext]...) {
		v.replay = append(v.replay, fmt.Sprint(id(tr.pos), idsOf(d, tr.recent[:tr.n])))
		v.trs = append(v.trs, append([]string{id(tr.pos)}, idsOf(d, tr.recent[:tr.n])...))
	}
	return v
}

func idsOf(d *DQN, xs []int32) []string {
	out := make([]string, len(xs))
	for k, x := range xs {
		out[k] = d.items.ID(x)
	}
	return out
}

// TestExpiryKeepsTheRest expires the coldest items of a trained DQN (dense
// and tiered tables) and checks, by item ID, that the expired ones are the
// least recently seen and have left every table, history and transition,
// and that everything about the others is as it was.
func TestExpiryKeepsTheRest(t *testing.T) {
	for _, tiered := range []bool{false, true} {
		t.Run(fmt.Sprintf("tiers=%v", tiered), func(t *testing.T) {
			cfg := DefaultDQN()
			cfg.Rows, cfg.Replay = 32, 2000
			if tiered {
				cfg.Tiers, cfg.TierAt = []int{16}, []float64{5}
			}
			d := newDQN(t, cfg)
			learnAll(t, d, churn(3000))
			before := viewOf(d)
			n := d.items.Len()
			d.cfg.MaxItems = 200
			d.boundItems()
			after := viewOf(d)
			if got := d.items.Len(); got != 180 || d.ItemsExpired() != int64(n-180) {
				t.Fatalf("%d items and %d expired of %d, want 180 and %d", got, d.ItemsExpired(), n, n-180)
			}
			gone := map[string]bool{}
			oldestKept := int64(1 << 62)
			for id, ts := range before.seen {
				if _, ok := after.seen[id]; !ok {
					gone[id] = true
				} else {
					oldestKept = min(oldestKept, ts)
				}
			}
			for id := range gone {
				if before.seen[id] > oldestKept {
					t.Fatalf("%s (seen %d) expired while one seen at %d stayed", id, before.seen[id], oldestKept)
				}
			}
			for id := range after.row {
				if !slices.Equal(after.row[id], before.row[id]) || after.bias[id] != before.bias[id] || after.pop[id] != before.pop[id] || after.count[id] != before.count[id] {
					t.Fatalf("item %s changed", id)
				}
			}
			for _, c := range []struct{ before, after map[[2]string]float64 }{{before.co, after.co}, {before.sr, after.sr}} {
				want := map[[2]string]float64{}
				for p, n := range c.before {
					if !gone[p[0]] && !gone[p[1]] {
						want[p] = n
					}
				}
				if !maps.Equal(want, c.after) {
					t.Fatalf("co-occurrence: %d pairs after, want the %d of the items kept", len(c.after), len(want))
				}
			}
			keep := func(ids []string) []string {
				return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return gone[id] })
			}
			for u, r := range before.recent {
				if !slices.Equal(keep(r), after.recent[u]) || !slices.Equal(keep(before.consumed[u]), after.consumed[u]) {
					t.Fatalf("user %s: recent %v consumed %v, want %v and %v", u, after.recent[u], after.consumed[u], keep(r), keep(before.consumed[u]))
				}
			}
			var wantReplay []string
			for _, tr := range before.trs {
				if !gone[tr[0]] {
					wantReplay = append(wantReplay, fmt.Sprint(tr[0], keep(tr[1:])))
				}
			}
			if !slices.Equal(after.replay, wantReplay) || len(wantReplay) == len(before.replay) {
				t.Fatalf("replay: %d transitions kept of %d, want %d", len(after.replay), len(before.replay), len(wantReplay))
			}
			// It goes on learning, and an expired item seen again is new.
			more := churn(3300)[3000:]
			more[0].ItemID = "i0"
			learnAll(t, d, more)
			if d.items.Len() > 200 {
				t.Fatalf("%d items after more events, bound 200", d.items.Len())
			}
		})
	}
}

// Replicas that expire items and exchange snapshots keep their tallies in
// step: no count goes negative (a peer's tally loses what expiry took from
// the model too), and a replica that restarts from its own snapshot and
// merges its peer's again is where it was.
func TestReplicasWithExpiry(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows, cfg.MaxItems = 32, 60
	halves := byUser(churn(2400), 2)
	a, b := replica(t, cfg, "a"), replica(t, cfg, "b")
	var sb *Snapshot
	for r := range 4 {
		lo, hi := r*len(halves[0])/4, (r+1)*len(halves[0])/4
		learnAll(t, a, halves[0][lo:hi])
		learnAll(t, b, halves[1][lo:hi])
		if err := b.Merge(snapshotOf(t, a, "a"), 0.5); err != nil {
			t.Fatal(err)
		}
		sb = snapshotOf(t, b, "b")
		if err := a.Merge(sb, 0.5); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []*DQN{a, b} {
		if d.ItemsExpired() == 0 {
			t.Fatalf("replica %s expired no item", d.sums.self)
		}
		for _, c := range []*cooc{&d.co, &d.rules} {
			for x, n := range c.count {
				if n < 0 {
					t.Fatalf("replica %s: item %s counted %g", d.sums.self, d.items.ID(int32(x)), n)
				}
				for _, v := range c.nbrs[x].count {
					if v < 0 {
						t.Fatalf("replica %s: a pair of item %s counted %g", d.sums.self, d.items.ID(int32(x)), v)
					}
				}
			}
		}
		viewOf(d) // every index names an item
	}
	again := replica(t, cfg, "a")
	if err := again.Restore(snapshotOf(t, a, "a")); err != nil {
		t.Fatal(err)
	}
	if err := again.Merge(sb, 0.5); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "restarted replica a", again, a)
}
