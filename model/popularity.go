package model

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// PopularityConfig configures Popularity.
type PopularityConfig struct {
	// HalfLife is how much event time halves an interaction's weight.
	HalfLife time.Duration
	Shared
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
	users     *UserStore
	batches   int64
	batch     touched
	heap      minHeap
}

// NewPopularity returns an empty popularity recommender.
func NewPopularity(cfg PopularityConfig) *Popularity {
	return &Popularity{
		cfg:   cfg,
		items: NewVocab(),
		k:     math.Ln2 / float64(cfg.HalfLife.Microseconds()),
		users: newUsers(cfg.Shared, 0, nil),
	}
}

// SessionsClosed implements SessionCounter.
func (p *Popularity) SessionsClosed() int64 { return p.users.SessionsClosed() }

// Name implements Recommender.
func (p *Popularity) Name() string { return "popularity" }

// Params implements Recommender: popularity learns counts, not parameters.
func (p *Popularity) Params() int { return 0 }

// Users is the number of users whose consumed items are remembered.
func (p *Popularity) Users() int { return p.users.Len() }

// Learn implements Recommender.
func (p *Popularity) Learn(ctx context.Context, b *feedback.Batch) ([]Recommendation, error) {
	return p.LearnProbed(ctx, b, nil)
}

// LearnProbed implements Probed.
func (p *Popularity) LearnProbed(ctx context.Context, b *feedback.Batch, probe Probe) ([]Recommendation, error) {
	p.batch.reset()
	for i := range b.Len() {
		u := p.users.Get(b.UserID(i), b.TSMicros(i))
		if probe != nil {
			probeEvent(probe, b, i, p.items, u, func(item int32) int { return order{score: p.score}.rank(item, u.Consumed) })
		}
		p.observe(b, i, u)
	}
	p.batches++
	recs := p.lists()
	p.users.Compact()
	return recs, ctx.Err()
}

func (p *Popularity) observe(b *feedback.Batch, i int, u *UserState) {
	item := p.items.Add(b.ItemID(i))
	if int(item) >= len(p.score) {
		p.score = append(p.score, 0)
	}
	// An event's weight is taken at its time, but at most one half-life
	// past the users' event clock (before that clock has started, past its
	// message's broker timestamp): no single event, however far in the
	// future, outweighs two current ones or decays the other items by more
	// than half.
	t := b.TSMicros(i)
	bound := p.users.Clock()
	if bound == 0 {
		bound = b.KafkaTime(i).UnixMicro()
	}
	if bound > 0 {
		t = min(t, bound+p.cfg.HalfLife.Microseconds())
	}
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
	p.users.Consume(u, item, b.Type(i))
	p.users.note(u, b, i)
	p.batch.add(u)
}

// lists ranks once for the whole batch: the top TopN+max(consumed) items
// by score contain every touched user's list.
func (p *Popularity) lists() []Recommendation {
	if len(p.batch.order) == 0 {
		return nil
	}
	need := p.cfg.TopN
	for _, u := range p.batch.order {
		need = max(need, p.cfg.TopN+len(u.Consumed))
	}
	ranked := order{score: p.score}.top(min(need, len(p.score)), nil, &p.heap)
	version := fmt.Sprintf("popularity-%d", p.batches)
	now := time.Now().UTC()
	out := make([]Recommendation, 0, len(p.batch.order))
	for _, u := range p.batch.order {
		r := Recommendation{
			UserID: u.ID, SessionID: u.Session, Partition: u.Partition, Offset: u.Offset,
			ModelVersion: version, TS: now, Items: make([]Item, 0, p.cfg.TopN),
		}
		for _, it := range ranked {
			if _, seen := u.Consumed[it]; seen {
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
