package model

import (
	"math/rand/v2"
	"testing"
)

// EWC keeps what the network learned on an earlier pattern while it trains
// on a new one: after training on task A, then on task B, the ranking loss
// on A stays close to where A's training left it with EWC, and rises
// without it.
func TestEWCPreservesAnEarlierPattern(t *testing.T) {
	lossOnAAfterB := func(lambda float64) (afterA, afterB, bBefore, bAfter float32) {
		rng := rand.New(rand.NewPCG(1, 1))
		n := newQNet(12, 8, []int{32}, rng)
		const rows, negs = 32, 8
		g, err := newTrainGraph(n, rows, 0, negs, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer g.close()
		type task struct{ x, epos, ehard []float32 }
		mk := func(seed uint64) task {
			r := rand.New(rand.NewPCG(seed, 2))
			fill := func(k int) []float32 {
				s := make([]float32, k)
				for i := range s {
					s[i] = float32(r.NormFloat64())
				}
				return s
			}
			return task{fill(len(g.X)), fill(len(g.Epos)), fill(len(g.Ehard))}
		}
		a, b := mk(10), mk(20)
		var opts []*adam
		var weights [][]float32
		for _, l := range n.layers() {
			opts = append(opts, newAdam(len(l.W), 1e-2), newAdam(len(l.B), 1e-2))
			weights = append(weights, l.W, l.B)
		}
		e := newEWC(lambda, weights)
		run := func(tk task, steps int, train bool) float32 {
			var loss float32
			for range steps {
				copy(g.X, tk.x)
				copy(g.Epos, tk.epos)
				copy(g.Ehard, tk.ehard)
				bpr, _, err := g.run()
				if err != nil {
					t.Fatal(err)
				}
				loss = bpr
				if !train {
					continue
				}
				for i, w := range weights {
					gr := append([]float32(nil), grad(g.weights[i])...)
					e.observe(i, gr)
					e.penalize(i, w, gr)
					opts[i].step(w, gr, 1)
				}
			}
			return loss
		}
		run(a, 300, true)
		afterA = run(a, 1, false)
		e.consolidate(weights)
		bBefore = run(b, 1, false)
		run(b, 300, true)
		return afterA, run(a, 1, false), bBefore, run(b, 1, false)
	}
	a0, b0, _, _ := lossOnAAfterB(0)
	a1, b1, bb, ba := lossOnAAfterB(0.05)
	t.Logf("ranking loss on A: after A %.4f; after B without EWC %.4f, with EWC (λ=0.05) %.4f (after A %.4f); B with EWC: %.4f before, %.4f after", a0, b0, b1, a1, bb, ba)
	if b0-a0 < 0.05 {
		t.Fatalf("task B did not disturb task A without EWC (%.4f -> %.4f): the test shows nothing", a0, b0)
	}
	if b1 >= b0/2 {
		t.Fatalf("EWC did not protect task A: loss %.4f with, %.4f without", b1, b0)
	}
	if ba >= bb/2 {
		t.Fatalf("with EWC, task B was not learned (%.4f -> %.4f): the penalty froze the network", bb, ba)
	}
}
