package session

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

func TestSessionsAssign(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	s := NewSessions(30*time.Minute, 24*time.Hour, 100)
	assign := func(user, given string, at time.Duration) string {
		e := feedback.Event{UserID: user, SessionID: given, TS: t0.Add(at)}
		s.Assign(&e)
		return e.SessionID
	}
	first := assign("u", "", 0)
	if first != "u@"+itoa(t0.Unix()) {
		t.Fatalf("session name %q", first)
	}
	if got := assign("u", "", 29*time.Minute); got != first {
		t.Fatalf("event within the idle gap started a new session %q", got)
	}
	second := assign("u", "", 29*time.Minute+31*time.Minute)
	if want := "u@" + itoa(t0.Add(time.Hour).Unix()); second != want {
		t.Fatalf("event after the idle gap: session %q, want %q (named after its own time)", second, want)
	}
	if got := assign("u", "", time.Hour+30*time.Second); got != second {
		t.Fatalf("the next event of the new session: %q, want %q", got, second)
	}
	if got := assign("u", "given", time.Hour+time.Minute); got != "given" {
		t.Fatalf("given session id overwritten: %q", got)
	}
	if got, want := assign("u", "", time.Hour+2*time.Minute), "u@"+itoa(t0.Add(time.Hour+2*time.Minute).Unix()); got != want {
		t.Fatalf("no session id after a given one: %q, want a new derived one %q", got, want)
	}
	if got := assign("v", "", 0); got == first {
		t.Fatal("two users share a session")
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d", s.Len())
	}
	// Events two days later expire everyone idle for over the 24h TTL (the
	// clock moves once two events in a row reach a time).
	assign("w", "", 48*time.Hour)
	assign("w", "", 48*time.Hour)
	if s.Len() != 1 {
		t.Fatalf("idle users not expired: Len = %d", s.Len())
	}
}

// One event dated in the year 3000 once evicted every other user's session
// (adaptrec_sessions fell from 9 to 1): the TTL clock must not follow it.
func TestSessionsFarFutureEventEvictsNoOne(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	s := NewSessions(30*time.Minute, 24*time.Hour, 100)
	for i := range 9 {
		e := feedback.Event{UserID: itoa(int64(i)), TS: t0.Add(time.Duration(i) * time.Minute)}
		s.Assign(&e)
	}
	future := feedback.Event{UserID: "attacker", TS: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.Assign(&future)
	if s.Len() != 10 {
		t.Fatalf("a year-3000 event left %d sessions, want 10", s.Len())
	}
	// The users carry on in their sessions.
	e := feedback.Event{UserID: "0", TS: t0.Add(10 * time.Minute)}
	s.Assign(&e)
	if s.Len() != 10 || e.SessionID != "0@"+itoa(t0.Unix()) {
		t.Fatalf("after the year-3000 event: %d sessions, user 0 in %q", s.Len(), e.SessionID)
	}
}

func TestSessionsBounded(t *testing.T) {
	s := NewSessions(time.Minute, time.Hour, 3)
	for i := range 10 {
		e := feedback.Event{UserID: itoa(int64(i)), TS: time.Unix(1, 0)}
		s.Assign(&e)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want the cap 3", s.Len())
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// AssignFrom reports a user once, when one of its events first arrives on
// a partition other than the one its events were first read from.
func TestSessionsAssignFromReportsSplitUsersOnce(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	s := NewSessions(30*time.Minute, 24*time.Hour, 100)
	var got []string
	for i, c := range []struct {
		user      string
		partition int32
	}{
		{"a", 2}, {"a", 2}, {"b", 0}, {"a", 3}, {"a", 4}, {"a", 2}, {"b", 0}, {"c", -1}, {"c", 1}, {"c", 5},
	} {
		e := feedback.Event{UserID: c.user, TS: t0.Add(time.Duration(i) * time.Second)}
		if first, split := s.AssignFrom(&e, c.partition); split {
			got = append(got, c.user+":"+itoa(int64(first))+"->"+itoa(int64(c.partition)))
		}
	}
	if want := "[a:2->3 c:1->5]"; fmt.Sprint(got) != want {
		t.Fatalf("split users reported %v, want %s", got, want)
	}
}

// BenchmarkSessionsMemory reports the heap bytes the session table takes
// per user with one event in a derived session.
func BenchmarkSessionsMemory(b *testing.B) {
	const users = 200_000
	ids := make([]string, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%07d", i)
	}
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := NewSessions(30*time.Minute, 24*time.Hour, users)
		for i, id := range ids {
			e := feedback.Event{UserID: id, TS: t0.Add(time.Duration(i) * time.Millisecond)}
			s.Assign(&e)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/users, "bytes/user")
		runtime.KeepAlive(s)
	}
}
