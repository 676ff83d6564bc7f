// Package synth generates realistic synthetic feedback for the embedded demo
// and for tests: users with a few favourite topics, sessions of clicks,
// views and ratings, items whose popularity within a topic is Zipf
// distributed, and an optional small share of malformed events so the DLQ
// has work. Seeded: the same seed gives the same stream.
package synth

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/sink"
)

// Config shapes the synthetic population.
type Config struct {
	Users             int
	Items             int
	Topics            int     // default 20
	MalformedFraction float64 // share of events that are malformed
	Seed              int64
}

// Generator produces events. Not safe for concurrent use.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	favs    [][]int // user -> favourite topics
	byTopic [][]int // topic -> items, most popular first
	zipf    []*rand.Zipf
	active  []session
	next    int64
}

type session struct {
	user, left int
	id         string
	given      bool
}

// New returns a generator for cfg.
func New(cfg Config) *Generator {
	if cfg.Topics <= 0 {
		cfg.Topics = 20
	}
	cfg.Users, cfg.Items = max(cfg.Users, 1), max(cfg.Items, cfg.Topics)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	g := &Generator{cfg: cfg, rng: rng}
	g.byTopic = make([][]int, cfg.Topics)
	for _, it := range rng.Perm(cfg.Items) {
		t := it % cfg.Topics
		g.byTopic[t] = append(g.byTopic[t], it)
	}
	for t := range g.byTopic {
		g.zipf = append(g.zipf, rand.NewZipf(rand.New(rand.NewPCG(uint64(cfg.Seed)+uint64(t), 7)), 1.1, 2, uint64(len(g.byTopic[t])-1)))
	}
	g.favs = make([][]int, cfg.Users)
	for u := range g.favs {
		for range 1 + rng.IntN(3) {
			g.favs[u] = append(g.favs[u], rng.IntN(cfg.Topics))
		}
	}
	return g
}

// Next returns the next event as its message key and JSON value, stamped at
// now. A malformed event's value fails validation on purpose.
func (g *Generator) Next(now time.Time) (key, value []byte) {
	s := g.session()
	u := s.user
	topic := g.favs[u][g.rng.IntN(len(g.favs[u]))]
	if g.rng.Float64() < 0.2 {
		topic = g.rng.IntN(g.cfg.Topics)
	}
	item := g.byTopic[topic][g.zipf[topic].Uint64()]
	g.next++
	e := feedback.Event{
		EventID: "e-" + strconv.FormatInt(g.next, 10),
		UserID:  "u" + strconv.Itoa(u),
		ItemID:  "i" + strconv.Itoa(item),
		TS:      now.UTC(),
	}
	if s.given {
		e.SessionID = s.id
	}
	switch r := g.rng.Float64(); {
	case r < 0.55:
		e.Type, e.Value, e.HasValue = feedback.View, math.Round(g.rng.ExpFloat64()*30*10)/10, true
	case r < 0.9:
		e.Type = feedback.Click
		if g.rng.Float64() < 0.5 {
			e.Position, e.HasPos, e.RecID = int32(g.rng.IntN(10)), true, "r-"+strconv.Itoa(u)
		}
	default:
		v := math.Round((3.5+g.rng.NormFloat64())*2) / 2
		e.Type, e.Value, e.HasValue = feedback.Rating, min(5, max(0.5, v)), true
	}
	key = []byte(e.UserID)
	if g.rng.Float64() < g.cfg.MalformedFraction {
		return key, g.malformed(e)
	}
	return key, feedback.Encode(e)
}

// session picks the session the next event belongs to: usually one that is
// under way, sometimes a new one.
func (g *Generator) session() *session {
	if len(g.active) == 0 || (len(g.active) < 200 && g.rng.Float64() < 0.1) {
		u := g.rng.IntN(g.cfg.Users)
		g.active = append(g.active, session{
			user: u, left: 1 + int(g.rng.ExpFloat64()*12),
			id: fmt.Sprintf("s-%d-%d", u, g.next), given: g.rng.Float64() < 0.5,
		})
	}
	i := g.rng.IntN(len(g.active))
	s := &g.active[i]
	s.left--
	if s.left <= 0 {
		// Last event of the session: swap it out, returning a copy.
		cp := *s
		g.active[i] = g.active[len(g.active)-1]
		g.active = g.active[:len(g.active)-1]
		return &cp
	}
	return s
}

func (g *Generator) malformed(e feedback.Event) []byte {
	switch g.rng.IntN(5) {
	case 0:
		return []byte(`{"user_id":"` + e.UserID + `","item_id":`) // truncated JSON
	case 1:
		e.UserID = ""
		return feedback.Encode(e) // missing user_id
	case 2:
		return []byte(`{"user_id":"` + e.UserID + `","item_id":"` + e.ItemID + `","type":"purchase","ts":"` + e.TS.Format(time.RFC3339) + `"}`)
	case 3:
		e.Type, e.Value, e.HasValue = feedback.Rating, 11, true
		return feedback.Encode(e) // rating out of range
	default:
		return []byte(`{"user_id":"` + e.UserID + `","item_id":"` + e.ItemID + `","type":"click","ts":"last tuesday"}`)
	}
}

// Run produces events to out at rate events per second until ctx ends,
// counting them in sent (may be nil).
func Run(ctx context.Context, out sink.Sink, g *Generator, rate float64, sent func(int)) error {
	const tick = 20 * time.Millisecond
	per := rate * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	carry := 0.0
	msgs := make([]kafka.Message, 0, int(per)+1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		carry += per
		n := int(carry)
		carry -= float64(n)
		msgs = msgs[:0]
		now := time.Now()
		for range n {
			k, v := g.Next(now)
			msgs = append(msgs, kafka.Message{Key: k, Value: v, Time: now})
		}
		if err := out.Publish(ctx, msgs...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("synthetic source: %w", err)
		}
		if sent != nil {
			sent(n)
		}
	}
}
