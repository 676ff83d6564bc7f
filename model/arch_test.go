package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/adaptrec/adaptrec/model/feedback"
)

func randomNet(widths []int, seed uint64) *qnet {
	rng := rand.New(rand.NewPCG(seed, 3))
	n := newQNet(12, 8, widths, rng)
	// Non-trivial heads (they start at zero in the DQN).
	for _, l := range []*layer{&n.alpha, &n.value} {
		for i := range l.W {
			l.W[i] = float32(rng.NormFloat64())
		}
	}
	for i := range n.hidden {
		for j := range n.hidden[i].B {
			n.hidden[i].B[j] = float32(rng.NormFloat64() * 0.1)
		}
	}
	return n
}

type out struct {
	q     []float32
	alpha float32
	value float32
}

func outputs(n *qnet, xs [][]float32) []out {
	var scr [2][]float32
	res := make([]out, len(xs))
	for i, x := range xs {
		res[i].q = make([]float32, n.dim)
		res[i].alpha, res[i].value = n.forwardV(x, res[i].q, &scr)
	}
	return res
}

func inputs(n, dim int, seed uint64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 9))
	xs := make([][]float32, n)
	for i := range xs {
		xs[i] = make([]float32, dim)
		for j := range xs[i] {
			xs[i][j] = float32(rng.NormFloat64())
		}
	}
	return xs
}

func maxDiff(a, b []out) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i].alpha-b[i].alpha)), math.Abs(float64(a[i].value-b[i].value)))
		for j := range a[i].q {
			d = max(d, math.Abs(float64(a[i].q[j]-b[i].q[j])))
		}
	}
	return d
}

func TestWidenAndAddLayerPreserveTheFunction(t *testing.T) {
	xs := inputs(50, 12, 1)
	for _, a := range []Action{
		{Kind: Widen, Layer: 0, K: 5}, {Kind: Widen, Layer: 1, K: 7}, {Kind: Widen, Layer: 1, K: 40},
		{Kind: AddLayer, Layer: 0}, {Kind: AddLayer, Layer: 1},
	} {
		n := randomNet([]int{16, 10}, 2)
		before := outputs(n, xs)
		p := n.plan(a, rand.New(rand.NewPCG(4, 4)))
		n.apply(p, 0)
		if d := maxDiff(before, outputs(n, xs)); d > 1e-5 {
			t.Errorf("%s changed the outputs by %g", a, d)
		}
		if a.Kind == Widen && n.hidden[a.Layer].out != []int{16, 10}[a.Layer]+a.K {
			t.Errorf("%s: widths %v", a, n.widths())
		}
		if a.Kind == AddLayer && len(n.hidden) != 3 {
			t.Errorf("%s: depth %d", a, len(n.hidden))
		}
	}
}

func TestNarrowDropsTheLeastImportantUnits(t *testing.T) {
	xs := inputs(50, 12, 5)
	n := randomNet([]int{16, 10}, 6)
	// Units 3 and 7 of layer 0 contribute nothing downstream.
	for _, u := range []int{3, 7} {
		for c := range n.hidden[1].out {
			n.hidden[1].W[u*n.hidden[1].out+c] = 0
		}
	}
	before := outputs(n, xs)
	if got := n.leastImportant(0, 2); !slices.Equal(sorted(got), []int{3, 7}) {
		t.Fatalf("least important units %v, want [3 7]", got)
	}
	n.apply(n.plan(Action{Kind: Narrow, Layer: 0, K: 2}, nil), 0)
	if n.hidden[0].out != 14 || n.hidden[1].in != 14 {
		t.Fatalf("widths %v, next layer in %d", n.widths(), n.hidden[1].in)
	}
	if d := maxDiff(before, outputs(n, xs)); d > 1e-5 {
		t.Fatalf("removing dead units changed the outputs by %g", d)
	}
	// Narrowing live units of the last layer changes the function but keeps
	// the heads consistent.
	n.apply(n.plan(Action{Kind: Narrow, Layer: 1, K: 4}, nil), 0)
	if n.head.in != 6 || n.alpha.in != 6 || n.value.in != 6 {
		t.Fatalf("heads not resized: %d %d %d", n.head.in, n.alpha.in, n.value.in)
	}
	outputs(n, xs)
}

func TestRemoveLayerFoldsALinearLayerExactly(t *testing.T) {
	n := randomNet([]int{6, 5}, 7)
	// With non-negative weights and inputs, layer 1's ReLU is the identity,
	// so folding it into the heads is exact.
	for i := range n.hidden {
		for j := range n.hidden[i].W {
			n.hidden[i].W[j] = float32(math.Abs(float64(n.hidden[i].W[j])))
		}
		for j := range n.hidden[i].B {
			n.hidden[i].B[j] = float32(math.Abs(float64(n.hidden[i].B[j])))
		}
	}
	xs := inputs(30, 12, 8)
	for _, x := range xs {
		for j := range x {
			x[j] = float32(math.Abs(float64(x[j])))
		}
	}
	before := outputs(n, xs)
	n.apply(n.plan(Action{Kind: RemoveLayer, Layer: 1}, nil), 0)
	if len(n.hidden) != 1 || n.head.in != 6 {
		t.Fatalf("depth %d, head in %d", len(n.hidden), n.head.in)
	}
	if d := maxDiff(before, outputs(n, xs)); d > 1e-4 {
		t.Fatalf("folding a linear layer changed the outputs by %g", d)
	}
}

func TestArchBounds(t *testing.T) {
	n := randomNet([]int{16}, 1)
	b := ArchBounds{MinWidth: 8, MaxWidth: 32, MinDepth: 1, MaxDepth: 2, MaxParams: 2000}
	for _, tc := range []struct {
		a  Action
		ok bool
	}{
		{Action{Kind: Widen, Layer: 0, K: 16}, true},
		{Action{Kind: Widen, Layer: 0, K: 17}, false},
		{Action{Kind: Narrow, Layer: 0, K: 8}, true},
		{Action{Kind: Narrow, Layer: 0, K: 9}, false},
		{Action{Kind: AddLayer, Layer: 0}, true},
		{Action{Kind: RemoveLayer, Layer: 0}, false},
		{Action{Kind: Widen, Layer: 1, K: 1}, false},
		{Action{Kind: Keep}, true},
	} {
		if err := n.valid(tc.a, b); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.a, err, tc.ok)
		}
	}
	b.MaxParams = n.params() + 10
	if err := n.valid(Action{Kind: Widen, Layer: 0, K: 4}, b); err == nil {
		t.Error("widening past the parameter budget was allowed")
	}
}

// On the live DQN: widening keeps the served scores and the Adam moments
// of surviving weights, and training goes on with the new graph.
func TestDQNApplyCarriesOptimiserState(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	d := newDQN(t, cfg)
	learn := func(from int) { learnClicks(t, d, from, 200, func(i int) int { return i % 23 }) }
	learn(0)
	u, _ := d.users.Lookup("u3")
	d.scoreAll(u)
	before := slices.Clone(d.scores)
	m0 := slices.Clone(d.opts[0].m) // first hidden layer's W moments
	in, out := d.net.hidden[0].in, d.net.hidden[0].out
	bounds := ArchBounds{MinWidth: 8, MaxWidth: 256, MinDepth: 1, MaxDepth: 4}
	if err := d.Apply(Action{Kind: Widen, Layer: 0, K: 16}, bounds); err != nil {
		t.Fatal(err)
	}
	d.scoreAll(u)
	for a := range before {
		if math.Abs(before[a]-d.scores[a]) > 1e-4 {
			t.Fatalf("item %d: score %v before widening, %v after", a, before[a], d.scores[a])
		}
	}
	newOut := d.net.hidden[0].out
	for r := range in {
		for c := range out {
			if d.opts[0].m[r*newOut+c] != m0[r*out+c] {
				t.Fatalf("moment of W[%d][%d] not carried over", r, c)
			}
		}
	}
	if err := d.Apply(Action{Kind: AddLayer, Layer: 0}, bounds); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(Action{Kind: Narrow, Layer: 1, K: 4}, bounds); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(Action{Kind: RemoveLayer, Layer: 0}, bounds); err != nil {
		t.Fatal(err)
	}
	learn(200) // the rebuilt graph trains
	if w := d.Widths(); len(w) != 1 || w[0] != 76 {
		t.Fatalf("widths %v after widen, add, narrow, remove", w)
	}
	if err := d.Apply(Action{Kind: RemoveLayer, Layer: 0}, bounds); err == nil {
		t.Fatal("removed the last layer below the minimum depth")
	}
}

// learnClicks has d learn, in one batch, n clicks from the from-th on:
// click i is user i%7's on item item(i).
func learnClicks(t *testing.T, d *DQN, from, n int, item func(int) int) {
	t.Helper()
	b := feedback.BatchOf(clicks(from, n, 7, item)...)
	defer b.Release()
	if _, err := d.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func sorted(s []int) []int { s = slices.Clone(s); slices.Sort(s); return s }

// Widened copies must not stay copies: with equal outgoing shares a copy
// and its original get equal gradients for ever and the new units add no
// capacity. The random split keeps the function and lets them diverge.
func TestWidenedUnitsDiverge(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	d := newDQN(t, cfg)
	learn := func(from int) { learnClicks(t, d, from, 400, func(i int) int { return (i * 7) % 23 }) }
	learn(0)
	p := d.net.plan(Action{Kind: Widen, Layer: 0, K: 1}, d.rng)
	orig, out := p.picks[0], d.net.hidden[0].out
	if err := d.applyPlan(p); err != nil {
		t.Fatal(err)
	}
	incoming := func(u int) []float32 {
		l := d.net.hidden[0]
		w := make([]float32, l.in)
		for r := range l.in {
			w[r] = l.W[r*l.out+u]
		}
		return w
	}
	if !slices.Equal(incoming(orig), incoming(out)) {
		t.Fatal("the copy does not start as a copy")
	}
	for k := range 5 {
		learn(400 * (k + 1))
	}
	if slices.Equal(incoming(orig), incoming(out)) {
		t.Fatalf("unit %d and its copy %d still have equal incoming weights after training", orig, out)
	}
}

// rankPair ranks with the online network exactly as the probe does, and
// with the reference exactly as if the reference were the online network.
func TestRankPairMatchesSeparateRanks(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	d := newDQN(t, cfg)
	evs := clicks(0, 600, 11, func(i int) int { return (i * 7) % 300 })
	b := feedback.BatchOf(evs...)
	defer b.Release()
	if _, err := d.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	ref := d.net.clone()
	for i := range ref.head.W { // a reference with another correction head
		ref.head.W[i] = float32(math.Sin(float64(i)))
	}
	if err := d.Apply(Action{Kind: Narrow, Layer: 0, K: 16}, ArchBounds{MinWidth: 8, MaxWidth: 256, MinDepth: 1, MaxDepth: 3}); err != nil {
		t.Fatal(err)
	}
	differ := 0
	for u := range 11 {
		us, _ := d.users.Lookup(fmt.Sprint("u", u))
		for item := range int32(d.items.Len()) {
			live, other := d.rankPair(ref, us, item)
			d.scoreAll(us)
			wantLive := order{score: d.scores}.rank(item, us.Consumed)
			online := d.net
			d.net = ref
			d.scoreAll(us)
			wantRef := order{score: d.scores}.rank(item, us.Consumed)
			d.net = online
			if live != wantLive || other != min(wantRef, 10) {
				t.Fatalf("user %d item %d: rankPair (%d, %d), separate ranks (%d, %d)", u, item, live, other, wantLive, wantRef)
			}
			if live != other {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Fatal("the network ranks every item as the reference does: the test checks nothing")
	}
}
