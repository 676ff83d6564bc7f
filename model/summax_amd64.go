//go:build !purego

package model

import "golang.org/x/sys/cpu"

// haveSumMax16 is whether this CPU runs sumMax16AVX2.
var haveSumMax16 = cpu.X86.HasAVX2

// sumMax16AVX2 is sumMax16 of s[:n] (n a positive multiple of 16), with
// AVX2.
//
//go:noescape
func sumMax16AVX2(s *float64, n int) (sum, top float64)

// sumMax16 is the sum and the largest of s (its length a positive multiple
// of 16), summed in sixteen lanes; the kernel where the CPU has AVX2, the
// same bits either way.
func sumMax16(s []float64) (sum, top float64) {
	if haveSumMax16 {
		return sumMax16AVX2(&s[0], len(s))
	}
	return sumMax16Go(s)
}
