//go:build !amd64 || purego

package model

// haveSumMax16: the assembly kernel is amd64's (and left out with the
// purego tag).
const haveSumMax16 = false

// sumMax16 is sumMax16Go here.
func sumMax16(s []float64) (sum, top float64) { return sumMax16Go(s) }
