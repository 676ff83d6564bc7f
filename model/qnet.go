package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// layer is a dense layer, y = x·W + b, W row-major in×out.
type layer struct {
	in, out int
	W, B    []float32
}

// qnet is the Q-network f(s): ReLU hidden layers, then two heads on the
// last hidden layer: q, the d-dimensional vector Q(s, a) = q·e_a + b_a +
// α·knn(s, a) is scored with, and α = softplus(h·w_α + c), the trust the
// state puts in co-occurrence evidence. The weights are plain slices: the
// serving path reads them directly, and the training graph is built over
// the same memory.
type qnet struct {
	in, dim int
	hidden  []layer
	head    layer // last hidden -> dim
	alpha   layer // last hidden -> 1
	value   layer // last hidden -> 1: v(s), the state's level, which ranking ignores
	skip    bool  // q also adds the state's embedding mean (x[:dim])
}

func newQNet(in, dim int, widths []int, rng *rand.Rand) *qnet {
	n := &qnet{in: in, dim: dim}
	prev := in
	for _, w := range widths {
		n.hidden = append(n.hidden, newLayer(prev, w, rng, true))
		prev = w
	}
	n.head = newLayer(prev, dim, rng, false)
	// α(s) and v(s) start constant (zero weights): the network learns how
	// they should depend on the state, rather than starting from noise.
	n.alpha = layer{in: prev, out: 1, W: make([]float32, prev), B: []float32{1}}
	n.value = layer{in: prev, out: 1, W: make([]float32, prev), B: make([]float32, 1)}
	return n
}

// newLayer initialises W with He-uniform (Glorot for the linear head).
func newLayer(in, out int, rng *rand.Rand, bias bool) layer {
	l := layer{in: in, out: out, W: make([]float32, in*out), B: make([]float32, out)}
	limit := math.Sqrt(6 / float64(in))
	if !bias {
		limit = math.Sqrt(6 / float64(in+out))
	}
	for i := range l.W {
		l.W[i] = float32((rng.Float64()*2 - 1) * limit)
	}
	return l
}

// params is the number of weights.
func (n *qnet) params() int {
	p := 0
	for _, l := range n.layers() {
		p += len(l.W) + len(l.B)
	}
	return p
}

func (n *qnet) layers() []*layer {
	out := make([]*layer, 0, len(n.hidden)+2)
	for i := range n.hidden {
		out = append(out, &n.hidden[i])
	}
	return append(out, &n.head, &n.alpha, &n.value)
}

func (n *qnet) clone() *qnet {
	c := &qnet{in: n.in, dim: n.dim, skip: n.skip}
	cp := func(l layer) layer {
		return layer{in: l.in, out: l.out, W: append([]float32(nil), l.W...), B: append([]float32(nil), l.B...)}
	}
	for _, l := range n.hidden {
		c.hidden = append(c.hidden, cp(l))
	}
	c.head, c.alpha, c.value = cp(n.head), cp(n.alpha), cp(n.value)
	return c
}

// copyFrom overwrites n's weights with o's (same shapes).
func (n *qnet) copyFrom(o *qnet) {
	for i, l := range n.layers() {
		ol := o.layers()[i]
		copy(l.W, ol.W)
		copy(l.B, ol.B)
	}
}

// widths are the hidden layer sizes.
func (n *qnet) widths() []int {
	w := make([]int, len(n.hidden))
	for i, l := range n.hidden {
		w[i] = l.out
	}
	return w
}

// forward computes q (len dim) and α for one state x. scratch is reused.
func (n *qnet) forward(x []float32, q []float32, scratch *[2][]float32) (alpha float32) {
	alpha, _ = n.forwardV(x, q, scratch)
	return alpha
}

// forwardV is forward that also returns v(s). Each layer is one gonum
// Sgemv (xᵀ·W: an assembly axpy of each nonzero input's row of W, in input
// order, so the sums are the plain loop's, bit for bit).
func (n *qnet) forwardV(x []float32, q []float32, scratch *[2][]float32) (alpha, value float32) {
	h := x
	for i, l := range n.hidden {
		buf := &scratch[i%2]
		if cap(*buf) < l.out {
			*buf = make([]float32, l.out)
		}
		out := (*buf)[:l.out]
		copy(out, l.B)
		gemv(blas.Trans, l.in, l.out, l.W, h, out, 1)
		for c, v := range out {
			if v < 0 {
				out[c] = 0
			}
		}
		h = out
	}
	copy(q, n.head.B)
	gemv(blas.Trans, len(h), n.dim, n.head.W, h, q, 1)
	a, v := n.alpha.B[0], n.value.B[0]
	for r, hv := range h {
		if hv == 0 {
			continue
		}
		a += hv * n.alpha.W[r]
		v += hv * n.value.W[r]
	}
	if n.skip {
		for c := range q {
			q[c] += x[c]
		}
	}
	return softplus(a), v
}

func softplus(x float32) float32 {
	if x > 20 {
		return x
	}
	return float32(math.Log1p(math.Exp(float64(x))))
}

// trainGraph is the gorgonia graph of one training step for a fixed
// architecture and fixed sizes: rows transitions, each with its positive
// item, against negs negative items shared by all rows. The loss is
//
//	BPR:  mean over rows and negatives of softplus(-(Q(s,pos) - Q(s,neg)))
//	TD:   mean over rows of (Q(s,pos) - y)², y the double-DQN target
//	loss = BPR + tdWeight·TD
//
// Weight nodes share memory with the qnet, so gradients come back for the
// network's own slices; the item rows (e_pos, e_neg, biases) are inputs.
// The graph defines the step; the DQN runs it with stepKernel
// (trainstep.go), which computes the same loss and gradients from the
// same input slices without the graph machine (TestKernelMatchesGraph).
// A graph is owned by the model's goroutine and never shared.
type trainGraph struct {
	g                    *G.ExprGraph
	vm                   G.VM
	rows, negs, hard     int
	x, epos, eneg, ehard *G.Node
	knnhard, bhard       *G.Node
	bpos, bneg           *G.Node
	knnpos, knnneg, y    *G.Node
	weights              G.Nodes
	loss, bprLoss, tdOut *G.Node
	qpos                 *G.Node // Q(s, pos) per row, for checks
	// the backing slices of the inputs, filled before each step
	stepInputs
}

// gorgoniaMu serialises what gorgonia does with its package globals: an
// op such as Rectify numbers its node group from a global counter with no
// lock, so two models building their graphs at once (two workers in one
// process restoring snapshots together) race on it. Graphs are built and
// run under it; each model's graph is still its own.
var gorgoniaMu sync.Mutex

func newTrainGraph(n *qnet, rows, negs, hard int, tdWeight float32) (*trainGraph, error) {
	gorgoniaMu.Lock()
	defer gorgoniaMu.Unlock()
	t := &trainGraph{g: G.NewGraph(), rows: rows, negs: negs, hard: hard}
	t.inputs(n)
	var f firstErr
	h, q, alpha, v := t.network(n, &f)
	if f.err != nil {
		return nil, f.err
	}
	qdot := f.must(G.Reshape(f.must(G.Sum(f.must(G.HadamardProd(q, t.epos)), 1)), tensor.Shape{rows, 1}))
	qpos := f.must(G.Add(f.must(G.Add(qdot, t.bpos)), f.must(G.HadamardProd(alpha, t.knnpos))))
	t.qpos = qpos
	value := f.must(G.BroadcastAdd(f.must(G.Mul(h, v[0])), v[1], nil, []byte{0})) // rows×1
	// The TD loss fits Q_td(s, a) = v(s) + f(s)·e_a + b_a: v(s) is the same
	// for every item of a state, so it gives TD the state's level to fit
	// without moving the ranking, and the co-occurrence term, whose weight
	// the ranking losses set, stays out of the bootstrapped target.
	qposTD := f.must(G.Add(f.must(G.Add(qdot, t.bpos)), value))
	losses := t.rankingLosses(n, &f, q, qpos, alpha)
	if len(losses) == 0 {
		return nil, fmt.Errorf("the training graph needs shared or per-row negatives")
	}
	t.bprLoss = losses[0]
	for _, l := range losses[1:] {
		t.bprLoss = f.must(G.Add(t.bprLoss, l))
	}
	t.tdOut = t.tdLoss(&f, qposTD)
	tdw := G.NewScalar(t.g, tensor.Float32, G.WithName("tdw"), G.WithValue(tdWeight))
	t.loss = f.must(G.Add(t.bprLoss, f.must(G.Mul(t.tdOut, tdw))))
	if f.err != nil {
		return nil, fmt.Errorf("building the training graph: %w", f.err)
	}
	// Only the network learns here; the item tables learn by sequential
	// SGD (DQNConfig.EmbLR), so no gradients flow to the inputs.
	wrt := t.weights
	if _, err := G.Grad(t.loss, wrt...); err != nil {
		return nil, fmt.Errorf("differentiating the training graph: %w", err)
	}
	t.vm = G.NewTapeMachine(t.g, G.BindDualValues(wrt...))
	return t, nil
}

// firstErr keeps the first error of a chain of graph operations.
type firstErr struct{ err error }

// must returns nd, keeping e if it is the first error.
func (f *firstErr) must(nd *G.Node, e error) *G.Node {
	if e != nil && f.err == nil {
		f.err = e
	}
	return nd
}

// input adds an input node of shape to the graph, backed by a new slice
// stored in *backing.
func (t *trainGraph) input(name string, backing *[]float32, shape ...int) *G.Node {
	size := 1
	for _, s := range shape {
		size *= s
	}
	*backing = make([]float32, size)
	return G.NewTensor(t.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
		G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(*backing))))
}

// weight adds a node backed by the weights data to the graph and to
// t.weights, the nodes the graph differentiates.
func (t *trainGraph) weight(name string, data []float32, shape ...int) *G.Node {
	w := G.NewTensor(t.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
		G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
	t.weights = append(t.weights, w)
	return w
}

// inputs adds the input nodes of a step on n.
func (t *trainGraph) inputs(n *qnet) {
	rows, negs, hard := t.rows, t.negs, t.hard
	t.x = t.input("x", &t.X, rows, n.in)
	t.epos = t.input("epos", &t.Epos, rows, n.dim)
	t.bpos = t.input("bpos", &t.Bpos, rows, 1)
	t.knnpos = t.input("knnpos", &t.KnnPos, rows, 1)
	if negs > 0 {
		t.eneg = t.input("eneg", &t.Eneg, negs, n.dim)
		t.bneg = t.input("bneg", &t.Bneg, 1, negs)
		t.knnneg = t.input("knnneg", &t.KnnNeg, rows, negs)
	}
	t.y = t.input("y", &t.Y, rows, 1)
	if hard > 0 {
		t.ehard = t.input("ehard", &t.Ehard, rows, hard, n.dim)
		t.bhard = t.input("bhard", &t.Bhard, rows, hard)
		t.knnhard = t.input("knnhard", &t.KnnHard, rows, hard)
	}
}

// network adds n's layers over the input x: h is the last hidden layer,
// q is f(s) (rows×dim), alpha the trust in co-occurrence (rows×1) and v
// the weights of the value head v(s), which the caller adds (the order in
// which nodes are added is the order of the tape, kept as it was).
func (t *trainGraph) network(n *qnet, f *firstErr) (h, q, alpha *G.Node, v [2]*G.Node) {
	h = t.x
	for i, l := range n.hidden {
		w := t.weight(fmt.Sprintf("w%d", i), l.W, l.in, l.out)
		b := t.weight(fmt.Sprintf("b%d", i), l.B, 1, l.out)
		h = f.must(G.Rectify(f.must(G.BroadcastAdd(f.must(G.Mul(h, w)), b, nil, []byte{0}))))
	}
	wq := t.weight("wq", n.head.W, n.head.in, n.head.out)
	bq := t.weight("bq", n.head.B, 1, n.head.out)
	wa := t.weight("wa", n.alpha.W, n.alpha.in, 1)
	ba := t.weight("ba", n.alpha.B, 1, 1)
	wv := t.weight("wv", n.value.W, n.value.in, 1)
	bv := t.weight("bv", n.value.B, 1, 1)
	if f.err != nil {
		return nil, nil, nil, v
	}
	q = f.must(G.BroadcastAdd(f.must(G.Mul(h, wq)), bq, nil, []byte{0})) // rows×dim
	if n.skip {
		// q = MLP(x) + e_recent: the shallow model (state · e_a) is the
		// network's starting point, the MLP learns the correction.
		q = f.must(G.Add(q, f.must(G.Slice(t.x, nil, G.S(0, n.dim)))))
	}
	alpha = f.must(G.Softplus(f.must(G.BroadcastAdd(f.must(G.Mul(h, wa)), ba, nil, []byte{0})))) // rows×1
	return h, q, alpha, [2]*G.Node{wv, bv}
}

// rankingLosses are the BPR losses of qpos against the shared negatives
// and against the per-row ones, where the step has them.
func (t *trainGraph) rankingLosses(n *qnet, f *firstErr, q, qpos, alpha *G.Node) G.Nodes {
	var losses G.Nodes
	if t.negs > 0 {
		qneg := f.must(G.Mul(q, f.must(G.Transpose(t.eneg)))) // rows×negs
		qneg = f.must(G.BroadcastAdd(qneg, t.bneg, nil, []byte{0}))
		qneg = f.must(G.Add(qneg, f.must(G.BroadcastHadamardProd(alpha, t.knnneg, []byte{1}, nil))))
		diff := f.must(G.BroadcastSub(qpos, qneg, []byte{1}, nil))
		losses = append(losses, f.must(G.Mean(f.must(G.Softplus(f.must(G.Neg(diff)))))))
	}
	if t.hard > 0 {
		// Per-row hard negatives: items that co-occur with the row's
		// session but were not chosen.
		q3 := f.must(G.Reshape(q, tensor.Shape{t.rows, 1, n.dim}))
		qhard := f.must(G.Sum(f.must(G.BroadcastHadamardProd(q3, t.ehard, []byte{1}, nil)), 2)) // rows×hard
		qhard = f.must(G.Add(f.must(G.Add(qhard, t.bhard)), f.must(G.BroadcastHadamardProd(alpha, t.knnhard, []byte{1}, nil))))
		dhard := f.must(G.BroadcastSub(qpos, qhard, []byte{1}, nil))
		losses = append(losses, f.must(G.Mean(f.must(G.Softplus(f.must(G.Neg(dhard)))))))
	}
	return losses
}

// tdLoss is the Huber loss (δ = 1) of qposTD against the targets y, as
// DQN uses, so that large TD errors cannot swamp the ranking gradients.
func (t *trainGraph) tdLoss(f *firstErr, qposTD *G.Node) *G.Node {
	ones := t.input("ones", &t.Ones, t.rows, 1)
	for i := range t.Ones {
		t.Ones[i] = 1
	}
	absErr := f.must(G.Abs(f.must(G.Sub(qposTD, t.y))))
	small := f.must(G.MinBetween(absErr, ones))
	huber := f.must(G.Add(f.must(G.Mul(f.must(G.Square(small)), G.NewScalar(t.g, tensor.Float32, G.WithName("half"), G.WithValue(float32(0.5))))), f.must(G.Sub(absErr, small))))
	return f.must(G.Mean(huber))
}

// run executes one forward and backward pass.
func (t *trainGraph) run() (bpr, td float32, err error) {
	gorgoniaMu.Lock()
	defer gorgoniaMu.Unlock()
	defer t.vm.Reset()
	if err := t.vm.RunAll(); err != nil {
		return 0, 0, fmt.Errorf("training step: %w", err)
	}
	return t.bprLoss.Value().Data().(float32), t.tdOut.Value().Data().(float32), nil
}

// grad returns the gradient of node n after run.
func grad(n *G.Node) []float32 {
	v, err := n.Grad()
	if err != nil {
		panic(fmt.Sprintf("no gradient for %s: %v", n.Name(), err))
	}
	return v.Data().([]float32)
}

func (t *trainGraph) close() {
	gorgoniaMu.Lock()
	defer gorgoniaMu.Unlock()
	t.vm.Close()
}
