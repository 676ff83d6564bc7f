package model

import (
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// tiers is an item embedding table whose rows have one of a few widths
// (issue 16: mixed-dimension embeddings): tier t keeps its rows, each
// widths[t] wide, in one dense row-major array, so the memory an item
// takes is its width's, and a state scores all the items of a tier with
// one matrix product against the prefix of its vector. An item's row is
// the prefix of a full-width row: it scores q·e over its own width, as if
// the rest were zero.
type tiers struct {
	widths []int       // ascending; the last is the full width
	data   [][]float32 // per tier, len(items[t])×widths[t]
	items  [][]int32   // per tier, the item in each slot
	tier   []uint8     // per item
	slot   []int32     // per item, its row within its tier
}

// newTiers returns an empty table of the given widths (ascending, at most
// 255 tiers).
func newTiers(widths []int) (*tiers, error) {
	if len(widths) == 0 || len(widths) > 255 {
		return nil, fmt.Errorf("tiers: want 1 to 255 widths, got %d", len(widths))
	}
	for i, w := range widths {
		if w <= 0 || i > 0 && w <= widths[i-1] {
			return nil, fmt.Errorf("tiers: widths must be positive and ascending, got %v", widths)
		}
	}
	return &tiers{widths: widths, data: make([][]float32, len(widths)), items: make([][]int32, len(widths))}, nil
}

// len is the number of items.
func (t *tiers) len() int { return len(t.tier) }

// params is the number of values all rows hold.
func (t *tiers) params() int {
	n := 0
	for _, d := range t.data {
		n += len(d)
	}
	return n
}

// row is item x's row (its tier's width long); writes change the table.
func (t *tiers) row(x int32) []float32 {
	tr, w := t.tier[x], t.widths[t.tier[x]]
	s := int(t.slot[x])
	return t.data[tr][s*w : (s+1)*w : (s+1)*w]
}

// width is item x's width.
func (t *tiers) width(x int32) int { return t.widths[t.tier[x]] }

// add appends item len() in tier tr with the row init (copied; its length
// is the tier's width) and returns its index.
func (t *tiers) add(tr int, init []float32) int32 {
	if len(init) != t.widths[tr] {
		panic(fmt.Sprintf("tiers: a row of %d values for tier %d of width %d", len(init), tr, t.widths[tr]))
	}
	x := int32(len(t.tier))
	t.tier = append(t.tier, uint8(tr))
	t.slot = append(t.slot, int32(len(t.items[tr])))
	t.items[tr] = append(t.items[tr], x)
	t.data[tr] = append(t.data[tr], init...)
	return x
}

// move puts item x in tier to (rng is not used when sigma is 0). Widening keeps the row as the prefix of
// the new one and starts the new values at N(0, sigma²): with sigma 0 it
// preserves every score exactly, but then the new values never learn (the
// gradient of q·e in them is q's, whose values there come from rows that
// are zero there too), so a small sigma breaks the symmetry. Narrowing
// keeps the prefix. The slot x leaves is filled by its tier's last row.
func (t *tiers) move(x int32, to int, sigma float64, rng *rand.Rand) {
	from := int(t.tier[x])
	if from == to {
		return
	}
	old := t.row(x)
	w := t.widths[to]
	row := make([]float32, w)
	n := copy(row, old)
	for j := n; j < w && sigma > 0; j++ {
		row[j] = float32(rng.NormFloat64() * sigma)
	}
	t.remove(x)
	t.tier[x] = uint8(to)
	t.slot[x] = int32(len(t.items[to]))
	t.items[to] = append(t.items[to], x)
	t.data[to] = append(t.data[to], row...)
}

// remove takes x's row out of its tier, moving the tier's last row into
// its slot; x's tier and slot are left for the caller to set.
func (t *tiers) remove(x int32) {
	tr, s := int(t.tier[x]), int(t.slot[x])
	w := t.widths[tr]
	last := len(t.items[tr]) - 1
	if s != last {
		y := t.items[tr][last]
		copy(t.data[tr][s*w:(s+1)*w], t.data[tr][last*w:(last+1)*w])
		t.items[tr][s], t.slot[y] = y, int32(s)
	}
	t.items[tr] = t.items[tr][:last]
	t.data[tr] = t.data[tr][:last*w]
}

// dotsRange writes into out (len() long), scaled by beta first, the
// products of every item's values in columns from to to with q's (a row
// narrower than to counts as zero past its width): one matrix-vector
// product per tier against that range of q, scattered to the items'
// places. buf is scratch, grown as needed.
func (t *tiers) dotsRange(q, out []float32, from, to int, beta float32, buf *[]float32) {
	for tr, w := range t.widths {
		n := len(t.items[tr])
		if n == 0 {
			continue
		}
		hi := min(w, to)
		if hi <= from {
			for _, x := range t.items[tr] {
				if beta == 0 {
					out[x] = 0
				} else {
					out[x] *= beta
				}
			}
			continue
		}
		b := grow(buf, n)
		rowDots(t.data[tr][:n*w], w, q, from, hi, 0, b)
		for s, x := range t.items[tr] {
			out[x] = beta*out[x] + b[s]
		}
	}
}

// dense returns every item's row padded with zeros to the full width,
// row-major (snapshots, tests).
func (t *tiers) dense() []float32 {
	full := t.widths[len(t.widths)-1]
	out := make([]float32, t.len()*full)
	for x := range int32(t.len()) {
		copy(out[int(x)*full:], t.row(x))
	}
	return out
}

// dotsBatch is dots for nu states at once: qs is nu×dim row-major, out
// nu×len() (row u: q_u·e_x of every item x), over the first upto
// values; one matrix product per tier against the states' prefixes.
func (t *tiers) dotsBatch(qs []float32, nu, dim, upto int, out []float32, buf *[]float32) {
	n := t.len()
	for tr, w := range t.widths {
		nt := len(t.items[tr])
		if nt == 0 {
			continue
		}
		w := min(w, upto)
		c := grow(buf, nu*nt)
		blas32.Gemm(blas.NoTrans, blas.Trans, 1,
			blas32.General{Rows: nu, Cols: w, Stride: dim, Data: qs},
			blas32.General{Rows: nt, Cols: w, Stride: t.widths[tr], Data: t.data[tr]},
			0, blas32.General{Rows: nu, Cols: nt, Stride: nt, Data: c})
		for u := range nu {
			row, dst := c[u*nt:(u+1)*nt], out[u*n:(u+1)*n]
			for s, x := range t.items[tr] {
				dst[x] = row[s]
			}
		}
	}
}
