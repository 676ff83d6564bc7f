//go:build !amd64 || purego

package model

// The assembly kernel is amd64's (and left out with the purego tag).
const dots64Built, haveDots64 = false, false

// dots64 does nothing here: the caller falls back to gonum's Sgemv.
func dots64(e, q, out []float32) (ok bool) { return false }

// dots does nothing here: the caller falls back to gonum's Sgemv.
func dots(e []float32, stride, w int, q, out []float32) (ok bool) { return false }
