package model

import (
	"strings"

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
}

// UserStore bounds the users a model remembers: at most max users (the
// least recently seen are evicted first) and none idle for longer than ttl
// of event time, as an EventClock measures it (so that no single event can
// evict the others). Not safe for concurrent use.
type UserStore struct {
	lru       *LRU[string, *UserState]
	ttl       int64
	recentLen int
	clock     EventClock
	evicted   int64
}

// NewUserStore returns an empty store. ttl is in microseconds of event time
// (0: no TTL); recentLen is how many recent items each user keeps.
func NewUserStore(max int, ttlMicros int64, recentLen int) *UserStore {
	s := &UserStore{lru: NewLRU[string, *UserState](max), ttl: ttlMicros, recentLen: recentLen}
	s.lru.OnEvict = func(string, *UserState) { s.evicted++ }
	return s
}

// Get returns the state of user id, creating it if new, marks it seen at
// event time ts, and evicts users idle past the TTL. id may alias a
// transient buffer; it is copied before being kept.
func (s *UserStore) Get(id string, ts int64) *UserState {
	s.clock.Observe(ts)
	u, ok := s.lru.Get(id)
	if !ok {
		u = &UserState{ID: strings.Clone(id), Consumed: map[int32]struct{}{}}
		s.lru.Put(u.ID, u)
	}
	u.LastTS = max(u.LastTS, ts)
	s.expire()
	return u
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
