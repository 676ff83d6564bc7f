package model

import (
	"math"
	"strings"
	"sync/atomic"

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
	// seq orders users by their last event, across a store's full and
	// compact users.
	seq uint64
}

// UserStore bounds the users a model remembers: at most max users (the
// least recently seen are evicted first) and none idle for longer than ttl
// of event time, as an EventClock measures it (so that no single event can
// evict the others). It also closes sessions: a user's session closes
// when its session id changes, when the user is evicted, and after the
// idle gap without an event of the user (SetIdleGap), by the same clock,
// so that streams where every session is a new user close theirs too.
// With compact users (SetCompact), a user with one event so far is kept as
// a compact record (liteusers.go) from the end of its batch to its second
// event; SetMaxNew bounds how many of them are kept, so that a user is
// admitted to memory by its second event. Not safe for concurrent use, but
// for SessionsClosed.
type UserStore struct {
	lru       *LRU[string, *UserState]
	max       int
	seq       uint64
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
	// OnEvict, if set, is called at each user forgotten (Evicted counts
	// them too).
	OnEvict func()
	// lite holds the compact users (nil: none are kept compact); fresh
	// the users made since the last Compact.
	lite  *liteUsers
	fresh []*UserState
	// keep, if set, tells Compact to keep a user in full.
	keep func(*UserState) bool
	// maxNew bounds the compact users (0: only max does).
	maxNew int
}

// NewUserStore returns an empty store. ttl is in microseconds of event time
// (0: no TTL); recentLen is how many recent items each user keeps.
func NewUserStore(maxUsers int, ttlMicros int64, recentLen int) *UserStore {
	// The store bounds its users itself (bound), across full and compact.
	s := &UserStore{lru: NewLRU[string, *UserState](math.MaxInt), max: max(maxUsers, 1), ttl: ttlMicros, recentLen: recentLen,
		open: NewLRU[*UserState, struct{}](math.MaxInt)}
	s.lru.OnEvict = func(_ string, u *UserState) {
		s.countEvicted()
		s.closeSession(u)
	}
	return s
}

// newUsers is NewUserStore of the bounds of a model's config, closing
// sessions after its idle gap, its users compact if it says so but those
// keep names (SetCompact).
func newUsers(sh Shared, recentLen int, keep func(*UserState) bool) *UserStore {
	s := NewUserStore(sh.MaxUsers, sh.UserTTL.Microseconds(), recentLen)
	s.SetIdleGap(sh.IdleGap.Microseconds())
	s.SetCompact(sh.CompactUsers, keep)
	s.SetMaxNew(sh.MaxNewUsers)
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
	s.seq++
	u, ok := s.lru.Get(id)
	if !ok {
		if i := s.lite.lookup(id); i >= 0 {
			l := s.lite.remove(i)
			u = l.state()
		} else {
			u = &UserState{ID: strings.Clone(id), Consumed: map[int32]struct{}{}}
			if s.lite != nil {
				s.fresh = append(s.fresh, u)
			}
		}
	}
	u.seq = s.seq
	if !ok {
		s.lru.Put(u.ID, u)
		if u.open {
			s.open.Put(u, struct{}{})
		}
		s.bound()
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
// A compact user's is a copy: changing it changes nothing.
func (s *UserStore) Lookup(id string) (*UserState, bool) {
	if u, ok := s.lru.Peek(id); ok {
		return u, true
	}
	if i := s.lite.lookup(id); i >= 0 {
		return s.lite.nodes[i].state(), true
	}
	return nil, false
}

// SetCompact keeps users with one event compact (or not) from the next
// Compact on; keep, if not nil, names users to keep in full all the same.
// Only a store with no compact users can turn it off.
func (s *UserStore) SetCompact(on bool, keep func(*UserState) bool) {
	switch {
	case on && s.lite == nil:
		s.lite = newLiteUsers()
	case !on && s.lite.len() == 0:
		s.lite = nil
	}
	s.keep = keep
}

// SetMaxNew keeps at most n compact users (0: as many as the store's
// bound), forgetting the least recently seen of them first, as an eviction
// does (their sessions close). A user is then remembered past its first
// event only if its second comes before n other users' first events, as
// Monolith admits an embedding row only once it is seen again: a stream
// of users who never come back costs n compact records, not one each.
// It takes effect from the next Compact.
func (s *UserStore) SetMaxNew(n int) { s.maxNew = n }

// Compact turns the users made since the last Compact that still have
// one event into compact records, in the order of their events. Models
// call it once their batch is done with its users' states.
func (s *UserStore) Compact() {
	if s.lite == nil {
		return
	}
	for _, u := range s.fresh {
		if cur, ok := s.lru.Peek(u.ID); !ok || cur != u || !isLite(u) || (s.keep != nil && s.keep(u)) {
			continue
		}
		s.lru.Take(u.ID)
		if u.open {
			s.open.Take(u)
		}
		s.lite.add(liteOf(u))
	}
	clear(s.fresh)
	s.fresh = s.fresh[:0]
	for s.maxNew > 0 && s.lite.len() > s.maxNew {
		s.evictLite(s.lite.oldestNode())
	}
}

// Compacted is the number of users kept compact.
func (s *UserStore) Compacted() int { return s.lite.len() }

// bound evicts the least recently seen users past the store's bound.
func (s *UserStore) bound() {
	for s.Len() > s.max {
		s.evictOldest(false)
	}
}

// evictOldest evicts the least recently seen user, full or compact (with
// idle, only if it is idle past the TTL); it reports whether it did.
func (s *UserStore) evictOldest(idle bool) bool {
	k, u, full := s.lru.Oldest()
	li := s.lite.oldestNode()
	if full && (li < 0 || u.seq < s.lite.nodes[li].seq) {
		if idle && s.clock.Now()-u.LastTS <= s.ttl {
			return false
		}
		s.lru.Remove(k)
		return true
	}
	if li < 0 || idle && s.clock.Now()-s.lite.nodes[li].ts <= s.ttl {
		return false
	}
	s.evictLite(li)
	return true
}

// evictLite evicts the compact user of node li.
func (s *UserStore) evictLite(li int32) {
	l := s.lite.remove(li)
	s.countEvicted()
	if l.flags&liteOpen != 0 {
		s.closeLite(&l)
	}
}

// closeLite counts the close of a compact user's session.
func (s *UserStore) closeLite(l *liteUser) {
	l.flags &^= liteOpen
	s.closed.Add(1)
	if s.OnClose != nil {
		s.OnClose(l.state())
	}
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
	for s.evictOldest(true) {
	}
}

// closeIdle closes the open sessions whose user has been idle past the
// idle gap, least recently seen first.
func (s *UserStore) closeIdle() {
	if s.idleGap <= 0 {
		return
	}
	for {
		u, _, full := s.open.Oldest()
		li := s.lite.oldestOpen()
		if full && (li < 0 || u.seq < s.lite.nodes[li].seq) {
			if s.clock.Now()-u.LastTS <= s.idleGap {
				return
			}
			s.closeSession(u)
			continue
		}
		if li < 0 || s.clock.Now()-s.lite.nodes[li].ts <= s.idleGap {
			return
		}
		s.closeLite(&s.lite.nodes[li])
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
func (s *UserStore) Len() int { return s.lru.Len() + s.lite.len() }

// each calls f for every user, least recently seen first. A compact
// user's state is a copy, valid only until f returns (one is reused for
// them all: a snapshot of a million users allocates none).
func (s *UserStore) each(f func(*UserState)) {
	li := s.lite.oldestNode()
	scratch := &UserState{Consumed: map[int32]struct{}{}}
	lite := func() {
		s.lite.nodes[li].into(scratch)
		f(scratch)
	}
	s.lru.Each(func(_ string, u *UserState) {
		for ; li >= 0 && s.lite.nodes[li].seq < u.seq; li = s.lite.nodes[li].newer {
			lite()
		}
		f(u)
	})
	for ; li >= 0; li = s.lite.nodes[li].newer {
		lite()
	}
}

// countEvicted counts a user forgotten.
func (s *UserStore) countEvicted() {
	s.evicted++
	if s.OnEvict != nil {
		s.OnEvict()
	}
}

// Evicted is the number of users forgotten so far.
func (s *UserStore) Evicted() int64 { return s.evicted }
