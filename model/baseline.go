package model

import (
	"context"
	"fmt"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// scorer is what sets one count-based baseline apart from another
// (itemknn, sr, sknn): how it learns an event and scores a user's candidates. The
// baseline around it owns the vocabulary, the users, the lists and the
// probe.
type scorer interface {
	// learn records that u consumed x; u.Recent does not hold x yet, and
	// u.Session is the event's session.
	learn(x int32, u *UserState)
	// score fills out, one entry per known item, with u's candidate
	// scores.
	score(u *UserState, out []float64)
	// params is the number of counts kept.
	params() int
}

// baseline is a count-based recommender built around a scorer: events are
// learned one at a time, in order; a user's list is the scorer's top
// items minus the user's consumed ones, ties broken by interactions.
type baseline struct {
	name    string
	topN    int
	s       scorer
	items   *Vocab
	users   *UserStore
	count   []float64 // interactions per item
	scores  []float64
	batches int64
	batch   touched
	heap    minHeap
}

// Name implements Recommender.
func (m *baseline) Name() string { return m.name }

// Params implements Recommender: the counts the scorer keeps.
func (m *baseline) Params() int { return m.s.params() }

// SessionsClosed implements SessionCounter.
func (m *baseline) SessionsClosed() int64 { return m.users.SessionsClosed() }

// Learn implements Recommender.
func (m *baseline) Learn(ctx context.Context, b *feedback.Batch) ([]Recommendation, error) {
	return m.LearnProbed(ctx, b, nil)
}

// LearnProbed implements Probed.
func (m *baseline) LearnProbed(ctx context.Context, b *feedback.Batch, probe Probe) ([]Recommendation, error) {
	m.batch.reset()
	for i := range b.Len() {
		u := m.users.Get(b.UserID(i), b.TSMicros(i))
		if probe != nil {
			probeEvent(probe, b, i, m.items, u, func(item int32) int {
				m.fill(u)
				return order{score: m.scores, tie: m.count}.rank(item, u.Consumed)
			})
		}
		x := m.items.Add(b.ItemID(i))
		for int(x) >= len(m.count) {
			m.count = append(m.count, 0)
		}
		m.count[x]++
		m.users.note(u, b, i) // closes u's previous session first, if this one is new
		m.s.learn(x, u)
		m.users.Consume(u, x, b.Type(i))
		m.batch.add(u)
	}
	m.batches++
	recs := m.lists()
	m.users.Compact()
	return recs, ctx.Err()
}

// fill fills m.scores with u's candidate scores.
func (m *baseline) fill(u *UserState) {
	m.scores = grow(&m.scores, len(m.count))
	m.s.score(u, m.scores)
}

// lists are the lists of the users of the batch.
func (m *baseline) lists() []Recommendation {
	version := fmt.Sprintf("%s-%d", m.name, m.batches)
	now := time.Now().UTC()
	out := make([]Recommendation, 0, len(m.batch.order))
	for _, u := range m.batch.order {
		m.fill(u)
		top := order{score: m.scores, tie: m.count}.top(m.topN, u.Consumed, &m.heap)
		r := Recommendation{
			UserID: u.ID, SessionID: u.Session, Partition: u.Partition, Offset: u.Offset,
			ModelVersion: version, TS: now, Items: make([]Item, 0, len(top)),
		}
		for _, it := range top {
			r.Items = append(r.Items, Item{ItemID: m.items.ID(it), Score: m.scores[it], Propensity: 1})
		}
		out = append(out, r)
	}
	return out
}
