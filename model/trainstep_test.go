package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// The kernel that runs the training step computes the loss of the
// gorgonia graph and the gradients gorgonia derives from it, on the same
// inputs and weights: for the default network (per-row negatives), with
// shared and hard negatives and two hidden layers, without the skip
// connection and without hidden layers; after training and from a fresh
// network whose zero biases put ReLUs exactly at 0 (empty states).
func TestKernelMatchesGraph(t *testing.T) {
	cases := map[string]func(*DQNConfig){
		"default":             func(*DQNConfig) {},
		"shared+hard, 2 deep": func(c *DQNConfig) { c.Negatives, c.Hard, c.Hidden = 16, 4, []int{24, 12} },
		"no skip, td 1":       func(c *DQNConfig) { c.Skip, c.ZeroHead, c.TDWeight = false, false, 1 },
		"no hidden layer":     func(c *DQNConfig) { c.Hidden, c.Negatives = nil, 8 },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultDQN()
			cfg.Rows = 32
			change(&cfg)
			trained := trainedDQN(t, cfg, 500) // leaves its last step's inputs in the graph
			compareKernel(t, trained)
			fresh := newDQN(t, cfg)
			for i := range fresh.net.head.W { // ZeroHead would block the hidden layers' gradients
				fresh.net.head.W[i] = float32(i%7-3) / 10
			}
			randomInputs(&fresh.graph.stepInputs, rand.New(rand.NewPCG(7, 7)), fresh.in, cfg.Rows)
			compareKernel(t, fresh)
		})
	}
}

// randomInputs fills a step's inputs with normal draws (targets spread so
// that the Huber loss sees both its branches) and leaves the states of
// the first rows empty, as a user's first event is.
func randomInputs(in *stepInputs, rng *rand.Rand, width, empty int) {
	for _, s := range [][]float32{in.X, in.Epos, in.Eneg, in.Bpos, in.Bneg, in.KnnPos, in.KnnNeg, in.Ehard, in.Bhard, in.KnnHard} {
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
	}
	for i := range in.Y {
		in.Y[i] = float32(3 * rng.NormFloat64())
	}
	clear(in.X[:min(len(in.X), 4*width)])
}

// compareKernel runs d's graph and kernel on the graph's current inputs
// and fails unless losses, Q(s, pos) and every gradient agree.
func compareKernel(t *testing.T, d *DQN) {
	t.Helper()
	g := d.graph
	wantBPR, wantTD, err := g.run()
	if err != nil {
		t.Fatal(err)
	}
	gotBPR, gotTD := d.kernel.run(d.net, &g.stepInputs)
	near(t, "ranking loss", []float32{gotBPR}, []float32{wantBPR})
	near(t, "TD loss", []float32{gotTD}, []float32{wantTD})
	near(t, "Q(s, pos)", d.kernel.qpos, g.qpos.Value().Data().([]float32))
	for i, n := range g.weights {
		want := grad(n)
		near(t, "gradient of "+n.Name(), d.kernel.grads[i], want)
		clear(want) // gorgonia accumulates into the dual values
	}
}

// near fails unless got and want agree to float32 rounding: within 1e-4
// of the larger of 1 and want's largest magnitude, element by element.
func near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := float32(1e-6)
	for _, w := range want {
		scale = max(scale, float32(math.Abs(float64(w))))
	}
	nonzero := false
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-4*float64(scale) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s[%d]: got %v, want %v (%s)", what, i, got[i], want[i], fmt.Sprint(want[:min(4, len(want))]))
		}
		nonzero = nonzero || want[i] != 0
	}
	if !nonzero {
		t.Fatalf("%s: all zero, which checks nothing", what)
	}
}

// The TD targets come from one batched pass of every row's next state
// through the online and the target network (nextStates), and the
// co-occurrence scores of a row's negatives under its state and its next
// state from one count per item and negative (knnNowAndNext); each target
// equals the one computed with a forward pass of the row's next state
// alone and knnOf, and each score equals knnOf's bit for bit. Windows of
// every length occur, full ones (whose next state drops the oldest item)
// included, and repeated negatives; with 24 negatives a row's items' counts
// come from scanning their neighbours, with 2 mostly from lookups.
func TestBatchedTDTargetsMatchSingleForwards(t *testing.T) {
	for _, negatives := range []int{24, 2} {
		t.Run(fmt.Sprint(negatives, " negatives"), func(t *testing.T) {
			batchedTDTargets(t, negatives)
		})
	}
}

func batchedTDTargets(t *testing.T, negatives int) {
	cfg := DefaultDQN()
	cfg.Rows, cfg.Window, cfg.RowUniform = 32, 4, negatives
	d := trainedDQN(t, cfg, 700)
	wide := make([]int32, 40) // items 0 to 4 get 40 neighbours more
	for i := range wide {
		wide[i] = int32(20 + i)
	}
	for x := range int32(5) {
		d.co.add(x, wide)
	}
	d.target.head.W[0] += 0.5 // the target network differs from the online one
	rows := append([]transition(nil), d.replay[40:40+cfg.Rows]...)
	rows[0].n = 0 // an empty state
	nh, nItems, g := cfg.Hard+cfg.RowUniform, int32(len(d.bias)), d.graph
	d.sampleNegatives(nItems)
	d.nextStates(rows)
	full := 0
	for r := range rows {
		tr := &rows[r]
		d.fillRow(r, tr, nItems)
		recent := tr.recent[:tr.n]
		var next [maxWindow]int32
		var types [maxWindow]feedback.Type
		nw := next[:d.nextWindow(tr, &next, &types)]
		if len(recent) == cfg.Window {
			full++
		}
		d.features(nw, types[:len(nw)], d.x)
		q, qt := make([]float32, cfg.Dim), make([]float32, cfg.Dim)
		aOn := d.net.forward(d.x, q, &d.scr)
		_, vTg := d.target.forwardV(d.x, qt, &d.scr)
		best, bestQ := int32(-1), float32(math.Inf(-1))
		for j, a := range tr.hard[:nh] {
			if got, want := g.KnnHard[r*nh+j], d.knnOf(recent, a); got != want {
				t.Fatalf("row %d, negative %d: knn %v, knnOf %v", r, a, got, want)
			}
			if got, want := d.kernel.knnNext[r*nh+j], d.knnOf(nw, a); got != want {
				t.Fatalf("row %d, negative %d: next state's knn %v, knnOf %v", r, a, got, want)
			}
			if qa := d.qOf(q, aOn, nw, a); a != tr.pos && qa > bestQ {
				best, bestQ = a, qa
			}
		}
		want := tr.reward + float32(cfg.Gamma)*(vTg+d.qTD(qt, best))
		near(t, fmt.Sprintf("TD target of row %d", r), []float32{g.Y[r]}, []float32{want})
	}
	if full == 0 || full == len(rows) {
		t.Fatalf("%d of %d windows full: both kinds must occur", full, len(rows))
	}
	scanned, looked := 0, 0
	for _, nb := range d.co.nbrs {
		if len(nb.item) <= 8*nh {
			scanned++
		} else {
			looked++
		}
	}
	if negatives == 2 && (scanned == 0 || looked == 0) {
		t.Fatalf("%d items scanned, %d looked up: both ways must occur", scanned, looked)
	}
}

// A batch's lists score every user with one forward pass and one matrix
// product (qBatch); each user's Q of every item equals the one scored for
// that user alone (a forward pass and a matrix-vector product), including
// a user the model has never seen.
func TestBatchedScoresMatchSingleUsers(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows, cfg.Hidden = 32, []int{24, 16}
	d := trainedDQN(t, cfg, 700)
	var users []*UserState
	for u := range 13 {
		st, ok := d.users.Lookup(fmt.Sprint("u", u))
		if !ok {
			t.Fatalf("u%d unknown", u)
		}
		users = append(users, st)
	}
	users = append(users, &UserState{ID: "new", Consumed: map[int32]struct{}{}})
	for round := range 2 { // the second reuses the pass sized by the first
		dots, alphas := d.qBatch(users[round:])
		n := len(d.bias)
		for i, u := range users[round:] {
			d.features(u.Recent, u.RecentTypes, d.x)
			alpha := d.net.forward(d.x, d.q, &d.scr)
			d.expertScores(u.Recent)
			d.scoreItems(d.q, alpha, d.cfg.Dim)
			want := make([]float32, n)
			for a, s := range d.scores {
				want[a] = float32(s)
			}
			d.qScores(dots[i*n:(i+1)*n], alphas[i])
			got := make([]float32, n)
			for a, s := range d.scores {
				got[a] = float32(s)
			}
			near(t, fmt.Sprintf("Q of %s", u.ID), got, want)
		}
	}
}

// The engine is a choice of speed, not of learning: the same events
// trained by gorgonia's TapeMachine and by the kernel reach the same
// network, within float rounding, and the network did move.
func TestEnginesLearnTheSameNetwork(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	evs := replicaEvents()
	var nets [2]*DQN
	for i, engine := range []string{EngineKernel, EngineGorgonia} {
		c := cfg
		c.Engine = engine
		nets[i] = newDQN(t, c)
		learnAll(t, nets[i], evs)
		if nets[i].steps < 30 {
			t.Fatalf("engine %s took %d steps, want at least 30", engine, nets[i].steps)
		}
	}
	start := newDQN(t, cfg)
	moved := maxNetDiff(nets[0], start)
	d := maxNetDiff(nets[0], nets[1])
	t.Logf("engines differ by up to %g, moved by up to %g", d, moved)
	if d > 1e-3*moved || moved == 0 {
		t.Fatalf("the engines' networks differ by up to %g; training moved them by up to %g", d, moved)
	}
	// Their sums run in other orders: bit-identical networks would mean
	// one engine ran twice.
	if d == 0 {
		t.Fatal("the engines' networks are bit-identical: was the graph run at all?")
	}
	if err := (DQNConfig{Engine: "tensorflow"}).Validate(); err == nil || !strings.Contains(err.Error(), "engine") {
		t.Fatalf("engine tensorflow: %v, want an error naming engine", err)
	}
}
