package model

import (
	"fmt"

	"math"
	"math/rand/v2"
	"testing"
)

// TestContextPairIsTheGradient checks contextPair against the numerical
// gradient of -log σ(ctx·pos - ctx·neg), with rows of equal widths and of
// three different ones (a row is zero past its own width).
func TestContextPairIsTheGradient(t *testing.T) {
	for _, w := range [][3]int{{8, 8, 8}, {8, 4, 6}, {4, 8, 6}, {6, 8, 4}} {
		rng := rand.New(rand.NewPCG(5, 6))
		row := func(n int) []float32 {
			r := make([]float32, n)
			for j := range r {
				r[j] = float32(rng.NormFloat64() * 0.5)
			}
			return r
		}
		ctx, pos, neg := row(w[0]), row(w[1]), row(w[2])
		loss := func() float64 {
			var diff float64
			for j := range min(len(ctx), len(pos)) {
				diff += float64(ctx[j] * pos[j])
			}
			for j := range min(len(ctx), len(neg)) {
				diff -= float64(ctx[j] * neg[j])
			}
			return math.Log1p(math.Exp(-diff))
		}
		const h = 1e-3
		grad := func(v []float32) []float64 {
			var g []float64
			for j := range v {
				old := v[j]
				v[j] = old + h
				up := loss()
				v[j] = old - h
				down := loss()
				v[j] = old
				g = append(g, (up-down)/(2*h))
			}
			return g
		}
		rows := [][]float32{ctx, pos, neg}
		var want [][]float64
		var before [][]float32
		for _, r := range rows {
			want = append(want, grad(r))
			before = append(before, append([]float32(nil), r...))
		}
		const lr = 0.01
		contextPair(ctx, pos, neg, lr)
		for i, r := range rows {
			for j := range r {
				got := -float64(r[j]-before[i][j]) / lr
				if math.Abs(got-want[i][j]) > 2e-3*math.Max(1, math.Abs(want[i][j])) {
					t.Fatalf("widths %v, row %d [%d]: -step/lr %v, gradient %v", w, i, j, got, want[i][j])
				}
			}
		}
	}
}

// TestContextNegativesLearnWhatFollows checks that the item pairs alone
// teach the tables which items come near each other: in a stream where
// each user walks a ring of items with random steps, with the ranking
// loss's step near 0, the items within two windows of an item rank above
// the rest, as seen from its row, with context_negatives, and at chance
// without. (Both losses on, the ranking loss alone already learns this
// ring: pairs earn their place on real logs, README "Item pairs".)
func TestContextNegativesLearnWhatFollows(t *testing.T) {
	const items, users = 100, 40
	rng := rand.New(rand.NewPCG(7, 8))
	at := make([]int, users)
	walk := clicks(0, 3000, users, func(i int) int {
		u := i % users
		at[u] = (at[u] + 1 + rng.IntN(3)) % items
		return at[u]
	})
	auc := func(negatives int) float64 {
		cfg := DefaultDQN()
		cfg.Rows, cfg.ContextNegatives, cfg.ContextLR, cfg.EmbLR = 32, negatives, 0.015, 1e-6
		d := newDQN(t, cfg)
		learnAll(t, d, walk)
		var won, all float64
		for j := range items {
			c, _ := d.items.Lookup(fmt.Sprint("i", j))
			ctx := d.inrow(c)
			// Near: within 2·window steps either way; far: the rest.
			for k := items - 2*cfg.Window; k <= items+2*cfg.Window; k++ {
				if k == items {
					continue
				}
				f, _ := d.items.Lookup(fmt.Sprint("i", (j+k)%items))
				for m := 2*cfg.Window + 1; m < items-2*cfg.Window; m++ {
					o, _ := d.items.Lookup(fmt.Sprint("i", (j+m)%items))
					if dot32(ctx, d.erow(f)) > dot32(ctx, d.erow(o)) {
						won++
					}
					all++
				}
			}
		}
		return won / all
	}
	off, on := auc(0), auc(4)
	t.Logf("AUC of the items near an item: %.3f without pairs, %.3f with", off, on)
	if !(on > 0.9 && off < 0.6) {
		t.Fatalf("AUC %.3f with context pairs, %.3f without: want above 0.9 and near 0.5", on, off)
	}
}

// BenchmarkContextPair times one pair step on rows of the default width.
func BenchmarkContextPair(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([][]float32, 3)
	for i := range rows {
		rows[i] = make([]float32, DefaultDQN().Dim)
		for j := range rows[i] {
			rows[i][j] = float32(rng.NormFloat64() * 0.1)
		}
	}
	for b.Loop() {
		contextPair(rows[0], rows[1], rows[2], 1e-6)
	}
}
