package model

import (
	"context"
	"math"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// Probe observes a model as the evaluation harness sees it: for event i of
// a batch, just before the model learns it, rank computes the 0-based rank
// of the event's item among the items the model knows and the user has not
// consumed, by the model's scores at that moment. ok is false (and rank nil)
// when the item is new to the model or the user consumed it before; such
// events are not scored. rank is only valid during the call; it is a
// function so the harness can time ranking apart from learning.
type Probe func(i int, ok bool, rank func() int)

// Probed is a Recommender the evaluation harness can score event by event.
// Learn(ctx, b) must equal LearnProbed(ctx, b, nil).
type Probed interface {
	Recommender
	LearnProbed(ctx context.Context, b *feedback.Batch, probe Probe) ([]Recommendation, error)
}

// probeEvent calls probe for event i of b, whose user is u: with ok and
// rank(item) if items knows its item and u has not consumed it.
func probeEvent(probe Probe, b *feedback.Batch, i int, items *Vocab, u *UserState, rank func(item int32) int) {
	item, known := items.Lookup(b.ItemID(i))
	if _, seen := u.Consumed[item]; !known || seen {
		probe(i, false, nil)
		return
	}
	probe(i, true, func() int { return rank(item) })
}

// order ranks items by score, then by a tie-break key (higher first; may be
// nil), then by lower index, so rankings and lists are deterministic.
type order struct {
	score []float64
	tie   []float64
}

func (o order) better(a, b int32) bool {
	sa, sb := o.score[a], o.score[b]
	if sa != sb {
		// NaN ranks last, so a diverged model cannot score hits.
		if sa != sa {
			return false
		}
		if sb != sb {
			return true
		}
		return sa > sb
	}
	if o.tie != nil && o.tie[a] != o.tie[b] {
		return o.tie[a] > o.tie[b]
	}
	return a < b
}

// rank is the number of items ranked above target, not counting excluded.
func (o order) rank(target int32, exclude map[int32]struct{}) int {
	if t := o.score[target]; t != t {
		return len(o.score) // a NaN score is never a hit
	}
	return o.rankUpTo(target, exclude, math.MaxInt)
}

// rankUpTo is rank, counting no further than limit.
func (o order) rankUpTo(target int32, exclude map[int32]struct{}, limit int) int {
	t := o.score[target]
	if t != t {
		return limit
	}
	r := 0
	score := o.score
	for j := range int32(len(score)) {
		// s < t is false when s is NaN, which better then orders. Most
		// items score below the target: the comparison passes them over
		// without better's calls.
		if s := score[j]; s < t || j == target || !o.better(j, target) {
			continue
		}
		if _, ex := exclude[j]; ex {
			continue
		}
		if r++; r >= limit {
			return limit
		}
	}
	return r
}

// top returns the n best items not in exclude, best first. The heap is
// hand-written (container/heap's interface calls cost twice its sifts),
// and an item scored below the root is passed over on its score alone.
// Items are scanned newest first: the recent ones score high (recency
// popularity, fresh co-occurrence), so the heap fills with good items
// early and few later ones displace its root. The result does not depend
// on the order of the scan: the order of items is total.
func (o order) top(n int, exclude map[int32]struct{}, h *minHeap) []int32 {
	h.items, h.o = h.items[:0], o
	excluded := func(j int32) bool {
		_, ex := exclude[j]
		return ex
	}
	score := o.score
	j := int32(len(score)) - 1
	for ; j >= 0 && len(h.items) < n; j-- {
		if !excluded(j) {
			h.push(j)
		}
	}
	if len(h.items) == n && n > 0 {
		root := score[h.items[0]] // the score of the heap's worst item
		for ; j >= 0; j-- {
			// s < root is false when either is NaN, which better then
			// orders. Compare first: most items lose to the heap's root,
			// and the comparison is cheaper than the exclusion lookup.
			if s := score[j]; s < root || !o.better(j, h.items[0]) || excluded(j) {
				continue
			}
			h.items[0] = j
			h.down(0)
			root = score[h.items[0]]
		}
	}
	out := make([]int32, len(h.items))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = h.pop()
	}
	return out
}

// minHeap keeps the worst of the best n at its root.
type minHeap struct {
	items []int32
	o     order
}

// less orders the heap: the worse item first.
func (h *minHeap) less(i, j int) bool { return h.o.better(h.items[j], h.items[i]) }

// push adds x.
func (h *minHeap) push(x int32) {
	h.items = append(h.items, x)
	for i := len(h.items) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		h.items[i], h.items[parent] = h.items[parent], h.items[i]
		i = parent
	}
}

// down sifts the item at i down to its place.
func (h *minHeap) down(i int) {
	n := len(h.items)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && h.less(r, c) {
			c = r
		}
		if !h.less(c, i) {
			return
		}
		h.items[i], h.items[c] = h.items[c], h.items[i]
		i = c
	}
}

// pop removes and returns the worst item.
func (h *minHeap) pop() int32 {
	x := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	h.down(0)
	return x
}

// touched collects the users of a batch in order of first appearance.
type touched struct {
	order []*UserState
	seen  map[*UserState]struct{}
}

func (t *touched) reset() {
	t.order = t.order[:0]
	if t.seen == nil {
		t.seen = map[*UserState]struct{}{}
	}
	clear(t.seen)
}

func (t *touched) add(u *UserState) {
	if _, ok := t.seen[u]; !ok {
		t.seen[u] = struct{}{}
		t.order = append(t.order, u)
	}
}
