package model

import (
	"slices"
	"testing"
)

// TestStepsDoNotAccumulateGradients checks that a training graph that has
// run computes the same gradients as a new one on the same inputs and
// weights: gorgonia accumulates gradients into the weights' dual values
// across runs unless they are zeroed.
func TestStepsDoNotAccumulateGradients(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	d := trainedDQN(t, cfg, 300) // many steps on the same graph
	g := d.graph
	if _, _, err := g.run(); err != nil {
		t.Fatal(err)
	}
	used := make([][]float32, len(g.weights))
	for i, n := range g.weights {
		used[i] = slices.Clone(grad(n))
		clear(grad(n))
	}
	fresh, err := newTrainGraph(d.net, d.cfg.Rows, d.cfg.Negatives, d.cfg.Hard+d.cfg.RowUniform, float32(d.cfg.TDWeight))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.close()
	for _, in := range [][2]*[]float32{{&fresh.X, &g.X}, {&fresh.Epos, &g.Epos}, {&fresh.Eneg, &g.Eneg}, {&fresh.Bpos, &g.Bpos}, {&fresh.Bneg, &g.Bneg},
		{&fresh.KnnPos, &g.KnnPos}, {&fresh.KnnNeg, &g.KnnNeg}, {&fresh.Y, &g.Y}, {&fresh.Ehard, &g.Ehard}, {&fresh.Bhard, &g.Bhard}, {&fresh.KnnHard, &g.KnnHard}} {
		copy(*in[0], *in[1])
	}
	if _, _, err := fresh.run(); err != nil {
		t.Fatal(err)
	}
	for i, n := range fresh.weights {
		if got := grad(n); !slices.Equal(got, used[i]) {
			t.Fatalf("%s: the used graph's gradient %v differs from a new graph's %v", n.Name(), used[i][:2], got[:2])
		}
	}
}
