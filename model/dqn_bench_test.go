package model

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/adaptrec/adaptrec/model/feedback"
)

const benchItems = 9724 // ml-latest-small

// benchDQN is a DQN with benchItems items and a full replay buffer.
func benchDQN(b *testing.B) *DQN {
	d, err := NewDQN(DefaultDQN())
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

// BenchmarkTrainStep times one gorgonia training step (rows 256) and
// reports its GFLOP/s next to BenchmarkTrainShapesMatMul, a plain float32
// matrix multiply of the network's shapes.
func BenchmarkTrainStep(b *testing.B) {
	d := benchDQN(b)
	rows := append([]transition(nil), d.replay[:d.cfg.Rows]...)
	for b.Loop() {
		if err := d.step(rows); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(d.trainFlops()/sec/1e9, "GFLOP/s")
	b.ReportMetric(sec*1e6, "µs/step")
}

// BenchmarkTrainShapesMatMul multiplies matrices of the training step's
// shapes (forward, and the two backward products of every layer) with
// gonum's Sgemm: the practical limit of this machine for these shapes.
func BenchmarkTrainShapesMatMul(b *testing.B) {
	cfg := DefaultDQN()
	dims := []int{cfg.Dim + 4}
	dims = append(dims, cfg.Hidden...)
	dims = append(dims, cfg.Dim)
	rows := cfg.Rows
	flops := 0.0
	type mm struct{ a, bm, c blas32.General }
	var ops []mm
	gen := func(r, c int) blas32.General {
		return blas32.General{Rows: r, Cols: c, Stride: c, Data: make([]float32, r*c)}
	}
	for i := 1; i < len(dims); i++ {
		in, out := dims[i-1], dims[i]
		ops = append(ops, mm{gen(rows, in), gen(in, out), gen(rows, out)}) // forward
		ops = append(ops, mm{gen(in, rows), gen(rows, out), gen(in, out)}) // weight gradient
		ops = append(ops, mm{gen(rows, out), gen(out, in), gen(rows, in)}) // input gradient
		flops += 3 * 2 * float64(rows*in*out)
	}
	for b.Loop() {
		for _, o := range ops {
			blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, o.a, o.bm, 0, o.c)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(sec*1e6, "µs/op")
}

// BenchmarkScoreBatch scores 256 users against every item (the serving
// path: f(s)·e_a + b_a + α·knn for all items, per user) and reports
// GFLOP/s of the dot products, next to BenchmarkScoreShapesMatMul.
func BenchmarkScoreBatch(b *testing.B) {
	d := benchDQN(b)
	var users []*UserState
	for u := range 256 {
		if st, ok := d.users.Lookup(fmt.Sprint("u", u)); ok {
			users = append(users, st)
		}
	}
	for b.Loop() {
		for _, u := range users {
			d.scoreAll(u)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	flops := 2 * float64(len(users)*benchItems*d.cfg.Dim)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(sec*1e3, "ms/batch")
}

// BenchmarkScoreShapesMatMul is the plain (256×32)·(32×9724) product.
func BenchmarkScoreShapesMatMul(b *testing.B) {
	dim := DefaultDQN().Dim
	a := blas32.General{Rows: 256, Cols: dim, Stride: dim, Data: make([]float32, 256*dim)}
	e := blas32.General{Rows: benchItems, Cols: dim, Stride: dim, Data: make([]float32, benchItems*dim)}
	c := blas32.General{Rows: 256, Cols: benchItems, Stride: benchItems, Data: make([]float32, 256*benchItems)}
	for b.Loop() {
		blas32.Gemm(blas.NoTrans, blas.Trans, 1, a, e, 0, c)
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(2*float64(256*benchItems*dim)/sec/1e9, "GFLOP/s")
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
