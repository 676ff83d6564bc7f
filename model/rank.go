package model

import (
	"container/heap"
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
	if t := o.score[target]; t != t {
		return limit
	}
	r := 0
	for j := range int32(len(o.score)) {
		if j == target || !o.better(j, target) {
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

// top returns the n best items not in exclude, best first.
func (o order) top(n int, exclude map[int32]struct{}, h *minHeap) []int32 {
	h.items, h.o = h.items[:0], o
	excluded := func(j int32) bool {
		_, ex := exclude[j]
		return ex
	}
	for j := range int32(len(o.score)) {
		// Compare first: most items lose to the heap's root, and the
		// comparison is cheaper than the exclusion lookup.
		if h.Len() < n {
			if !excluded(j) {
				heap.Push(h, j)
			}
		} else if n > 0 && o.better(j, h.items[0]) && !excluded(j) {
			h.items[0] = j
			heap.Fix(h, 0)
		}
	}
	out := make([]int32, h.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(h).(int32)
	}
	return out
}

// minHeap keeps the worst of the best n at its root.
type minHeap struct {
	items []int32
	o     order
}

// Len implements heap.Interface.
func (h *minHeap) Len() int { return len(h.items) }

// Less implements heap.Interface: the worse item first.
func (h *minHeap) Less(i, j int) bool { return h.o.better(h.items[j], h.items[i]) }

// Swap implements heap.Interface.
func (h *minHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }

// Push implements heap.Interface.
func (h *minHeap) Push(x any) { h.items = append(h.items, x.(int32)) }

// Pop implements heap.Interface.
func (h *minHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
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
