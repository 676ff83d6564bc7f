package model

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/adaptrec/adaptrec/pipeline/feedback"
)

// PopularityConfig configures Popularity.
type PopularityConfig struct {
	// HalfLife is how much event time halves an interaction's weight.
	HalfLife time.Duration
	// TopN is the length of each list.
	TopN int
	// MaxUsers bounds the users whose consumed items are remembered; the
	// least recently seen are forgotten first.
	MaxUsers int
}

// Popularity recommends the items with the most recency-weighted
// interactions, minus the items the user already consumed. It is the simple
// strong baseline every learned model must beat.
type Popularity struct {
	cfg   PopularityConfig
	items *Vocab
	// score[i] is item i's decayed weight, scaled by exp(k·refMicros):
	// adding exp(k·(t-ref)) per event avoids touching every item per event.
	score     []float64
	refMicros int64
	started   bool
	k         float64 // ln 2 / half-life, per microsecond
	users     *LRU[string, map[int32]struct{}]
	batches   int64
	dirty     map[string]int
	order     []dirtyUser
	top       itemHeap
}

type dirtyUser struct {
	user, session string
	partition     int32
	offset        int64
	consumed      map[int32]struct{}
}

// NewPopularity returns an empty popularity recommender.
func NewPopularity(cfg PopularityConfig) *Popularity {
	if cfg.TopN <= 0 {
		cfg.TopN = 10
	}
	if cfg.HalfLife <= 0 {
		cfg.HalfLife = 7 * 24 * time.Hour
	}
	if cfg.MaxUsers <= 0 {
		cfg.MaxUsers = 1 << 20
	}
	return &Popularity{
		cfg:   cfg,
		items: NewVocab(),
		k:     math.Ln2 / float64(cfg.HalfLife.Microseconds()),
		users: NewLRU[string, map[int32]struct{}](cfg.MaxUsers),
		dirty: map[string]int{},
	}
}

// Name implements Recommender.
func (p *Popularity) Name() string { return "popularity" }

// Params implements Recommender: popularity learns counts, not parameters.
func (p *Popularity) Params() int { return 0 }

// Users is the number of users whose consumed items are remembered.
func (p *Popularity) Users() int { return p.users.Len() }

// Learn implements Recommender.
func (p *Popularity) Learn(ctx context.Context, b *feedback.Batch) ([]Recommendation, error) {
	clear(p.dirty)
	p.order = p.order[:0]
	for i := range b.Len() {
		p.observe(b, i)
	}
	p.batches++
	if len(p.order) == 0 {
		return nil, ctx.Err()
	}
	return p.lists(), ctx.Err()
}

func (p *Popularity) observe(b *feedback.Batch, i int) {
	item := p.items.Add(b.ItemID(i))
	if int(item) >= len(p.score) {
		p.score = append(p.score, 0)
	}
	t := b.TSMicros(i)
	if !p.started {
		p.refMicros, p.started = t, true
	}
	x := p.k * float64(t-p.refMicros)
	if x > 50 {
		// Rebase before the weights overflow: scale every score to the new reference.
		f := math.Exp(-x)
		for j := range p.score {
			p.score[j] *= f
		}
		p.refMicros, x = t, 0
	}
	p.score[item] += math.Exp(x)

	user := b.UserID(i)
	consumed, ok := p.users.Get(user)
	if !ok {
		user = strings.Clone(user)
		consumed = map[int32]struct{}{}
		p.users.Put(user, consumed)
	}
	consumed[item] = struct{}{}
	d := dirtyUser{user: user, session: b.SessionID(i), partition: b.Partition(i), offset: b.Offset(i), consumed: consumed}
	if j, ok := p.dirty[user]; ok {
		d.user = p.order[j].user
		p.order[j] = d
	} else {
		p.dirty[user] = len(p.order)
		p.order = append(p.order, d)
	}
}

// lists ranks once for the whole batch: the top TopN+max(consumed) items
// by score contain every dirty user's list.
func (p *Popularity) lists() []Recommendation {
	need := p.cfg.TopN
	for _, d := range p.order {
		need = max(need, p.cfg.TopN+len(d.consumed))
	}
	ranked := p.topItems(min(need, len(p.score)))
	version := fmt.Sprintf("popularity-%d", p.batches)
	now := time.Now().UTC()
	out := make([]Recommendation, 0, len(p.order))
	for _, d := range p.order {
		r := Recommendation{
			UserID: d.user, SessionID: strings.Clone(d.session), Partition: d.partition, Offset: d.offset,
			ModelVersion: version, TS: now, Items: make([]Item, 0, p.cfg.TopN),
		}
		for _, it := range ranked {
			if _, seen := d.consumed[it]; seen {
				continue
			}
			r.Items = append(r.Items, Item{ItemID: p.items.ID(it), Score: p.score[it], Propensity: 1})
			if len(r.Items) == p.cfg.TopN {
				break
			}
		}
		out = append(out, r)
	}
	return out
}

// topItems returns the n highest-scoring items, best first; ties go to the
// lower index so results are deterministic.
func (p *Popularity) topItems(n int) []int32 {
	if n <= 0 {
		return nil
	}
	h := &p.top
	h.items, h.score = h.items[:0], p.score
	for i := range p.score {
		it := int32(i)
		if h.Len() < n {
			heap.Push(h, it)
		} else if h.less(h.items[0], it) {
			h.items[0] = it
			heap.Fix(h, 0)
		}
	}
	out := make([]int32, h.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(h).(int32)
	}
	return out
}

// itemHeap is a min-heap of items by (score, -index): its root is the worst
// of the best n.
type itemHeap struct {
	items []int32
	score []float64
}

func (h *itemHeap) less(a, b int32) bool {
	if h.score[a] != h.score[b] {
		return h.score[a] < h.score[b]
	}
	return a > b
}
func (h *itemHeap) Len() int           { return len(h.items) }
func (h *itemHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *itemHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *itemHeap) Push(x any)         { h.items = append(h.items, x.(int32)) }
func (h *itemHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
