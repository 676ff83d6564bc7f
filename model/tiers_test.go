package model

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// A tiered table holds each item's row at its tier's width, moves rows
// between tiers keeping their prefix (and every other row where it was),
// and scores every item as the dense table of zero-padded rows does.
func TestTiersMoveAndScore(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tb, err := newTiers([]int{4, 8, 16})
	if err != nil {
		t.Fatal(err)
	}
	const items = 50
	for x := range items {
		tr := x % 3
		row := make([]float32, tb.widths[tr])
		for j := range row {
			row[j] = float32(rng.NormFloat64())
		}
		if got := tb.add(tr, row); got != int32(x) {
			t.Fatalf("add returned %d, want %d", got, x)
		}
	}
	check := func(when string) {
		t.Helper()
		q := make([]float32, 16)
		for j := range q {
			q[j] = float32(rng.NormFloat64())
		}
		got := make([]float32, items)
		var buf []float32
		tb.dots(q, got, &buf)
		dense := tb.dense()
		params := 0
		for x := range items {
			var want float32
			for j := range 16 {
				want += q[j] * dense[x*16+j]
			}
			if d := got[x] - want; d > 1e-4 || d < -1e-4 {
				t.Fatalf("%s: item %d scores %v, the dense table %v", when, x, got[x], want)
			}
			params += tb.width(int32(x))
		}
		if tb.params() != params {
			t.Fatalf("%s: %d params, want %d", when, tb.params(), params)
		}
	}
	check("added")
	before := make([][]float32, items)
	for x := range items {
		before[x] = slices.Clone(tb.row(int32(x)))
	}
	// Widen item 3 (tier 0 -> 2) exactly, narrow item 2 (tier 2 -> 1).
	tb.move(3, 2, 0, rng)
	tb.move(2, 1, 0, rng)
	if w := tb.width(3); w != 16 || !slices.Equal(tb.row(3)[:4], before[3]) || slices.ContainsFunc(tb.row(3)[4:], func(v float32) bool { return v != 0 }) {
		t.Fatalf("widened row %v from %v", tb.row(3), before[3])
	}
	if !slices.Equal(tb.row(2), before[2][:8]) {
		t.Fatalf("narrowed row %v from %v", tb.row(2), before[2])
	}
	for x := range items {
		if x != 2 && x != 3 && !slices.Equal(tb.row(int32(x)), before[x]) {
			t.Fatalf("item %d's row moved: %v, was %v", x, tb.row(int32(x)), before[x])
		}
	}
	check("moved")
	// Widening with noise changes only the new values.
	tb.move(0, 1, 0.01, rng)
	if r := tb.row(0); !slices.Equal(r[:4], before[0]) || !slices.ContainsFunc(r[4:], func(v float32) bool { return v != 0 }) {
		t.Fatalf("noisy widening: %v from %v", r, before[0])
	}
	check("noisy")
	if _, err := newTiers([]int{8, 8}); err == nil {
		t.Fatal("accepted widths that do not ascend")
	}
}
