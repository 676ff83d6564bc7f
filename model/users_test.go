package model

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

func TestUserStoreBoundedByCapAndTTL(t *testing.T) {
	s := NewUserStore(3, 100, 2)
	for i := range 10 {
		u := s.Get(fmt.Sprint("u", i), int64(i))
		s.Consume(u, int32(i), feedback.Click)
	}
	if s.Len() != 3 || s.Evicted() != 7 {
		t.Fatalf("len %d evicted %d, want 3 and 7", s.Len(), s.Evicted())
	}
	s.Get("late", 1000)
	if s.Len() != 3 || s.Evicted() != 8 {
		t.Fatalf("len %d evicted %d after one late event, want 3 and 8 (the cap only): a single event does not move the TTL clock", s.Len(), s.Evicted())
	}
	u := s.Get("late", 1000) // two in a row: everyone else is now idle past the TTL
	if s.Len() != 1 {
		t.Fatalf("len %d after TTL, want 1", s.Len())
	}
	for _, it := range []int32{1, 2, 3} {
		s.Consume(u, it, feedback.View)
	}
	if len(u.Recent) != 2 || u.Recent[0] != 2 || u.Recent[1] != 3 || len(u.Consumed) != 3 {
		t.Fatalf("recent %v consumed %v", u.Recent, u.Consumed)
	}
}

func TestEventClock(t *testing.T) {
	var c EventClock
	for _, step := range []struct{ t, want int64 }{
		{10, 0}, {20, 10}, {30, 20}, {1 << 60, 30}, {40, 40}, {35, 40}, {1 << 60, 40}, {1 << 60, 1 << 60},
	} {
		if got := c.Observe(step.t); got != step.want {
			t.Fatalf("Observe(%d) = %d, want %d", step.t, got, step.want)
		}
	}
}

// A user's far-future event (year 3000) evicts no other user.
func TestUserStoreFarFutureEventEvictsNoOne(t *testing.T) {
	const hour = int64(3600e6)
	s := NewUserStore(100, 24*hour, 2)
	for i := range 9 {
		s.Get(fmt.Sprint("u", i), int64(i)*hour)
	}
	s.Get("attacker", 32503680000e6) // 3000-01-01
	s.Get("u0", 9*hour)
	if s.Len() != 10 || s.Evicted() != 0 {
		t.Fatalf("len %d evicted %d after a year-3000 event, want 10 and 0", s.Len(), s.Evicted())
	}
}

// BenchmarkIdleSessionMemory reports the heap bytes one idle user costs a
// model (the DQN's per-user state: consumed set, last 10 items and their
// feedback types, id) after 10 events.
func BenchmarkIdleSessionMemory(b *testing.B) {
	const users = 200_000
	ids := make([]string, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%07d", i)
	}
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := NewUserStore(users, 0, 10)
		for i, id := range ids {
			u := s.Get(id, 0)
			for k := range 10 {
				s.Consume(u, int32((i+k)%9724), feedback.Rating)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/users, "bytes/session")
		runtime.KeepAlive(s)
	}
}

// BenchmarkOneEventUserMemory reports the heap bytes one user with a single
// event (a click in a derived session) costs the user store, in full and
// compact (liteusers.go), side by side.
func BenchmarkOneEventUserMemory(b *testing.B) {
	const users = 200_000
	ids := make([]string, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%07d", i)
	}
	for _, compact := range []bool{false, true} {
		b.Run(fmt.Sprintf("compact=%v", compact), func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				s := NewUserStore(users, 0, 10)
				s.SetCompact(compact, nil)
				for i, id := range ids {
					ts := int64(i) * 1e6
					u := s.Get(id, ts)
					s.Consume(u, int32(i%9724), feedback.Click)
					u.Session, u.open = SessionName(id, time.UnixMicro(ts)), true
					s.open.Put(u, struct{}{})
					if i%256 == 255 {
						s.Compact()
					}
				}
				s.Compact()
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/users, "bytes/user")
				runtime.KeepAlive(s)
			}
		})
	}
}

// TestMaxNewUsersAdmitsBySecondEvent bounds the users with one event at
// three: past it the least recently seen of them are forgotten, their open
// sessions closed as an eviction closes them; a user whose second event
// comes in time is kept in full, with its first event, and never counts
// against the bound; one that comes back too late starts afresh.
func TestMaxNewUsersAdmitsBySecondEvent(t *testing.T) {
	s := NewUserStore(1000, 0, 3)
	s.SetCompact(true, nil)
	s.SetMaxNew(3)
	var closed []string
	s.OnClose = func(u *UserState) { closed = append(closed, u.ID) }
	ts := int64(0)
	see := func(id string, item int32) *UserState {
		ts++
		b := feedback.BatchOf(feedback.Located{Event: feedback.Event{UserID: id, ItemID: "x", SessionID: "s-" + id, Type: feedback.Click, TS: time.UnixMicro(ts)}})
		defer b.Release()
		u := s.Get(id, ts)
		s.note(u, b, 0)
		s.Consume(u, item, feedback.Click)
		s.Compact() // the end of the event's batch
		return u
	}
	see("a", 1)
	see("b", 2)
	see("a", 3) // a's second event: a is kept in full
	for i, id := range []string{"c", "d", "e", "f"} {
		see(id, int32(10+i))
	}
	// b, c, d, e, f had one event each; the three newest stay.
	if got := fmt.Sprint(closed); got != "[b c]" {
		t.Fatalf("sessions closed %s, want [b c]: the oldest new users, forgotten", got)
	}
	if s.Len() != 4 || s.Compacted() != 3 || s.Evicted() != 2 {
		t.Fatalf("%d users, %d compact, %d evicted; want 4, 3, 2", s.Len(), s.Compacted(), s.Evicted())
	}
	if u, ok := s.Lookup("a"); !ok || len(u.Consumed) != 2 || fmt.Sprint(u.Recent) != "[1 3]" {
		t.Fatalf("a: %+v, %v; want both its events", u, ok)
	}
	if _, ok := s.Lookup("b"); ok {
		t.Fatal("b is remembered past the bound")
	}
	u := see("b", 4) // too late: b starts afresh
	if fmt.Sprint(u.Recent) != "[4]" || len(u.Consumed) != 1 {
		t.Fatalf("b back: recent %v consumed %v, want only its new event", u.Recent, u.Consumed)
	}
	u = see("f", 5) // in time: f keeps its first event
	if fmt.Sprint(u.Recent) != "[13 5]" {
		t.Fatalf("f back: recent %v, want [13 5]", u.Recent)
	}
	// b's return forgot d; f's admitted f: e and b are left compact.
	if s.Compacted() != 2 || s.Len() != 4 || fmt.Sprint(closed) != "[b c d]" {
		t.Fatalf("%d compact, %d users, closed %v; want 2, 4, [b c d]", s.Compacted(), s.Len(), closed)
	}
}
