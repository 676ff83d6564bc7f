package model

import (
	"cmp"
	"math"
	"slices"
)

// SKNNConfig configures SKNN.
type SKNNConfig struct {
	// Window is how many of the user's recent items make the query session.
	Window int
	// Neighbours is how many of the most similar candidate sessions score
	// (k), Sample how many of the most recently updated sessions sharing
	// an item with the query are candidates (M).
	Neighbours int
	Sample     int
	// MaxSessions bounds the sessions kept, the oldest forgotten first.
	MaxSessions int
	Shared
}

// SKNN is session-based kNN (Jannach and Ludewig, "When recurrent neural
// networks meet the neighborhood for session-based recommendation", 2017),
// learned online. Every session's items are kept (at most MaxSessions
// sessions, the oldest forgotten first), with an index from each item to
// the sessions that hold it, most recent last. A user's query is the set
// of the user's last Window items; its candidates are the Sample most
// recently updated sessions that share an item with it (the user's own
// open session aside), its neighbours the Neighbours most similar of them
// by the cosine of binary item sets, |q ∩ n| / √(|q|·|n|), and an item
// scores Σ sim(q, n) over the neighbours n that hold it. Ties (no
// neighbour) fall back to popularity.
type SKNN struct {
	baseline
	cfg      SKNNConfig
	sessions []storedSession      // ring: session id s sits at s % MaxSessions
	open     map[*UserState]int64 // the session each user's events go to
	next     int64                // the id of the next session
	seq      int64                // events learned: a session's recency
	index    [][]int64            // index[item]: ids of sessions holding it
	stored   int                  // items held by the sessions kept
	// scratch of score
	mark  []int64 // mark[item] == stamp: item in the query
	stamp int64
	seen  map[int64]struct{}
	cands []neighbourSession
}

// storedSession is one session's items, in order of first consumption.
type storedSession struct {
	id    int64 // -1: an empty slot
	items []int32
	last  int64 // seq of its last event
}

// neighbourSession is a candidate session and its similarity to the query.
type neighbourSession struct {
	s   *storedSession
	sim float64
}

// NewSKNN returns an empty SKNN.
func NewSKNN(cfg SKNNConfig) *SKNN {
	m := &SKNN{cfg: cfg, sessions: make([]storedSession, cfg.MaxSessions), open: map[*UserState]int64{}, seen: map[int64]struct{}{}}
	for i := range m.sessions {
		m.sessions[i].id = -1
	}
	// The sessions being stored are keyed by their user's state: such a
	// user stays in full.
	storing := func(u *UserState) bool { _, ok := m.open[u]; return ok }
	m.baseline = baseline{name: "sknn", topN: cfg.TopN, s: m, items: NewVocab(),
		users: newUsers(cfg.Shared, cfg.Window, storing)}
	m.users.OnClose = func(u *UserState) { delete(m.open, u) }
	return m
}

// session returns the kept session of id, or nil if it was forgotten.
func (m *SKNN) session(id int64) *storedSession {
	s := &m.sessions[id%int64(len(m.sessions))]
	if s.id != id {
		return nil
	}
	return s
}

// learn implements scorer: x joins u's open session (a new one if u has
// none, or if it was forgotten).
func (m *SKNN) learn(x int32, u *UserState) {
	m.seq++
	id, ok := m.open[u]
	s := m.session(id)
	if !ok || s == nil {
		id = m.next
		m.next++
		m.open[u] = id
		s = &m.sessions[id%int64(len(m.sessions))]
		m.stored -= len(s.items)
		*s = storedSession{id: id, items: s.items[:0]}
	}
	s.last = m.seq
	if slices.Contains(s.items, x) {
		return
	}
	s.items = append(s.items, x)
	m.stored++
	for int(x) >= len(m.index) {
		m.index = append(m.index, nil)
		m.mark = append(m.mark, 0)
	}
	ix := append(m.index[x], id)
	// Only the Sample most recent are ever read, besides the reader's own.
	if keep := m.cfg.Sample + 1; len(ix) > 2*keep {
		ix = append(ix[:0], ix[len(ix)-keep:]...)
	}
	m.index[x] = ix
}

// score implements scorer.
func (m *SKNN) score(u *UserState, out []float64) {
	clear(out)
	m.stamp++
	q := 0
	for _, it := range u.Recent {
		if m.mark[it] != m.stamp {
			m.mark[it] = m.stamp
			q++
		}
	}
	if q == 0 {
		return
	}
	m.candidates(u)
	for i := range m.cands {
		c := &m.cands[i]
		in := 0
		for _, it := range c.s.items {
			if m.mark[it] == m.stamp {
				in++
			}
		}
		c.sim = float64(in) / math.Sqrt(float64(q*len(c.s.items)))
	}
	slices.SortFunc(m.cands, func(a, b neighbourSession) int {
		return cmp.Or(cmp.Compare(b.sim, a.sim), cmp.Compare(b.s.last, a.s.last))
	})
	for _, c := range m.cands[:min(len(m.cands), m.cfg.Neighbours)] {
		for _, it := range c.s.items {
			out[it] += c.sim
		}
	}
}

// candidates sets m.cands to the Sample most recently updated sessions
// that hold an item of u's query (u.Recent), u's open session aside.
func (m *SKNN) candidates(u *UserState) {
	own, hasOwn := m.open[u]
	clear(m.seen)
	m.cands = m.cands[:0]
	for _, it := range u.Recent {
		ix := m.index[it]
		taken := 0
		for j := len(ix) - 1; j >= 0 && taken < m.cfg.Sample; j-- {
			id := ix[j]
			s := m.session(id)
			if s == nil || (hasOwn && id == own) {
				continue
			}
			taken++
			if _, dup := m.seen[id]; !dup {
				m.seen[id] = struct{}{}
				m.cands = append(m.cands, neighbourSession{s: s})
			}
		}
	}
	if len(m.cands) > m.cfg.Sample {
		slices.SortFunc(m.cands, func(a, b neighbourSession) int { return cmp.Compare(b.s.last, a.s.last) })
		m.cands = m.cands[:m.cfg.Sample]
	}
}

// params implements scorer: the items of the sessions kept plus the item
// counts.
func (m *SKNN) params() int { return m.stored + len(m.count) }
