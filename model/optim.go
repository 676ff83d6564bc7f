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

// ewc is online elastic weight consolidation: a quadratic penalty
// λ/2·Σ F_i (w_i − w*_i)² that holds the weights important to what was
// learned before (F, a running mean of squared gradients: the diagonal
// Fisher information) near their consolidated values w*, so training on
// new sessions does not overwrite them.
type ewc struct {
	lambda float32
	decay  float32     // of the Fisher running mean
	fisher [][]float32 // per parameter tensor
	anchor [][]float32 // w*, nil until the first consolidation
}

func newEWC(lambda float64, tensors [][]float32) *ewc {
	e := &ewc{lambda: float32(lambda), decay: 0.99}
	for _, t := range tensors {
		e.fisher = append(e.fisher, make([]float32, len(t)))
	}
	return e
}

// observe folds the gradients of one step into the Fisher estimate.
func (e *ewc) observe(i int, g []float32) {
	f := e.fisher[i]
	for j, x := range g {
		f[j] = e.decay*f[j] + (1-e.decay)*x*x
	}
}

// consolidate makes the current weights the anchor.
func (e *ewc) consolidate(weights [][]float32) {
	e.anchor = e.anchor[:0]
	for _, w := range weights {
		e.anchor = append(e.anchor, append([]float32(nil), w...))
	}
}

// penalize adds the penalty's gradient λ·F·(w − w*) to g in place.
func (e *ewc) penalize(i int, w, g []float32) {
	if e.lambda == 0 || len(e.anchor) == 0 {
		return
	}
	f, a := e.fisher[i], e.anchor[i]
	for j := range g {
		g[j] += e.lambda * f[j] * (w[j] - a[j])
	}
}
