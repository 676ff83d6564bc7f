// Package session owns what happens to an event between its decoding and
// the model: the session it belongs to (given, or derived from the user's
// idle gap) and the Arrow batch it joins. The worker and the evaluation
// harness both batch through its Assembler, so offline results come from
// the worker's own code path; it imports no Kafka client.
package session

import (
	"strings"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
)

// Sessions assigns a session to every event that comes without one: a run of
// a user's events with gaps under the idle gap (in event time) is one
// session, named "USER@START" after its first event's Unix second, so a
// replay derives the same names. It remembers at most max users and forgets
// users idle for longer than ttl, as a model.EventClock measures it (so
// that no single event can evict the others). Not safe for concurrent use.
type Sessions struct {
	idleGap, ttl int64 // microseconds
	users        *model.LRU[string, sessionState]
	clock        model.EventClock
}

// sessionState is a user's session, held by value: a derived session's
// name is not kept but made again from its start, so a user costs the
// table about 100 bytes.
type sessionState struct {
	id          string // a given session id ("": derived, model.SessionName(user, start))
	start, last int64  // start: the derived session's first event, Unix microseconds
	// partition is where the user's events were first read (-1: not
	// known); split is set once one arrived on another partition.
	partition int32
	given     bool
	split     bool
}

// NewSessions returns an empty session table.
func NewSessions(idleGap, ttl time.Duration, max int) *Sessions {
	return &Sessions{idleGap: idleGap.Microseconds(), ttl: ttl.Microseconds(), users: model.NewLRU[string, sessionState](max)}
}

// Assign fills e.SessionID if empty and records the event.
func (s *Sessions) Assign(e *feedback.Event) { s.AssignFrom(e, -1) }

// AssignFrom is Assign for an event read from partition (-1: not known).
// It reports, once per user held, the first event of the user that
// arrives on a partition other than the one the user's events were first
// read from: split is true and first is that partition. Users are keyed so
// that their events stay on one partition; a split user is a sign of a
// producer with another partitioner.
func (s *Sessions) AssignFrom(e *feedback.Event, partition int32) (first int32, split bool) {
	t := e.TS.UnixMicro()
	s.clock.Observe(t)
	st, ok := s.users.Get(e.UserID)
	switch {
	case e.SessionID != "":
		if !ok {
			st = sessionState{partition: partition}
		}
		st.id, st.given = e.SessionID, true
	case !ok:
		st = sessionState{start: t, partition: partition}
	case st.given || abs(t-st.last) > s.idleGap:
		st.id, st.start, st.given = "", t, false
	}
	st.last = max(st.last, t)
	if !st.given {
		e.SessionID = model.SessionName(e.UserID, time.UnixMicro(st.start))
	}
	switch {
	case st.partition < 0:
		st.partition = partition
	case partition >= 0 && partition != st.partition && !st.split:
		st.split, first, split = true, st.partition, true
	}
	if ok {
		s.users.Put(e.UserID, st) // the key is held already
	} else {
		s.users.Put(strings.Clone(e.UserID), st)
	}
	s.expire()
	return first, split
}

// expire drops users idle for longer than ttl, oldest first.
func (s *Sessions) expire() {
	for {
		k, st, ok := s.users.Oldest()
		if !ok || s.clock.Now()-st.last <= s.ttl {
			return
		}
		s.users.Remove(k)
	}
}

// Len is the number of users with a live session.
func (s *Sessions) Len() int { return s.users.Len() }

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
