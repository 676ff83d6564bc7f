package model

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// stepInputs are the inputs of one training step, row-major: rows
// transitions, each with its state x (rows×in), its chosen item's output
// embedding, bias and co-occurrence score (epos, bpos, knnpos), its TD
// target y, and its negatives: negs shared by all rows (eneg negs×dim,
// bneg, knnneg rows×negs) and hard per row (ehard rows×hard×dim, bhard,
// knnhard rows×hard). The gorgonia graph's input tensors are backed by
// these slices, so the graph and the kernel read the same memory.
type stepInputs struct {
	X, Epos, Eneg, Bpos, Bneg, KnnPos, KnnNeg, Y []float32
	Ehard, Bhard, KnnHard, Ones                  []float32
}

// stepKernel computes the loss of the training graph (trainGraph) and its
// gradients with respect to the network's weights, without the graph
// machine: the same forward pass and the backward pass derived from it by
// hand, over buffers allocated once per architecture, the matrix products
// by gonum's float32 BLAS (blas32, pure Go with assembly kernels). A
// gorgonia TapeMachine spends most of a step allocating and copying
// tensors between a hundred small ops; here a step allocates nothing.
// TestKernelMatchesGraph checks the kernel against gorgonia's gradients on
// the same inputs. Owned by the model's goroutine, like the graph.
type stepKernel struct {
	netPass
	negs, hard         int
	tdWeight           float32
	dq                 []float32   // the loss's gradient by f(s), rows×dim
	qpos, qposTD       []float32   // per row: Q(s, pos) ranked, and fitted by TD
	dqpos, dza, dvalue []float32   // per row
	qneg, qhard        []float32   // rows×negs, rows×hard: Q of the negatives, then the loss's gradient by it
	dh, dz             []float32   // rows×(widest layer): backward scratch
	grads              [][]float32 // per weight tensor, in qnet.layers() order, W then B
	bpr, td            float32
	// The next states of the step's transitions (rows×in), through the
	// online and the target network, for the TD targets.
	nextX          []float32
	nextOn, nextTg netPass
	knnNext        []float32 // rows×hard: knn(s', a) of each row's negatives
	// knnNowAndNext's scratch: a mark per item (its candidate's place + 1),
	// and per window item the counts with the candidates and which it has.
	knnMark  []int32
	knnCnt   []float64
	knnFound [maxWindow + 1]uint64
}

// netPass is the network's forward pass over rows states at once, with
// the activations the backward pass needs; the matrix products are gonum
// Sgemm calls, so a batch of states costs far less than rows single
// forward passes (qnet.forward).
type netPass struct {
	rows, dim, in int
	z, h          [][]float32 // per hidden layer, rows×width: h·W + b, and its ReLU
	q             []float32   // f(s), rows×dim
	za            []float32   // per row: α's pre-activation
	alpha, value  []float32   // per row: α and v(s)
}

// newNetPass sizes a forward pass of rows states through n's architecture.
func newNetPass(n *qnet, rows int) netPass {
	p := netPass{rows: rows, dim: n.dim, in: n.in, q: make([]float32, rows*n.dim)}
	for _, l := range n.hidden {
		p.z = append(p.z, make([]float32, rows*l.out))
		p.h = append(p.h, make([]float32, rows*l.out))
	}
	perRow := make([]float32, 3*rows)
	p.za, p.alpha, p.value = perRow[:rows:rows], perRow[rows:2*rows:2*rows], perRow[2*rows:]
	return p
}

// run computes the hidden layers, f(s), α and v(s) of the states x (at
// most p.rows of them, each of n.in values) through n, which must have the
// architecture p was sized for; it returns the last hidden layer (x if
// there is none).
func (p *netPass) run(n *qnet, x []float32) []float32 {
	rows := len(x) / p.in
	h, width := x, n.in
	for i, l := range n.hidden {
		z := p.z[i][:rows*l.out]
		affine(rows, h, l, z)
		hi := p.h[i][:rows*l.out]
		for j, v := range z {
			hi[j] = 0
			if v >= 0 { // gorgonia's Rectify: x·(x ≥ 0)
				hi[j] = v
			}
		}
		h, width = hi, l.out
	}
	affine(rows, h, n.head, p.q)
	if n.skip {
		for r := range rows {
			q, xr := p.q[r*p.dim:(r+1)*p.dim], x[r*p.in:r*p.in+p.dim]
			for j := range q {
				q[j] += xr[j]
			}
		}
	}
	gemv(blas.NoTrans, rows, width, h, n.alpha.W, p.za, 0)
	gemv(blas.NoTrans, rows, width, h, n.value.W, p.value, 0)
	for r := range rows {
		p.za[r] += n.alpha.B[0]
		p.alpha[r] = softplusG(p.za[r])
		p.value[r] += n.value.B[0]
	}
	return h
}

// newStepKernel sizes a kernel for n's architecture and a step of rows
// transitions with negs shared and hard per-row negatives.
func newStepKernel(n *qnet, rows, negs, hard int, tdWeight float32) *stepKernel {
	k := &stepKernel{netPass: newNetPass(n, rows), negs: negs, hard: hard, tdWeight: tdWeight}
	widest := max(n.in, n.dim)
	for _, l := range n.hidden {
		widest = max(widest, l.out)
	}
	k.dq = make([]float32, rows*n.dim)
	k.nextX, k.nextOn, k.nextTg = make([]float32, rows*n.in), newNetPass(n, rows), newNetPass(n, rows)
	k.knnNext, k.knnCnt = make([]float32, rows*hard), make([]float64, (maxWindow+1)*hard)
	perRow := make([]float32, 5*rows)
	for i, s := range []*[]float32{&k.qpos, &k.qposTD, &k.dqpos, &k.dza, &k.dvalue} {
		*s = perRow[i*rows : (i+1)*rows : (i+1)*rows]
	}
	k.qneg, k.qhard = make([]float32, rows*negs), make([]float32, rows*hard)
	k.dh, k.dz = make([]float32, rows*widest), make([]float32, rows*widest)
	for _, l := range n.layers() {
		k.grads = append(k.grads, make([]float32, len(l.W)), make([]float32, len(l.B)))
	}
	return k
}

// run computes the loss of n on in and the gradients of every weight
// (k.grads), and returns the ranking and TD losses.
func (k *stepKernel) run(n *qnet, in *stepInputs) (bpr, td float32) {
	last := k.forward(n, in)
	k.lossGrads(in)
	k.backward(n, in, last)
	return k.bpr, k.td
}

// forward runs the network over the step's states and computes Q(s,
// pos) of every row; it returns the last hidden layer.
func (k *stepKernel) forward(n *qnet, in *stepInputs) []float32 {
	h := k.netPass.run(n, in.X)
	for r := range k.rows {
		qdot := dot32(k.q[r*k.dim:(r+1)*k.dim], in.Epos[r*k.dim:(r+1)*k.dim])
		k.qpos[r] = qdot + in.Bpos[r] + k.alpha[r]*in.KnnPos[r]
		k.qposTD[r] = qdot + in.Bpos[r] + k.value[r]
	}
	return h
}

// lossGrads computes the losses and the gradient of the loss by each Q of
// the step: into qneg and qhard (by the negatives' Q), dqpos (by Q(s,
// pos)) and dvalue (by the TD Q, whose only other path is the shared
// f(s)·e_pos + b_pos).
func (k *stepKernel) lossGrads(in *stepInputs) {
	rows, dim := k.rows, k.dim
	clear(k.dqpos)
	k.bpr = 0
	if k.negs > 0 {
		// Q(s, neg) = f(s)·e_neg + b_neg + α·knn(s, neg), all rows at once.
		gemm(blas.NoTrans, blas.Trans, rows, k.negs, dim, k.q, in.Eneg, k.qneg, 0)
		k.bpr += k.bprGrads(in.Bneg, in.KnnNeg, k.qneg, k.negs, true)
	}
	if k.hard > 0 {
		for r := range rows {
			gemv(blas.NoTrans, k.hard, dim, in.Ehard[r*k.hard*dim:(r+1)*k.hard*dim], k.q[r*dim:(r+1)*dim], k.qhard[r*k.hard:(r+1)*k.hard], 0)
		}
		k.bpr += k.bprGrads(in.Bhard, in.KnnHard, k.qhard, k.hard, false)
	}
	// Huber (δ = 1) of Q_td(s, pos) − y, its gradient clamp(e, −1, 1).
	sum := float32(0)
	scale := k.tdWeight / float32(rows)
	for r := range rows {
		e := k.qposTD[r] - in.Y[r]
		a := float32(math.Abs(float64(e)))
		small := min(a, 1)
		sum += 0.5*small*small + (a - small)
		k.dvalue[r] = scale * max(-1, min(1, e))
	}
	k.td = sum / float32(rows)
}

// bprGrads adds the BPR loss of Q(s, pos) against cols negatives per row,
// whose f(s)·e part is in qn (rows×cols), to the gradients, and returns
// the loss. b and knn are the negatives' biases and co-occurrence scores
// (b per column if shared, else per row and column). qn is overwritten by
// the loss's gradient by each negative's Q.
func (k *stepKernel) bprGrads(b, knn, qn []float32, cols int, shared bool) float32 {
	m := float32(k.rows * cols)
	sum := float32(0)
	for r := range k.rows {
		row := qn[r*cols : (r+1)*cols]
		bias := b[:cols]
		if !shared {
			bias = b[r*cols : (r+1)*cols]
		}
		kn := knn[r*cols : (r+1)*cols]
		for j := range row {
			diff := k.qpos[r] - (row[j] + bias[j] + k.alpha[r]*kn[j])
			sum += softplusG(-diff)
			g := sigmoidG(-diff) / m // d softplus(−diff)/d Q(s, neg)
			row[j] = g
			k.dqpos[r] -= g
		}
	}
	return sum / m
}

// backward turns the gradients by the Q values into the gradients of
// every weight; h is the last hidden layer of the forward pass.
func (k *stepKernel) backward(n *qnet, in *stepInputs, h []float32) {
	rows, dim := k.rows, k.dim
	// By f(s): from Q(s, pos) (ranked and TD) and from every negative; by
	// α: from the co-occurrence term of each.
	for r := range rows {
		dq := k.dq[r*dim : (r+1)*dim]
		g := k.dqpos[r] + k.dvalue[r]
		for j, e := range in.Epos[r*dim : (r+1)*dim] {
			dq[j] = g * e
		}
		da := k.dqpos[r] * in.KnnPos[r]
		if k.negs > 0 {
			da += dot32(k.qneg[r*k.negs:(r+1)*k.negs], in.KnnNeg[r*k.negs:(r+1)*k.negs])
		}
		if k.hard > 0 {
			gh := k.qhard[r*k.hard : (r+1)*k.hard]
			da += dot32(gh, in.KnnHard[r*k.hard:(r+1)*k.hard])
			gemv(blas.Trans, k.hard, dim, in.Ehard[r*k.hard*dim:(r+1)*k.hard*dim], gh, dq, 1)
		}
		k.dza[r] = da * sigmoidG(k.za[r])
	}
	if k.negs > 0 {
		gemm(blas.NoTrans, blas.NoTrans, rows, dim, k.negs, k.qneg, in.Eneg, k.dq, 1)
	}
	nl := len(n.hidden)
	width := n.head.in
	// The heads: q (W, b), α and v.
	k.weightGrads(h, width, k.dq, dim, k.grads[2*nl], k.grads[2*nl+1])
	k.weightGrads(h, width, k.dza, 1, k.grads[2*nl+2], k.grads[2*nl+3])
	k.weightGrads(h, width, k.dvalue, 1, k.grads[2*nl+4], k.grads[2*nl+5])
	if nl == 0 {
		return
	}
	dh := k.dh[:rows*width]
	gemm(blas.NoTrans, blas.Trans, rows, width, dim, k.dq, n.head.W, dh, 0)
	ger(rows, width, k.dza, n.alpha.W, dh)
	ger(rows, width, k.dvalue, n.value.W, dh)
	for i := nl - 1; i >= 0; i-- {
		l := n.hidden[i]
		dz := k.dz[:rows*l.out]
		for j, v := range k.z[i] {
			dz[j] = 0
			if v >= 0 {
				dz[j] = dh[j]
			}
		}
		prev := in.X
		if i > 0 {
			prev = k.h[i-1]
		}
		k.weightGrads(prev, l.in, dz, l.out, k.grads[2*i], k.grads[2*i+1])
		if i > 0 {
			dh = k.dh[:rows*l.in]
			gemm(blas.NoTrans, blas.Trans, rows, l.in, l.out, dz, l.W, dh, 0)
		}
	}
}

// weightGrads writes the gradients of a dense layer y = x·W + b (x
// rows×in) given the gradient by y (dy, rows×out): dW = xᵀ·dy, db = the
// column sums of dy.
func (k *stepKernel) weightGrads(x []float32, in int, dy []float32, out int, dW, db []float32) {
	gemm(blas.Trans, blas.NoTrans, in, out, k.rows, x, dy, dW, 0)
	clear(db)
	for r := range k.rows {
		for j, v := range dy[r*out : (r+1)*out] {
			db[j] += v
		}
	}
}

// affine writes x·W + b of a dense layer for rows rows of x into y.
func affine(rows int, x []float32, l layer, y []float32) {
	gemm(blas.NoTrans, blas.NoTrans, rows, l.out, l.in, x, l.W, y, 0)
	for r := range rows {
		for j, b := range l.B {
			y[r*l.out+j] += b
		}
	}
}

// gemm is C = op(A)·op(B) + beta·C on dense row-major matrices, C m×n
// and the inner dimension kk.
func gemm(tA, tB blas.Transpose, m, n, kk int, a, b, c []float32, beta float32) {
	ga := blas32.General{Rows: m, Cols: kk, Stride: kk, Data: a}
	if tA == blas.Trans {
		ga = blas32.General{Rows: kk, Cols: m, Stride: m, Data: a}
	}
	gb := blas32.General{Rows: kk, Cols: n, Stride: n, Data: b}
	if tB == blas.Trans {
		gb = blas32.General{Rows: n, Cols: kk, Stride: kk, Data: b}
	}
	blas32.Gemm(tA, tB, 1, ga, gb, beta, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
}

// gemv is y = op(A)·x + beta·y for A m×n row-major.
func gemv(t blas.Transpose, m, n int, a, x, y []float32, beta float32) {
	nx, ny := n, m
	if t == blas.Trans {
		nx, ny = m, n
	}
	blas32.Gemv(t, 1, blas32.General{Rows: m, Cols: n, Stride: n, Data: a},
		blas32.Vector{N: nx, Inc: 1, Data: x}, beta, blas32.Vector{N: ny, Inc: 1, Data: y})
}

// ger adds the outer product x·yᵀ to A (m×n row-major).
func ger(m, n int, x, y, a []float32) {
	blas32.Ger(1, blas32.Vector{N: m, Inc: 1, Data: x}, blas32.Vector{N: n, Inc: 1, Data: y},
		blas32.General{Rows: m, Cols: n, Stride: n, Data: a})
}

// dot32 is Σ a_i·b_i.
func dot32(a, b []float32) float32 {
	return blas32.Dot(blas32.Vector{N: len(a), Inc: 1, Data: a}, blas32.Vector{N: len(a), Inc: 1, Data: b})
}

// softplusG is gorgonia's float32 softplus, which the graph's loss uses.
func softplusG(x float32) float32 {
	if x < -103 {
		return 0
	}
	if x > 14 {
		return x
	}
	return float32(math.Log1p(math.Exp(float64(x))))
}

// sigmoidG is gorgonia's float32 sigmoid, the derivative of its softplus.
func sigmoidG(x float32) float32 {
	if x < -88 {
		return 0
	}
	if x > 15 {
		return 1
	}
	return float32(1 / (1 + math.Exp(float64(-x))))
}
