package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestOrderRanksNaNLast(t *testing.T) {
	o := order{score: []float64{1, math.NaN(), 3, 2}}
	if r := o.rank(1, nil); r != 4 {
		t.Fatalf("NaN target ranked %d, want a miss", r)
	}
	if r := o.rank(0, nil); r != 2 {
		t.Fatalf("rank of item 0 = %d, want 2 (NaN ranks last)", r)
	}
	if r := o.rank(0, map[int32]struct{}{2: {}}); r != 1 {
		t.Fatalf("exclusion ignored: %d", r)
	}
	var h minHeap
	if top := o.top(2, nil, &h); top[0] != 2 || top[1] != 3 {
		t.Fatalf("top = %v", top)
	}
}

func TestRankUpToStopsAtTheLimit(t *testing.T) {
	score := []float64{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}
	exclude := map[int32]struct{}{0: {}}
	o := order{score: score}
	for target := range int32(len(score)) {
		full := o.rank(target, exclude)
		for _, limit := range []int{1, 3, 20} {
			if got := o.rankUpTo(target, exclude, limit); got != min(full, limit) {
				t.Fatalf("target %d limit %d: rankUpTo %d, rank %d", target, limit, got, full)
			}
		}
	}
}

// sameTop reports whether got is want, but that NaN-scored items, which
// better leaves unordered among themselves, may be any distinct ones.
func sameTop(o order, exclude map[int32]struct{}, got, want []int32) bool {
	if got == nil || len(got) != len(want) {
		return false
	}
	seen := map[int32]bool{}
	for i, g := range got {
		if _, ex := exclude[g]; ex || seen[g] {
			return false
		}
		seen[g] = true
		if w := o.score[want[i]]; w == w && g != want[i] || w != w && o.score[g] == o.score[g] {
			return false
		}
	}
	return true
}

// top returns the n best non-excluded items, best first, as sorting them
// all by better does, and rank is a non-NaN item's place in that order:
// with ties (broken by the tie key, then by index), NaN scores,
// exclusions, and n of 0, 1, many and more than there are.
func TestTopIsTheSortedPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var h minHeap
	for trial := range 200 {
		items := 1 + rng.IntN(300)
		o := order{score: make([]float64, items)}
		if trial%2 == 0 {
			o.tie = make([]float64, items)
		}
		exclude := map[int32]struct{}{}
		for j := range items {
			switch r := rng.IntN(10); {
			case r == 0:
				o.score[j] = math.NaN()
			case r < 4:
				o.score[j] = float64(rng.IntN(3)) // many ties
			default:
				o.score[j] = rng.NormFloat64()
			}
			if o.tie != nil {
				o.tie[j] = float64(rng.IntN(2))
			}
			if rng.IntN(5) == 0 {
				exclude[int32(j)] = struct{}{}
			}
		}
		var want []int32
		for j := range int32(items) {
			if _, ex := exclude[j]; !ex {
				want = append(want, j)
			}
		}
		slices.SortFunc(want, func(a, b int32) int {
			if o.better(a, b) {
				return -1
			}
			return 1
		})
		for r, target := range want {
			if o.score[target] != o.score[target] {
				break // NaNs sort last, unordered among themselves
			}
			if got := o.rank(target, exclude); got != r {
				t.Fatalf("trial %d, %d items: rank of %d is %d, want %d", trial, items, target, got, r)
			}
			if got := o.rankUpTo(target, exclude, 7); got != min(r, 7) {
				t.Fatalf("trial %d, %d items: rankUpTo(%d, 7) is %d, want %d", trial, items, target, got, min(r, 7))
			}
		}
		for _, n := range []int{0, 1, 7, 50, items + 3} {
			got := o.top(n, exclude, &h)
			w := want[:min(n, len(want))]
			if !sameTop(o, exclude, got, w) {
				t.Fatalf("trial %d, %d items, n %d: top %v, want %v", trial, items, n, got, w)
			}
		}
	}
}
