//go:build !purego

package model

import "golang.org/x/sys/cpu"

// dots64Built: this build has the assembly kernel.
const dots64Built = true

// haveDots64 is whether this CPU runs dots64AVX2 (AVX2 and FMA).
var haveDots64 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dots64AVX2 writes into out[:n] the products of the n rows of e (64
// values each, one after another) with q (64 values).
//
//go:noescape
func dots64AVX2(e *float32, q *float32, out *float32, n int)

// dots64 writes into out the products of the len(out) rows of e, 64 values
// each, with q's 64 values; ok is false (nothing written) where the CPU
// lacks AVX2 and FMA, for the caller to fall back to gonum's Sgemv.
func dots64(e, q, out []float32) (ok bool) {
	if !haveDots64 {
		return false
	}
	n := len(out)
	if len(q) < 64 || len(e) < 64*n {
		panic("dots64: short e or q")
	}
	if n > 0 {
		dots64AVX2(&e[0], &q[0], &out[0], n)
	}
	return true
}

// dotsAVX2 writes into out[:n] the products of n rows of e, stride values
// apart, with q, over their first w values; mask's first w%8 are -1, the
// rest 0.
//
//go:noescape
func dotsAVX2(e *float32, q *float32, out *float32, n, w, stride int, mask *int32)

// tailMasks[k] is dotsAVX2's mask for k values left.
var tailMasks = func() (m [8][8]int32) {
	for k := range m {
		for j := range k {
			m[k][j] = -1
		}
	}
	return m
}()

// dots writes into out the products of the len(out) rows of e, stride
// values apart, with q, over their first w values (w ≤ stride); ok is
// false (nothing written) where the CPU lacks AVX2 and FMA, for the
// caller to fall back to gonum's Sgemv.
func dots(e []float32, stride, w int, q, out []float32) (ok bool) {
	if !haveDots64 {
		return false
	}
	n := len(out)
	if w <= 0 || w > stride || len(q) < w || n > 0 && len(e) < (n-1)*stride+w {
		panic("dots: short e or q")
	}
	if n > 0 {
		dotsAVX2(&e[0], &q[0], &out[0], n, w, stride, &tailMasks[w%8][0])
	}
	return true
}
