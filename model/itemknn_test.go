package model

import (
	"math/rand/v2"
	"testing"
)

// A co-occurrence row finds every item's place as a map of the places
// does, through adds and bumps of new and known items, across the scanned
// rows' length and the table's growth, for items never added, and after
// the row is rewritten and reindexed (as expiry does).
func TestNeighboursIndexAgainstAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		var n neighbours
		want := map[int32]int32{}
		count := map[int32]float64{}
		check := func(when string) {
			if long := len(n.item) > posScan; long != (n.pos.slots != nil) || long && len(n.pos.slots) < 2*len(n.item) {
				t.Fatalf("trial %d, %s: a row of %d items has %d slots", trial, when, len(n.item), len(n.pos.slots))
			}
			for y := range int32(3000) {
				p, ok := n.at(y)
				w, wok := want[y]
				if ok != wok || ok && p != w {
					t.Fatalf("trial %d, %s: item %d at %d (%v), want %d (%v)", trial, when, y, p, ok, w, wok)
				}
				if ok && (n.item[p] != y || n.count[p] != count[y]) {
					t.Fatalf("trial %d, %s: item %d's entry is %d with count %v, want count %v", trial, when, y, n.item[p], n.count[p], count[y])
				}
			}
		}
		size := 1 + rng.IntN(600)
		for range size {
			y := rng.Int32N(2000) // some repeat
			_, known := want[y]
			by := float64(1 + rng.IntN(3))
			var added bool
			if rng.IntN(2) == 0 {
				added, by = n.add(y), 1
			} else {
				added = n.bump(y, by)
			}
			if added == known {
				t.Fatalf("trial %d: adding %d reported new %v, but it was known %v", trial, y, added, known)
			}
			if !known {
				want[y] = int32(len(want))
			}
			count[y] += by
		}
		check("after the adds")
		// Drop every third entry and renumber the rest, as expiry does.
		w := 0
		for j, y := range n.item {
			if j%3 == 0 {
				delete(want, y)
				continue
			}
			y += 1000 // a renumbered item, maybe the index of a dropped one
			n.item[w], n.count[w] = y, n.count[j]
			w++
		}
		n.item, n.count = n.item[:w], n.count[:w]
		want, count = map[int32]int32{}, map[int32]float64{}
		for j, y := range n.item {
			want[y], count[y] = int32(j), n.count[j]
		}
		n.reindex()
		check("after a reindex")
	}
}
