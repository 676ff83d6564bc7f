package telemetry

import (
	"fmt"
	"testing"
	"time"
)

// One line of a kind is written per interval; the next one written after
// the interval carries the count of those held back, and other kinds are
// not held back by it.
func TestLimiter(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(10 * time.Second)
	l.Now = func() time.Time { return now }
	type step struct {
		advance    time.Duration
		key        string
		ok         bool
		suppressed int
		over       time.Duration
	}
	for i, s := range []step{
		{0, "a", true, 0, 0},
		{0, "a", false, 0, 0},
		{time.Second, "a", false, 0, 0},
		{0, "b", true, 0, 0}, // another kind is written at once
		{8 * time.Second, "a", false, 0, 0},
		{time.Second, "a", true, 3, 10 * time.Second}, // 10s after the last written: the 3 held back
		{time.Second, "a", false, 0, 0},
		{time.Minute, "a", true, 1, time.Minute + time.Second},
		{time.Minute, "a", true, 0, time.Minute},          // nothing held back
		{0, "b", true, 0, 2*time.Minute + 10*time.Second}, // b was not held back either
	} {
		now = now.Add(s.advance)
		if ok, n, over := l.Allow(s.key); ok != s.ok || n != s.suppressed || over != s.over {
			t.Fatalf("step %d (%q at +%v): Allow = %v, %d, %v; want %v, %d, %v", i, s.key, s.advance, ok, n, over, s.ok, s.suppressed, s.over)
		}
	}
}

// The limiter forgets kinds it has not written for an interval once it
// holds too many, so distinct lines cannot grow it without bound.
func TestLimiterBounded(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(time.Second)
	l.Now = func() time.Time { return now }
	for i := range 3 * maxLimited {
		if i%maxLimited == 0 {
			now = now.Add(time.Second)
		}
		l.Allow(fmt.Sprint(i))
	}
	if n := len(l.seen); n > maxLimited {
		t.Fatalf("limiter holds %d kinds, bound %d", n, maxLimited)
	}
}
