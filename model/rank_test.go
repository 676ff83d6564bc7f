package model

import (
	"math"
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
