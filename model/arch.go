package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Architecture operations on the Q-network. Each works on three parallel
// copies of the network: the weights and the two Adam moment planes, so
// that the optimiser state of every surviving weight is carried over
// (plane 0 is the weights, 1 the first moment, 2 the second moment: a
// weight split in two halves, its first moment halves and its second
// quarters).

// ActionKind is what an architecture decision does.
type ActionKind string

// The architecture actions.
const (
	Keep        ActionKind = "keep"
	Widen       ActionKind = "widen"
	Narrow      ActionKind = "narrow"
	AddLayer    ActionKind = "add_layer"
	RemoveLayer ActionKind = "remove_layer"
	// TiersNarrower doubles the interaction counts at which an item's
	// embedding moves up a tier (tiers.go), so rows with less evidence
	// than the new thresholds narrow; TiersWider halves them.
	TiersNarrower ActionKind = "tiers_narrower"
	TiersWider    ActionKind = "tiers_wider"
)

// Action is one architecture decision: Layer indexes the hidden layers; K
// is the number of units to add or remove.
type Action struct {
	Kind  ActionKind `json:"kind"`
	Layer int        `json:"layer"`
	K     int        `json:"k,omitempty"`
}

// String describes the action for logs: widen(layer 0, 16), add_layer(1).
func (a Action) String() string {
	switch a.Kind {
	case Widen, Narrow:
		return fmt.Sprintf("%s(layer %d, %d)", a.Kind, a.Layer, a.K)
	case AddLayer, RemoveLayer:
		return fmt.Sprintf("%s(%d)", a.Kind, a.Layer)
	}
	return string(a.Kind)
}

// consumers are the layers that read hidden layer i's output: the next
// hidden layer, or the three heads after the last one.
func (n *qnet) consumers(i int) []*layer {
	if i+1 < len(n.hidden) {
		return []*layer{&n.hidden[i+1]}
	}
	return []*layer{&n.head, &n.alpha, &n.value}
}

// widen adds len(picks) units to hidden layer i, Net2Net style: new unit r
// copies unit picks[r]'s incoming weights and bias, and the copies of a
// unit (the original included) share its outgoing weights, so the network
// computes the same function. On the weight plane (0) each outgoing weight
// is split in random proportions drawn from seed: copies with equal shares
// would get equal gradients and stay copies for ever, adding no capacity.
// On the Adam moment planes (1: m, 2: v) every copy takes 1/c^plane of the
// unit's moment, c being the number of copies.
func (n *qnet) widen(i int, picks []int, plane int, seed uint64) {
	l := &n.hidden[i]
	out, k := l.out, len(picks)
	copies := make([][]int, out) // the units each original unit became
	for u := range copies {
		copies[u] = []int{u}
	}
	for j, p := range picks {
		copies[p] = append(copies[p], out+j)
	}
	w := make([]float32, l.in*(out+k))
	for r := range l.in {
		copy(w[r*(out+k):], l.W[r*out:(r+1)*out])
		for j, p := range picks {
			w[r*(out+k)+out+j] = l.W[r*out+p]
		}
	}
	b := append(slices.Clone(l.B), make([]float32, k)...)
	for j, p := range picks {
		b[out+j] = l.B[p]
	}
	l.W, l.B, l.out = w, b, out+k
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	share := make([]float32, 0, k+1)
	for _, c := range n.consumers(i) {
		nw := make([]float32, (out+k)*c.out)
		for u, us := range copies {
			for col := range c.out {
				share = share[:0]
				if plane == 0 && len(us) > 1 {
					total := float32(0)
					for range us {
						share = append(share, float32(0.5+rng.Float64()))
						total += share[len(share)-1]
					}
					for j := range share {
						share[j] /= total
					}
				} else {
					s := float32(math.Pow(float64(len(us)), -float64(max(plane, 1))))
					for range us {
						share = append(share, s)
					}
				}
				for j, v := range us {
					nw[v*c.out+col] = c.W[u*c.out+col] * share[j]
				}
			}
		}
		c.W, c.in = nw, out+k
	}
}

// narrow removes the given units of hidden layer i and their weights.
func (n *qnet) narrow(i int, drop []int) {
	l := &n.hidden[i]
	keep := make([]int, 0, l.out)
	for u := range l.out {
		if !slices.Contains(drop, u) {
			keep = append(keep, u)
		}
	}
	w := make([]float32, 0, l.in*len(keep))
	for r := range l.in {
		for _, u := range keep {
			w = append(w, l.W[r*l.out+u])
		}
	}
	b := make([]float32, 0, len(keep))
	for _, u := range keep {
		b = append(b, l.B[u])
	}
	l.W, l.B, l.out = w, b, len(keep)
	for _, c := range n.consumers(i) {
		nw := make([]float32, 0, len(keep)*c.out)
		for _, u := range keep {
			nw = append(nw, c.W[u*c.out:(u+1)*c.out]...)
		}
		c.W, c.in = nw, len(keep)
	}
}

// addLayer inserts after hidden layer i an identity layer of the same
// width: the ReLU outputs it reads are non-negative, so ReLU(I·h) = h and
// the function is unchanged. Moments of the new layer start at zero.
func (n *qnet) addLayer(i int, plane int) {
	width := n.hidden[i].out
	l := layer{in: width, out: width, W: make([]float32, width*width), B: make([]float32, width)}
	if plane == 0 {
		for j := range width {
			l.W[j*width+j] = 1
		}
	}
	n.hidden = slices.Insert(n.hidden, i+1, l)
}

// removeLayer drops hidden layer i, folding it into its consumers as if
// its ReLU were the identity: W' = W_i·W_c, b' = b_i·W_c + b_c. Where the
// layer's pre-activations were negative this changes the function; the
// quality loss is what the controller's reward measures. The folded
// weights are new, so their moments restart at zero.
func (n *qnet) removeLayer(i int, plane int) {
	l := n.hidden[i]
	for _, c := range n.consumers(i) {
		w := make([]float32, l.in*c.out)
		b := make([]float32, c.out)
		if plane == 0 {
			for r := range l.in {
				for m := range l.out {
					lw := l.W[r*l.out+m]
					if lw == 0 {
						continue
					}
					for col := range c.out {
						w[r*c.out+col] += lw * c.W[m*c.out+col]
					}
				}
			}
			copy(b, c.B)
			for m := range l.out {
				for col := range c.out {
					b[col] += l.B[m] * c.W[m*c.out+col]
				}
			}
		}
		c.W, c.B, c.in = w, b, l.in
	}
	n.hidden = slices.Delete(n.hidden, i, i+1)
}

// importance scores each unit of hidden layer i by the norms of its
// incoming and outgoing weights; the least important go first.
func (n *qnet) importance(i int) []float64 {
	l := n.hidden[i]
	imp := make([]float64, l.out)
	for u := range l.out {
		in, out := 0.0, 0.0
		for r := range l.in {
			in += float64(l.W[r*l.out+u] * l.W[r*l.out+u])
		}
		in += float64(l.B[u] * l.B[u])
		for _, c := range n.consumers(i) {
			for col := range c.out {
				out += float64(c.W[u*c.out+col] * c.W[u*c.out+col])
			}
		}
		imp[u] = math.Sqrt(in) * math.Sqrt(out)
	}
	return imp
}

// leastImportant returns the k least important units of hidden layer i.
func (n *qnet) leastImportant(i, k int) []int {
	imp := n.importance(i)
	idx := make([]int, len(imp))
	for u := range idx {
		idx[u] = u
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case imp[a] < imp[b]:
			return -1
		case imp[a] > imp[b]:
			return 1
		}
		return 0
	})
	return idx[:k]
}

// ArchBounds bound what an action may do.
type ArchBounds struct {
	MinWidth, MaxWidth int
	MinDepth, MaxDepth int
	MaxParams          int // network weights, 0: none
}

// valid says whether a is allowed on n within bounds.
func (n *qnet) valid(a Action, b ArchBounds) error {
	depth := len(n.hidden)
	inLayer := func() error {
		if a.Layer < 0 || a.Layer >= depth {
			return fmt.Errorf("layer %d does not exist (depth %d)", a.Layer, depth)
		}
		return nil
	}
	switch a.Kind {
	case Keep:
		return nil
	case Widen:
		if err := inLayer(); err != nil {
			return err
		}
		if a.K <= 0 || n.hidden[a.Layer].out+a.K > b.MaxWidth {
			return fmt.Errorf("width %d+%d exceeds %d", n.hidden[a.Layer].out, a.K, b.MaxWidth)
		}
	case Narrow:
		if err := inLayer(); err != nil {
			return err
		}
		if a.K <= 0 || n.hidden[a.Layer].out-a.K < b.MinWidth {
			return fmt.Errorf("width %d-%d is below %d", n.hidden[a.Layer].out, a.K, b.MinWidth)
		}
	case AddLayer:
		if err := inLayer(); err != nil {
			return err
		}
		if depth+1 > b.MaxDepth {
			return fmt.Errorf("depth %d+1 exceeds %d", depth, b.MaxDepth)
		}
	case RemoveLayer:
		if err := inLayer(); err != nil {
			return err
		}
		if depth-1 < b.MinDepth {
			return fmt.Errorf("depth %d-1 is below %d", depth, b.MinDepth)
		}
	default:
		return fmt.Errorf("unknown action %q", a.Kind)
	}
	if b.MaxParams > 0 {
		trial := n.clone()
		trial.apply(trial.plan(a, rand.New(rand.NewPCG(0, 0))), 0)
		if p := trial.params(); p > b.MaxParams && p > n.params() {
			return fmt.Errorf("%d parameters exceed the budget %d", p, b.MaxParams)
		}
	}
	return nil
}

// plan fixes the random and importance-based choices of a on the weights,
// so the same choices apply to every plane.
type plan struct {
	Action
	picks []int  // units replicated by Widen
	seed  uint64 // of Widen's random split of outgoing weights
	drop  []int  // units removed by Narrow
}

func (n *qnet) plan(a Action, rng *rand.Rand) plan {
	p := plan{Action: a}
	switch a.Kind {
	case Widen:
		p.picks = make([]int, a.K)
		for j := range p.picks {
			p.picks[j] = rng.IntN(n.hidden[a.Layer].out)
		}
		p.seed = rng.Uint64()
	case Narrow:
		p.drop = n.leastImportant(a.Layer, a.K)
	}
	return p
}

// apply performs p on one plane of the network.
func (n *qnet) apply(p plan, plane int) {
	switch p.Kind {
	case Widen:
		n.widen(p.Layer, p.picks, plane, p.seed)
	case Narrow:
		n.narrow(p.Layer, p.drop)
	case AddLayer:
		n.addLayer(p.Layer, plane)
	case RemoveLayer:
		n.removeLayer(p.Layer, plane)
	}
}
