package model

import (
	"strconv"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// SessionName is the name of a session derived from the idle gap: its
// user and the Unix second of its first event ("USER@START"), so that a
// replay derives the same names.
func SessionName(user string, start time.Time) string {
	return user + "@" + strconv.FormatInt(start.Unix(), 10)
}

// A user with one event so far is, in a store with compact users, a
// liteUser: the event's item, type, time and location and the session's
// flags, in one record of a slice (about 80 bytes, no map of its own, no
// list element, its session's name not kept when it is the derived one).
// The user's second event turns it back into a UserState, equal to the
// one it was made from. Most users of a click log never have a second
// event, so this is where their memory goes.
type liteUser struct {
	id, session string // session is "" when derived (liteDerived)
	ts, offset  int64
	seq         uint64
	item, part  int32 // item is -1 when nothing was consumed
	typ         feedback.Type
	flags       uint8
	arm, wctx   uint8
	link
}

func (l *liteUser) links() *link { return &l.link }

const (
	liteOpen    = 1 << iota // the session is open
	liteRecent              // item is also the user's one recent item
	liteDerived             // the session is SessionName(id, ts)
)

// liteUsers holds the compact users in order of their last event
// (UserState.seq), oldest first, in a slab.
type liteUsers struct {
	index map[string]int32
	slab[liteUser, *liteUser]
	// open is the oldest node whose session may be open (-1: none is):
	// every older one's is closed.
	open int32
}

func newLiteUsers() *liteUsers {
	return &liteUsers{index: map[string]int32{}, slab: newSlab[liteUser](), open: -1}
}

// isLite reports whether u is what a liteUser keeps without loss: at
// most one consumed item, which is its one recent item if it has one.
func isLite(u *UserState) bool {
	switch {
	case len(u.Consumed) > 1, len(u.Recent) > 1, len(u.RecentTypes) != len(u.Recent):
		return false
	case len(u.Recent) == 1:
		_, ok := u.Consumed[u.Recent[0]]
		return ok
	}
	return true
}

// liteOf is u as a liteUser; u must be isLite.
func liteOf(u *UserState) liteUser {
	l := liteUser{id: u.ID, session: u.Session, ts: u.LastTS, offset: u.Offset, seq: u.seq,
		item: -1, part: u.Partition, arm: u.arm, wctx: u.wctx}
	for it := range u.Consumed {
		l.item = it
	}
	if len(u.Recent) == 1 {
		l.flags |= liteRecent
		l.typ = u.RecentTypes[0]
	}
	if u.open {
		l.flags |= liteOpen
	}
	if u.Session == SessionName(u.ID, time.UnixMicro(u.LastTS)) {
		l.session, l.flags = "", l.flags|liteDerived
	}
	return l
}

// state is l as the UserState it was made from.
func (l *liteUser) state() *UserState {
	u := &UserState{Consumed: make(map[int32]struct{}, 1)}
	l.into(u)
	return u
}

// into makes u the UserState l was made from, reusing u's map and slices.
func (l *liteUser) into(u *UserState) {
	consumed, recent, types := u.Consumed, u.Recent[:0], u.RecentTypes[:0]
	clear(consumed)
	*u = UserState{ID: l.id, Consumed: consumed, LastTS: l.ts, Session: l.session,
		Partition: l.part, Offset: l.offset, open: l.flags&liteOpen != 0, arm: l.arm, wctx: l.wctx, seq: l.seq}
	if l.item >= 0 {
		u.Consumed[l.item] = struct{}{}
	}
	if l.flags&liteRecent != 0 {
		u.Recent, u.RecentTypes = append(recent, l.item), append(types, l.typ)
	}
	if l.flags&liteDerived != 0 {
		u.Session = SessionName(l.id, time.UnixMicro(l.ts))
	}
}

func (s *liteUsers) len() int {
	if s == nil {
		return 0
	}
	return len(s.index)
}

// lookup returns the node of id (-1: none).
func (s *liteUsers) lookup(id string) int32 {
	if s == nil {
		return -1
	}
	if i, ok := s.index[id]; ok {
		return i
	}
	return -1
}

// add inserts l in order of seq (at the newest end but for a user older
// than some kept ones).
func (s *liteUsers) add(l liteUser) {
	i := s.alloc()
	s.nodes[i] = l
	s.index[l.id] = i
	newer, older := int32(-1), s.newest // the nodes l goes between
	for older >= 0 && s.nodes[older].seq > l.seq {
		newer, older = older, s.nodes[older].older
	}
	s.insert(i, newer, older)
	if l.flags&liteOpen != 0 && (s.open < 0 || l.seq < s.nodes[s.open].seq) {
		s.open = i
	}
}

// remove deletes node i and returns it.
func (s *liteUsers) remove(i int32) liteUser {
	l := s.nodes[i]
	if s.open == i {
		s.open = l.newer
	}
	s.unlink(i)
	delete(s.index, l.id)
	s.release(i) // drops the strings
	return l
}

// oldestOpen returns the oldest node whose session is open (-1: none).
func (s *liteUsers) oldestOpen() int32 {
	if s == nil {
		return -1
	}
	for s.open >= 0 && s.nodes[s.open].flags&liteOpen == 0 {
		s.open = s.nodes[s.open].newer
	}
	return s.open
}

// oldestNode is the least recently seen node (-1: none).
func (s *liteUsers) oldestNode() int32 {
	if s == nil {
		return -1
	}
	return s.oldest
}
