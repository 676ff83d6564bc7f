package model

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// UserState is what a model remembers of one user: the items consumed (so
// they are not recommended again), the most recent ones (the session
// context), and where the user's last event was read.
type UserState struct {
	ID       string
	Consumed map[int32]struct{}
	// Recent holds the user's last items, oldest first, at most the store's
	// recent length.
	Recent []int32
	// RecentTypes are the feedback types of Recent, in the same order.
	RecentTypes []feedback.Type
	LastTS      int64 // event time of the last event, Unix microseconds
	Session     string
	Partition   int32
	Offset      int64
	// open is set by the user's first event after a close: the session
	// has events and has not closed yet.
	open bool
	// arm is the width the session's lists are scored at, chosen as it
	// started in context wctx (slim.go).
	arm, wctx uint8
}

// UserStore bounds the users a model remembers: at most max users (the
// least recently seen are evicted first) and none idle for longer than ttl
// of event time, as an EventClock measures it (so that no single event can
// evict the others). It also closes sessions: a user's session closes
// when its session id changes, when the user is evicted, and after the
// idle gap without an event of the user (SetIdleGap), by the same clock,
// so that streams where every session is a new user close theirs too.
// Not safe for concurrent use, but for SessionsClosed.
type UserStore struct {
	lru       *LRU[string, *UserState]
	ttl       int64
	recentLen int
	clock     EventClock
	evicted   int64
	// open holds the users whose session is open, least recently seen
	// last; idleGap closes them (0: only on a change or an eviction).
	open    *LRU[*UserState, struct{}]
	idleGap int64
	closed  atomic.Int64
	// OnClose, if set, is called with each user whose session closes.
	OnClose func(*UserState)
}

// NewUserStore returns an empty store. ttl is in microseconds of event time
// (0: no TTL); recentLen is how many recent items each user keeps.
func NewUserStore(max int, ttlMicros int64, recentLen int) *UserStore {
	s := &UserStore{lru: NewLRU[string, *UserState](max), ttl: ttlMicros, recentLen: recentLen,
		open: NewLRU[*UserState, struct{}](max)}
	s.lru.OnEvict = func(_ string, u *UserState) {
		s.evicted++
		s.closeSession(u)
	}
	return s
}

// newUsers is NewUserStore of the bounds of a model's config, closing
// sessions after idleGap.
func newUsers(maxUsers int, ttl, idleGap time.Duration, recentLen int) *UserStore {
	s := NewUserStore(maxUsers, ttl.Microseconds(), recentLen)
	s.SetIdleGap(idleGap.Microseconds())
	return s
}

// SetIdleGap makes sessions close after gap microseconds of event time
// without an event of their user (0: never by time).
func (s *UserStore) SetIdleGap(gapMicros int64) { s.idleGap = gapMicros }

// Get returns the state of user id, creating it if new, marks it seen at
// event time ts, closes the sessions idle past the idle gap and evicts
// users idle past the TTL. id may alias a transient buffer; it is copied
// before being kept.
func (s *UserStore) Get(id string, ts int64) *UserState {
	u, _ := s.getLast(id, ts)
	return u
}

// getLast is Get, also returning the event time of the user's last event
// before this one (0 for a new user).
func (s *UserStore) getLast(id string, ts int64) (u *UserState, last int64) {
	s.clock.Observe(ts)
	s.closeIdle()
	u, ok := s.lru.Get(id)
	if !ok {
		u = &UserState{ID: strings.Clone(id), Consumed: map[int32]struct{}{}}
		s.lru.Put(u.ID, u)
	}
	last = u.LastTS
	if s.idleGap > 0 && ts-u.LastTS > s.idleGap {
		s.closeSession(u) // its own event comes after the gap, before the clock did
	}
	u.LastTS = max(u.LastTS, ts)
	s.expire()
	return u, last
}

// Lookup returns the state of user id without creating or touching it.
func (s *UserStore) Lookup(id string) (*UserState, bool) {
	return s.lru.Peek(id)
}

// Consume records that u consumed item with feedback typ: it is excluded
// from u's lists and becomes u's most recent item.
func (s *UserStore) Consume(u *UserState, item int32, typ feedback.Type) {
	u.Consumed[item] = struct{}{}
	if s.recentLen == 0 {
		return
	}
	if len(u.Recent) == s.recentLen {
		copy(u.Recent, u.Recent[1:])
		u.Recent = u.Recent[:len(u.Recent)-1]
		copy(u.RecentTypes, u.RecentTypes[1:])
		u.RecentTypes = u.RecentTypes[:len(u.RecentTypes)-1]
	}
	u.Recent = append(u.Recent, item)
	u.RecentTypes = append(u.RecentTypes, typ)
}

func (s *UserStore) expire() {
	if s.ttl <= 0 {
		return
	}
	for {
		k, u, ok := s.lru.Oldest()
		if !ok || s.clock.Now()-u.LastTS <= s.ttl {
			return
		}
		s.lru.Remove(k)
	}
}

// closeIdle closes the open sessions whose user has been idle past the
// idle gap, least recently seen first.
func (s *UserStore) closeIdle() {
	if s.idleGap <= 0 {
		return
	}
	for {
		u, _, ok := s.open.Oldest()
		if !ok || s.clock.Now()-u.LastTS <= s.idleGap {
			return
		}
		s.closeSession(u)
	}
}

// closeSession closes u's session if it is open.
func (s *UserStore) closeSession(u *UserState) {
	if !u.open {
		return
	}
	u.open = false
	s.open.Remove(u)
	s.closed.Add(1)
	if s.OnClose != nil {
		s.OnClose(u)
	}
}

// note records event i of b on its user u: its session (closing the
// previous one if the id changed; the session is open from now on) and
// its location.
func (s *UserStore) note(u *UserState, b *feedback.Batch, i int) {
	if sid := b.SessionID(i); sid != u.Session {
		if u.Session != "" {
			s.closeSession(u)
		}
		u.Session = string([]byte(sid))
	}
	u.open = true
	s.open.Put(u, struct{}{})
	u.Partition, u.Offset = b.Partition(i), b.Offset(i)
}

// SessionsClosed is the number of sessions closed so far. Unlike the
// other methods it is safe to call from any goroutine (metrics read it).
func (s *UserStore) SessionsClosed() int64 { return s.closed.Load() }

// Clock is the event time eviction is measured by, Unix microseconds.
func (s *UserStore) Clock() int64 { return s.clock.Now() }

// Len is the number of users remembered.
func (s *UserStore) Len() int { return s.lru.Len() }

// each calls f for every user, least recently seen first.
func (s *UserStore) each(f func(*UserState)) {
	s.lru.Each(func(_ string, u *UserState) { f(u) })
}

// Evicted is the number of users forgotten so far.
func (s *UserStore) Evicted() int64 { return s.evicted }
