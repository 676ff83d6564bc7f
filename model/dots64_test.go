package model

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/cpu"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// TestDots64MatchesTheProduct: the kernel's products of rows of 64 values
// with q equal the exact (float64) products within float32 rounding, for
// any number of rows, and leave out's tail alone; on a CPU with AVX2 and
// FMA the kernel is the one that runs.
func TestDots64MatchesTheProduct(t *testing.T) {
	if dots64Built && runtime.GOARCH == "amd64" && cpu.X86.HasAVX2 && cpu.X86.HasFMA && !haveDots64 {
		t.Fatal("this CPU has AVX2 and FMA, but the kernel is off")
	}
	if !haveDots64 {
		t.Skip("no AVX2 and FMA here (or purego): dotsRange uses gonum's Sgemv")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 17, 1000} {
		e := make([]float32, 64*n+64) // a row past the n read
		q := make([]float32, 64)
		for i := range e {
			e[i] = float32(rng.NormFloat64())
		}
		for i := range q {
			q[i] = float32(rng.NormFloat64())
		}
		out := make([]float32, n+1)
		out[n] = 42
		if !dots64(e[:64*n], q, out[:n]) {
			t.Fatal("dots64 did not run")
		}
		if out[n] != 42 {
			t.Fatalf("n=%d: wrote past out[:n]", n)
		}
		for i := range n {
			want, scale := 0.0, 0.0
			for j := range 64 {
				p := float64(e[64*i+j]) * float64(q[j])
				want += p
				scale += math.Abs(p)
			}
			if d := math.Abs(float64(out[i]) - want); d > 1e-6*scale {
				t.Fatalf("n=%d row %d: %v, want %v (off by %g of %g)", n, i, out[i], want, d, scale)
			}
		}
	}
}

// TestDotsRangeUsesTheKernelAlike: a DQN's products of every item with a
// state, by dotsRange, are gonum's within float32 rounding, at the full
// width (the kernel, where it runs) and at a prefix (gonum).
func TestDotsRangeUsesTheKernelAlike(t *testing.T) {
	cfg := DefaultDQN()
	d, err := NewDQN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	n := 300
	d.bias = make([]float32, n)
	d.eout = make([]float32, n*64)
	for i := range d.eout {
		d.eout[i] = float32(rng.NormFloat64())
	}
	q := make([]float32, 64)
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	for _, to := range []int{64, 32} {
		got, want := make([]float32, n), make([]float32, n)
		d.dotsRange(q, got, 0, to, false)
		blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: n, Cols: to, Stride: 64, Data: d.eout},
			blas32.Vector{N: to, Inc: 1, Data: q[:to]}, 0, blas32.Vector{N: n, Inc: 1, Data: want})
		for i := range n {
			if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("width %d item %d: %v, gonum %v", to, i, got[i], want[i])
			}
		}
	}
}

// BenchmarkDots64 times the products of a state with 9,724 rows of 64
// values (ml-latest-small's catalogue at the full width, the mixture
// check's product) by the kernel and by gonum's Sgemv, interleaved in one
// run, and reports both and their ratio.
func BenchmarkDots64(b *testing.B) {
	benchRowDots(b, 9724, 64, func(e, q, out []float32) { dots64(e, q, out) })
}

// TestTierDotsUseTheKernelAlike: tiered tables score their 64-wide tier
// by dots64 and the narrower one by dots (where they run); with beta
// 1 they add to out. Every item's score is its row's product with q's
// prefix, within float32 rounding.
func TestTierDotsUseTheKernelAlike(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tb, err := newTiers([]int{24, 64})
	if err != nil {
		t.Fatal(err)
	}
	const items = 200
	for x := range items {
		row := make([]float32, tb.widths[x%2])
		for j := range row {
			row[j] = float32(rng.NormFloat64())
		}
		tb.add(x%2, row)
	}
	q := make([]float32, 64)
	for j := range q {
		q[j] = float32(rng.NormFloat64())
	}
	got := make([]float32, items)
	for x := range got {
		got[x] = 1
	}
	var buf []float32
	tb.dotsRange(q, got, 0, 64, 1, &buf)
	for x := range items {
		want := 1.0
		for j, v := range tb.row(int32(x)) {
			want += float64(q[j]) * float64(v)
		}
		if d := math.Abs(float64(got[x]) - want); d > 1e-4*(1+math.Abs(want)) {
			t.Fatalf("item %d (width %d): %v, want %v", x, tb.width(int32(x)), got[x], want)
		}
	}
}

// TestDotsMatchesTheProduct: the general kernel's products over the first
// w values of rows stride apart equal the exact (float64) products within
// float32 rounding, for every width up to 64 and a few counts of rows;
// it writes nothing past out[:n] and reads nothing past a row's first w
// values (NaNs there would show in the products).
func TestDotsMatchesTheProduct(t *testing.T) {
	if !haveDots64 {
		t.Skip("no AVX2 and FMA here (or purego): rowDots uses gonum's Sgemv")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	nan := float32(math.NaN())
	for w := 1; w <= 64; w++ {
		for _, stride := range []int{w, w + 3, 64} {
			if stride < w {
				continue
			}
			for _, n := range []int{0, 1, 2, 5, 33} {
				e := make([]float32, n*stride+8)
				for i := range e {
					e[i] = nan
				}
				for i := range n {
					for j := range w {
						e[i*stride+j] = float32(rng.NormFloat64())
					}
				}
				q := make([]float32, w+8)
				for j := range q {
					q[j] = nan
				}
				for j := range w {
					q[j] = float32(rng.NormFloat64())
				}
				out := make([]float32, n+1)
				out[n] = 42
				end := 0 // the rows' last value read, and no further
				if n > 0 {
					end = (n-1)*stride + w
				}
				if !dots(e[:end], stride, w, q[:w], out[:n]) {
					t.Fatal("dots did not run")
				}
				if out[n] != 42 {
					t.Fatalf("w=%d stride=%d n=%d: wrote past out[:n]", w, stride, n)
				}
				for i := range n {
					want, scale := 0.0, 0.0
					for j := range w {
						p := float64(e[i*stride+j]) * float64(q[j])
						want += p
						scale += math.Abs(p)
					}
					if d := math.Abs(float64(out[i]) - want); !(d <= 1e-6*scale) {
						t.Fatalf("w=%d stride=%d n=%d row %d: %v, want %v", w, stride, n, i, out[i], want)
					}
				}
			}
		}
	}
}

// BenchmarkDots times the products of a state with 9,724 rows of 26
// values (the adaptive model's narrow tier over ml-latest-small's
// catalogue) by the general kernel and by gonum's Sgemv, interleaved in
// one run, and reports both and their ratio.
func BenchmarkDots(b *testing.B) {
	benchRowDots(b, 9724, 26, func(e, q, out []float32) { dots(e, 26, 26, q, out) })
}

// benchRowDots times the products of a state with n rows of w values by
// kernel and by gonum's Sgemv, interleaved in one run, and reports both
// and their ratio.
func benchRowDots(b *testing.B, n, w int, kernel func(e, q, out []float32)) {
	if !haveDots64 {
		b.Skip("no AVX2 and FMA here")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	e, q, out := make([]float32, w*n), make([]float32, w), make([]float32, n)
	for i := range e {
		e[i] = float32(rng.NormFloat64())
	}
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	var ours, plain time.Duration
	for b.Loop() {
		t0 := time.Now()
		kernel(e, q, out)
		t1 := time.Now()
		blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: n, Cols: w, Stride: w, Data: e},
			blas32.Vector{N: w, Inc: 1, Data: q}, 0, blas32.Vector{N: n, Inc: 1, Data: out})
		ours, plain = ours+t1.Sub(t0), plain+time.Since(t1)
	}
	flops := float64(2 * w * n * b.N)
	b.ReportMetric(flops/ours.Seconds()/1e9, "kernel_GFLOP/s")
	b.ReportMetric(flops/plain.Seconds()/1e9, "sgemv_GFLOP/s")
	b.ReportMetric(plain.Seconds()/ours.Seconds(), "kernel/sgemv")
}
