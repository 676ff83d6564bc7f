package model

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// TestLRUAgainstAReference runs random operations on an LRU and on a plain
// slice kept in recency order, and compares every answer and eviction.
func TestLRUAgainstAReference(t *testing.T) {
	type kv struct{ k, v int }
	rng := rand.New(rand.NewPCG(1, 2))
	c := NewLRU[int, int](5)
	var ref []kv // oldest first
	var evicted, refEvicted []kv
	c.OnEvict = func(k, v int) { evicted = append(evicted, kv{k, v}) }
	find := func(k int) int { return slices.IndexFunc(ref, func(e kv) bool { return e.k == k }) }
	for step := range 20000 {
		k := rng.IntN(9)
		switch op := rng.IntN(6); op {
		case 0, 1: // Put
			if i := find(k); i >= 0 {
				ref = slices.Delete(ref, i, i+1)
			}
			ref = append(ref, kv{k, step})
			if len(ref) > 5 {
				refEvicted = append(refEvicted, ref[0])
				ref = ref[1:]
			}
			c.Put(k, step)
		case 2: // Get
			v, ok := c.Get(k)
			i := find(k)
			if ok != (i >= 0) || ok && v != ref[i].v {
				t.Fatalf("step %d: Get(%d) = %d, %v; want %v", step, k, v, ok, ref)
			}
			if ok {
				e := ref[i]
				ref = append(slices.Delete(ref, i, i+1), e)
			}
		case 3: // Peek
			v, ok := c.Peek(k)
			if i := find(k); ok != (i >= 0) || ok && v != ref[i].v {
				t.Fatalf("step %d: Peek(%d) = %d, %v; want %v", step, k, v, ok, ref)
			}
		case 4: // Remove
			if i := find(k); i >= 0 {
				refEvicted = append(refEvicted, ref[i])
				ref = slices.Delete(ref, i, i+1)
			}
			c.Remove(k)
		case 5: // Take
			v, ok := c.Take(k)
			i := find(k)
			if ok != (i >= 0) || ok && v != ref[i].v {
				t.Fatalf("step %d: Take(%d) = %d, %v; want %v", step, k, v, ok, ref)
			}
			if ok {
				ref = slices.Delete(ref, i, i+1)
			}
		}
		var got []kv
		c.Each(func(k, v int) { got = append(got, kv{k, v}) })
		if !slices.Equal(got, ref) || c.Len() != len(ref) || !slices.Equal(evicted, refEvicted) {
			t.Fatalf("step %d: entries %v (len %d), evicted %v; want %v, evicted %v", step, got, c.Len(), evicted, ref, refEvicted)
		}
		if k, v, ok := c.Oldest(); ok != (len(ref) > 0) || ok && (kv{k, v}) != ref[0] {
			t.Fatalf("step %d: Oldest %d %d %v; want %v", step, k, v, ok, ref)
		}
	}
}

// liteStream is a stream with what compact users must get right: users
// with one event (most of them), users who come back after their session
// closed by the idle gap, users evicted by the bound and by the TTL and
// seen again, given and derived session names, and a user's second event
// in the same batch as its first.
func liteStream() []feedback.Located {
	rng := rand.New(rand.NewPCG(3, 4))
	var evs []feedback.Located
	ts := time.Unix(1_700_000_000, 0)
	for i := range 3000 {
		ts = ts.Add(time.Duration(rng.IntN(40)) * time.Second)
		user := fmt.Sprint("new", i) // one event
		switch r := rng.IntN(10); {
		case r < 3:
			user = fmt.Sprint("back", rng.IntN(60))
		case r == 3:
			user = fmt.Sprint("new", max(i-rng.IntN(4), 0)) // a second event soon after
		}
		e := feedback.Event{UserID: user, ItemID: fmt.Sprint("i", rng.IntN(150)), Type: feedback.Type(1 + rng.IntN(2)), TS: ts.Add(-time.Duration(rng.IntN(5)) * time.Second)}
		switch rng.IntN(3) {
		case 0:
			e.SessionID = SessionName(user, e.TS)
		case 1:
			e.SessionID = fmt.Sprint("given", i/50)
		}
		evs = append(evs, feedback.Located{Event: e, Partition: int32(i % 2), Offset: int64(i)})
	}
	return evs
}

// TestCompactUsersChangeNothing replays one stream through every model
// with and without compact users: the lists, the closed sessions, the
// users remembered and evicted, and the DQNs' weights and snapshots must
// be the same, and most users must have been kept compact. Items expire
// too (max_items), taking their place in compact users' states with them.
func TestCompactUsersChangeNothing(t *testing.T) {
	evs := liteStream()
	for _, name := range []string{"dqn", "dqn-slim", "adaptive-rl", "itemknn", "sr", "sknn", "pop"} {
		t.Run(name, func(t *testing.T) {
			var lists [2][]string
			var closed [2]int64
			var snaps [2][]byte
			var users [2]int
			var compact int
			for k, on := range []bool{false, true} {
				opts := DefaultOptions()
				opts.CompactUsers, opts.MaxUsers, opts.UserTTL, opts.IdleGap, opts.MaxItems = on, 400, 20*time.Minute, 5*time.Minute, 100
				opts.DQN.Rows = 32
				m, err := Build(name, opts)
				if err != nil {
					t.Fatal(err)
				}
				for lo := 0; lo < len(evs); lo += 64 {
					b := feedback.BatchOf(evs[lo:min(lo+64, len(evs))]...)
					recs, err := m.Learn(context.Background(), b)
					b.Release()
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range recs {
						r.TS = time.Time{}
						lists[k] = append(lists[k], fmt.Sprint(r))
					}
				}
				if e, ok := m.(interface{ ItemsExpired() int64 }); ok && e.ItemsExpired() == 0 {
					t.Fatal("no item expired")
				}
				store := usersOf(m)
				closed[k], users[k] = store.SessionsClosed(), store.Len()
				if on {
					compact = store.Compacted()
				}
				if s, ok := m.(Snapshotter); ok {
					var buf bytes.Buffer
					if _, err := s.WriteSnapshot(&buf, SnapshotMeta{}); err != nil {
						t.Fatal(err)
					}
					snaps[k] = buf.Bytes()
				}
			}
			if len(lists[0]) != len(lists[1]) {
				t.Fatalf("%d lists in full, %d compact", len(lists[0]), len(lists[1]))
			}
			for i := range lists[0] {
				if lists[0][i] != lists[1][i] {
					t.Fatalf("list %d: full %s\ncompact %s", i, lists[0][i], lists[1][i])
				}
			}
			if closed[0] != closed[1] || users[0] != users[1] || closed[0] == 0 {
				t.Fatalf("sessions closed %v, users %v (full, compact)", closed, users)
			}
			if snaps[0] != nil {
				a, errA := ReadSnapshot(bytes.NewReader(snaps[0]))
				b, errB := ReadSnapshot(bytes.NewReader(snaps[1]))
				if errA != nil || errB != nil {
					t.Fatal(errA, errB)
				}
				if len(a.rows) != len(b.rows) {
					t.Fatalf("%d rows in full, %d compact", len(a.rows), len(b.rows))
				}
				for name, r := range a.rows {
					if fmt.Sprint(r) != fmt.Sprint(b.rows[name]) {
						t.Errorf("row %s: full %.300v\ncompact %.300v", name, r, b.rows[name])
					}
				}
				a.Meta.Created, a.Meta.Checksum, b.Meta.Created, b.Meta.Checksum = time.Time{}, "", time.Time{}, "" // when it was written
				if fmt.Sprint(a.Meta) != fmt.Sprint(b.Meta) {
					t.Fatalf("metadata: full %+v\ncompact %+v", a.Meta, b.Meta)
				}
			}
			if name != "sknn" && compact < users[1]/2 {
				t.Fatalf("%d of %d users compact", compact, users[1])
			}
		})
	}
}

// usersOf is the user store of a model.
func usersOf(m Recommender) *UserStore {
	switch m := m.(type) {
	case *DQN:
		return m.users
	case *Adaptive:
		return m.users
	case *ItemKNN:
		return m.users
	case *SR:
		return m.users
	case *SKNN:
		return m.users
	case *Popularity:
		return m.users
	}
	panic(fmt.Sprintf("no user store in %T", m))
}

// TestCompactUsersRestore restores a snapshot of a model with compact
// users into models with and without them: each continues exactly as the
// original does, and the compact one keeps its one-event users compact.
func TestCompactUsersRestore(t *testing.T) {
	evs := liteStream()
	opts := DefaultOptions()
	opts.MaxUsers, opts.UserTTL, opts.IdleGap = 400, 20*time.Minute, 5*time.Minute
	opts.DQN.Rows = 32
	build := func(compact bool) *DQN {
		o := opts
		o.CompactUsers = compact
		m, err := Build("dqn", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.(*DQN).Close)
		return m.(*DQN)
	}
	learn := func(d *DQN, from, to int) []string {
		var out []string
		for lo := from; lo < to; lo += 64 {
			b := feedback.BatchOf(evs[lo:min(lo+64, to)]...)
			recs, err := d.Learn(context.Background(), b)
			b.Release()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				r.TS = time.Time{}
				out = append(out, fmt.Sprint(r))
			}
		}
		return out
	}
	d := build(true)
	learn(d, 0, 2048)
	var buf bytes.Buffer
	if _, err := d.WriteSnapshot(&buf, SnapshotMeta{}); err != nil {
		t.Fatal(err)
	}
	want := learn(d, 2048, len(evs))
	for _, compact := range []bool{true, false} {
		s, err := ReadSnapshot(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		r := build(compact)
		if err := r.Restore(s); err != nil {
			t.Fatal(err)
		}
		if n := r.users.Compacted(); compact != (n > 0) {
			t.Fatalf("compact %v: %d users compact after the restore", compact, n)
		}
		got := learn(r, 2048, len(evs))
		if !slices.Equal(got, want) || r.Checksum() != d.Checksum() {
			t.Fatalf("compact %v: the restored model served %d lists (%d equal to the original's %d), checksum %x against %x",
				compact, len(got), countEqual(got, want), len(want), r.Checksum(), d.Checksum())
		}
	}
}

func countEqual(a, b []string) int {
	n := 0
	for i := range min(len(a), len(b)) {
		if a[i] == b[i] {
			n++
		}
	}
	return n
}

// TestMaxNewUsersReachTheStore checks where the bound on new users comes
// from: the adaptive model's own key, or the shared one for every other
// model, none by default but for the adaptive model; and that the
// adaptive model's is not applied to users kept in full.
func TestMaxNewUsersReachTheStore(t *testing.T) {
	evs := liteStream()
	for _, tt := range []struct {
		name        string
		shared, own int
		compact     bool
		wantMax     int // the bound the store must keep (0: none)
	}{
		{"dqn", 0, 100, true, 0},
		{"dqn", 50, 0, true, 50},
		{"adaptive-rl", 0, 40, true, 40},
		{"adaptive-rl", 50, 0, true, 50},
		{"adaptive-rl", 0, 40, false, 0},
		{"itemknn", 30, 0, true, 30},
	} {
		t.Run(fmt.Sprintf("%s/shared=%d/own=%d/compact=%v", tt.name, tt.shared, tt.own, tt.compact), func(t *testing.T) {
			opts := DefaultOptions()
			opts.MaxUsers, opts.IdleGap, opts.CompactUsers, opts.MaxNewUsers = 400, 5*time.Minute, tt.compact, tt.shared
			opts.Adaptive.MaxNewUsers = tt.own
			opts.DQN.Rows = 32
			m, err := Build(tt.name, opts)
			if err != nil {
				t.Fatal(err)
			}
			peak := 0
			for lo := 0; lo < len(evs); lo += 64 {
				b := feedback.BatchOf(evs[lo:min(lo+64, len(evs))]...)
				if _, err := m.Learn(context.Background(), b); err != nil {
					t.Fatal(err)
				}
				b.Release()
				peak = max(peak, usersOf(m).Compacted())
			}
			switch {
			case tt.wantMax > 0 && peak != tt.wantMax:
				t.Fatalf("at most %d users compact, want %d", peak, tt.wantMax)
			case tt.wantMax == 0 && tt.compact && peak <= 100:
				t.Fatalf("at most %d users compact: bounded by none of its keys", peak)
			case !tt.compact && peak != 0:
				t.Fatalf("%d users compact with compact users off", peak)
			}
		})
	}
}
