package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/adaptrec/adaptrec/model/feedback"
)

const benchItems = 9724 // ml-latest-small

// benchDQN is a DQN with benchItems items and a full replay buffer.
func benchDQN(b *testing.B) *DQN { return benchDQNOf(b, DefaultDQN()) }

// benchDQNOf is benchDQN's model with configuration cfg.
func benchDQNOf(b *testing.B, cfg DQNConfig) *DQN {
	d, err := NewDQN(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.Close)
	var evs []feedback.Located
	for i := range benchItems * 2 {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%700), SessionID: "s", ItemID: fmt.Sprint("i", i%benchItems), Type: feedback.Rating, Value: 4, HasValue: true, TS: time.Unix(int64(i), 0)}})
	}
	for lo := 0; lo < len(evs); lo += 4096 {
		bt := feedback.BatchOf(evs[lo:min(lo+4096, len(evs))]...)
		if _, err := d.Learn(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
		bt.Release()
	}
	return d
}

// trainFlops counts the multiply-adds of one gorgonia step's forward pass
// (×2 for FLOPs, ×3 for forward plus backward).
func (d *DQN) trainFlops() float64 {
	rows := float64(d.cfg.Rows)
	f := 0.0
	for _, l := range d.net.layers() {
		f += rows * float64(l.in*l.out)
	}
	negs := float64(d.cfg.Negatives + d.cfg.Hard + d.cfg.RowUniform)
	f += rows * (1 + negs) * float64(d.cfg.Dim)
	return 3 * 2 * f
}

// BenchmarkTrainStep times one training step (rows 256: filling the
// inputs, TD targets included, then the forward and backward pass) and,
// interleaved with it so both see the same machine, the plain products of
// its shapes (trainShapesMatMul); it reports the step's GFLOP/s, the plain
// products' and their ratio (ns/op is the two together).
func BenchmarkTrainStep(b *testing.B) {
	d := benchDQN(b)
	rows := append([]transition(nil), d.replay[:d.cfg.Rows]...)
	plain, plainFlops := trainShapesMatMul(d.cfg)
	var stepT, plainT time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := d.step(rows); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		plain()
		plainT += time.Since(t1)
		stepT += t1.Sub(t0)
	}
	reportRatio(b, "step", d.trainFlops(), stepT, plainFlops, plainT)
}

// reportRatio reports the GFLOP/s of what ran for ours (doing oursFlops
// per iteration) and for the plain matrix products (plainFlops), their
// ratio, and ours' time per iteration.
func reportRatio(b *testing.B, what string, oursFlops float64, ours time.Duration, plainFlops float64, plain time.Duration) {
	n := float64(b.N)
	g := oursFlops * n / ours.Seconds() / 1e9
	p := plainFlops * n / plain.Seconds() / 1e9
	b.ReportMetric(g, "GFLOP/s")
	b.ReportMetric(p, "matmul_GFLOP/s")
	b.ReportMetric(g/p, what+"/matmul")
	b.ReportMetric(ours.Seconds()/n*1e6, "µs/"+what)
}

// BenchmarkTrainShapesMatMul multiplies matrices of the training step's
// shapes (forward, and the two backward products of every layer) with
// gonum's Sgemm: the practical limit of this machine for these shapes.
func BenchmarkTrainShapesMatMul(b *testing.B) {
	ops, flops := trainShapesMatMul(DefaultDQN())
	for b.Loop() {
		ops()
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(sec*1e6, "µs/op")
}

// trainShapesMatMul returns the plain products of a training step of cfg's
// network and their FLOPs: per layer the forward x·W, the weight gradient
// xᵀ·dy and the input gradient dy·Wᵀ, with the transposes the backward pass
// uses. The matrices hold random values: gonum's Sgemm skips the zeros of
// an untransposed A, so zero matrices would measure nothing.
func trainShapesMatMul(cfg DQNConfig) (ops func(), flops float64) {
	dims := []int{cfg.Dim + 4}
	dims = append(dims, cfg.Hidden...)
	dims = append(dims, cfg.Dim)
	rows := cfg.Rows
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(r, c int) blas32.General { return randomMatrix(rng, r, c) }
	type mm struct {
		ta, tb   blas.Transpose
		a, bm, c blas32.General
	}
	var mms []mm
	for i := 1; i < len(dims); i++ {
		in, out := dims[i-1], dims[i]
		x, w, dy := gen(rows, in), gen(in, out), gen(rows, out)
		mms = append(mms,
			mm{blas.NoTrans, blas.NoTrans, x, w, gen(rows, out)}, // forward
			mm{blas.Trans, blas.NoTrans, x, dy, gen(in, out)},    // weight gradient
			mm{blas.NoTrans, blas.Trans, dy, w, gen(rows, in)})   // input gradient
		flops += 3 * 2 * float64(rows*in*out)
	}
	return func() {
		for _, o := range mms {
			blas32.Gemm(o.ta, o.tb, 1, o.a, o.bm, 0, o.c)
		}
	}, flops
}

// BenchmarkScoreBatch computes Q(s, a) = f(s)·e_a + b_a + α(s)·knn(s, a)
// of every item for 256 users as a batch's lists do (qBatch: one forward
// pass for all, then per user the product with E, the co-occurrence
// scores and the sum) and, interleaved with it, the plain product of its
// shapes two ways: gonum's Sgemm (scoreShapesMatMul, the figure the
// targets name) and one Sgemv per user (the faster of the two here, which
// qBatch uses). It reports the GFLOP/s of the product for each and ours'
// ratio to each. The mixture's other experts and the top-N are
// BenchmarkServeBatch's.
func BenchmarkScoreBatch(b *testing.B) {
	d := benchDQN(b)
	var users []*UserState
	for u := range 256 {
		if st, ok := d.users.Lookup(fmt.Sprint("u", u)); ok {
			users = append(users, st)
		}
	}
	n := len(d.bias)
	plain, plainFlops := scoreShapesMatMul(len(users), n, d.cfg.Dim)
	rows := scoreShapesGemv(len(users), n, d.cfg.Dim)
	var ours, plainT, rowsT time.Duration
	for b.Loop() {
		t0 := time.Now()
		dots, alphas := d.qBatch(users)
		for i, u := range users {
			d.co.score(u.Recent, d.cfg.Decay, d.knn)
			d.qScores(dots[i*n:(i+1)*n], alphas[i])
		}
		t1 := time.Now()
		plain()
		t2 := time.Now()
		rows()
		rowsT += time.Since(t2)
		plainT += t2.Sub(t1)
		ours += t1.Sub(t0)
	}
	reportRatio(b, "batch", plainFlops, ours, plainFlops, plainT)
	g := plainFlops * float64(b.N) / rowsT.Seconds() / 1e9
	b.ReportMetric(g, "gemv_GFLOP/s")
	b.ReportMetric(plainFlops*float64(b.N)/ours.Seconds()/1e9/g, "batch/gemv")
}

// scoreShapesMatMul returns the plain product (users×dim)·(dim×items) of
// random matrices with gonum's Sgemm, and its FLOPs.
func scoreShapesMatMul(users, items, dim int) (product func(), flops float64) {
	a, e, c := scoreShapes(users, items, dim)
	return func() { blas32.Gemm(blas.NoTrans, blas.Trans, 1, a, e, 0, c) }, 2 * float64(users*items*dim)
}

// scoreShapesGemv returns the same product as scoreShapesMatMul done as
// one Sgemv per row of the first matrix.
func scoreShapesGemv(users, items, dim int) (product func()) {
	a, e, c := scoreShapes(users, items, dim)
	return func() {
		for i := range users {
			blas32.Gemv(blas.NoTrans, 1, e, blas32.Vector{N: dim, Inc: 1, Data: a.Data[i*dim : (i+1)*dim]},
				0, blas32.Vector{N: items, Inc: 1, Data: c.Data[i*items : (i+1)*items]})
		}
	}
}

// scoreShapes returns random users×dim and items×dim matrices and a
// users×items result.
func scoreShapes(users, items, dim int) (a, e, c blas32.General) {
	rng := rand.New(rand.NewPCG(3, 4))
	return randomMatrix(rng, users, dim), randomMatrix(rng, items, dim), randomMatrix(rng, users, items)
}

// randomMatrix is an r×c matrix of normal draws.
func randomMatrix(rng *rand.Rand, r, c int) blas32.General {
	m := blas32.General{Rows: r, Cols: c, Stride: c, Data: make([]float32, r*c)}
	for i := range m.Data {
		m.Data[i] = float32(rng.NormFloat64())
	}
	return m
}

// BenchmarkScoreShapesMatMul is the plain (256×32)·(32×9724) product.
func BenchmarkScoreShapesMatMul(b *testing.B) {
	product, flops := scoreShapesMatMul(256, benchItems, DefaultDQN().Dim)
	for b.Loop() {
		product()
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(sec*1e3, "ms/batch")
}

// BenchmarkServeBatch serves 256 touched users the way a batch does: one
// matrix product for all of them, then co-occurrence, exploration and
// top-N per user.
func BenchmarkServeBatch(b *testing.B) {
	d := benchDQN(b)
	d.batch.reset()
	for u := range 256 {
		if st, ok := d.users.Lookup(fmt.Sprint("u", u)); ok {
			d.batch.add(st)
		}
	}
	for b.Loop() {
		d.lists()
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(2*float64(len(d.batch.order)*benchItems*d.cfg.Dim)/sec/1e9, "GFLOP/s")
	b.ReportMetric(sec*1e3, "ms/batch")
}

// BenchmarkServeAtWidth is BenchmarkServeBatch with nested widths, every
// user's lists at one width: what the time of a batch's serving saves
// against the FLOPs it saves (a width of w does w/64 of the item
// product's multiply-adds).
func BenchmarkServeAtWidth(b *testing.B) {
	cfg := DefaultDQN()
	cfg.Nested, cfg.WidthPolicy = []int{16, 32}, WidthFull
	d := benchDQNOf(b, cfg)
	for arm, w := range d.wp.widths {
		b.Run(fmt.Sprint("width=", w), func(b *testing.B) {
			d.batch.reset()
			for u := range 256 {
				if st, ok := d.users.Lookup(fmt.Sprint("u", u)); ok {
					st.arm = uint8(arm)
					d.batch.add(st)
				}
			}
			for b.Loop() {
				d.lists()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*1e3, "ms/batch")
		})
	}
}
