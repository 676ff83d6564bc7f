package model

import "math"

// adam is Adam over one flat parameter slice. Its moments are plain slices
// so that an architecture change can carry them over for surviving weights.
type adam struct {
	lr, b1, b2, eps float64
	m, v            []float32
	t               int
}

func newAdam(n int, lr float64) *adam {
	return &adam{lr: lr, b1: 0.9, b2: 0.999, eps: 1e-8, m: make([]float32, n), v: make([]float32, n)}
}

// step updates w by gradient g; clip bounds each gradient component.
func (a *adam) step(w, g []float32, clip float32) {
	a.t++
	c1 := 1 - math.Pow(a.b1, float64(a.t))
	c2 := 1 - math.Pow(a.b2, float64(a.t))
	lr := float32(a.lr * math.Sqrt(c2) / c1)
	b1, b2 := float32(a.b1), float32(a.b2)
	for i, gi := range g {
		if gi > clip {
			gi = clip
		} else if gi < -clip {
			gi = -clip
		}
		a.m[i] = b1*a.m[i] + (1-b1)*gi
		a.v[i] = b2*a.v[i] + (1-b2)*gi*gi
		w[i] -= lr * a.m[i] / (float32(math.Sqrt(float64(a.v[i]))) + float32(a.eps))
	}
}
