package telemetry

import (
	"sync"
	"time"
)

// Limiter rate-limits repeated identical log lines: the first line of a
// kind is written, repeats within Interval are counted instead, and the
// first repeat after Interval is written with the count of the lines it
// stands for. It is safe for concurrent use.
type Limiter struct {
	// Interval is how long repeats are counted before the next one is
	// written.
	Interval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu   sync.Mutex
	seen map[string]*limited
}

type limited struct {
	at         time.Time // when the last line of this kind was written
	suppressed int
}

// maxLimited bounds the kinds of lines a Limiter remembers; past it, kinds
// not written for Interval are forgotten.
const maxLimited = 4096

// NewLimiter returns a Limiter that writes one line of a kind per interval.
func NewLimiter(interval time.Duration) *Limiter {
	return &Limiter{Interval: interval}
}

// Allow reports whether a line of kind key should be written now, how many
// lines of that kind were held back since the last one written (0 for a
// line not seen within Interval), and how long ago that was.
func (l *Limiter) Allow(key string) (ok bool, suppressed int, over time.Duration) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]*limited{}
	}
	e, found := l.seen[key]
	if !found {
		if len(l.seen) >= maxLimited {
			l.forget(t)
		}
		l.seen[key] = &limited{at: t}
		return true, 0, 0
	}
	over = t.Sub(e.at)
	if over < l.Interval {
		e.suppressed++
		return false, 0, 0
	}
	n := e.suppressed
	e.at, e.suppressed = t, 0
	return true, n, over
}

// forget drops the kinds not written for Interval.
func (l *Limiter) forget(t time.Time) {
	for k, e := range l.seen {
		if t.Sub(e.at) >= l.Interval {
			delete(l.seen, k)
		}
	}
}
