package configs

import "time"

// Batch is the flush policy: count or time, whichever first.
type Batch struct {
	Size    int           `mapstructure:"size"`
	MaxWait time.Duration `mapstructure:"max_wait"`
}

// Validation bounds what an accepted event may contain.
type Validation struct {
	MaxEventBytes int     `mapstructure:"max_event_bytes"`
	MaxIDBytes    int     `mapstructure:"max_id_bytes"`
	RatingMin     float64 `mapstructure:"rating_min"`
	RatingMax     float64 `mapstructure:"rating_max"`
	// MaxFuture is how far past its message's broker timestamp an event
	// time may lie (0: no bound).
	MaxFuture time.Duration `mapstructure:"max_future"`
	// MinTime is the earliest event time accepted, RFC 3339 (empty: no
	// bound but the fixed floor 1970-01-01T00:00:00Z).
	MinTime string `mapstructure:"min_time"`
}

// MinTimeValue is MinTime parsed; the zero time if it is empty (Check
// rejects a value that does not parse).
func (v Validation) MinTimeValue() time.Time {
	t, _ := time.Parse(time.RFC3339, v.MinTime)
	return t
}

// Dedupe bounds the memory of event ids the worker has learned, so that a
// re-sent event is not learned twice.
type Dedupe struct {
	// Window is how many of the most recent event keys are remembered
	// (0: no de-duplication).
	Window int `mapstructure:"window"`
}

// Session bounds the per-user session bookkeeping.
type Session struct {
	IdleGap     time.Duration `mapstructure:"idle_gap"`
	TTL         time.Duration `mapstructure:"ttl"`
	MaxSessions int           `mapstructure:"max_sessions"`
	// RebuildEvents bounds, per partition, the events re-read to rebuild
	// the session state of a partition this worker did not learn up to
	// where it starts reading (0: no rebuild).
	RebuildEvents int `mapstructure:"rebuild_events"`
}

// MaxDedupeWindow bounds dedupe.window: the set costs about 50 bytes of
// memory and 8 bytes of snapshot per key.
const MaxDedupeWindow = 10_000_000

// check validates batch.*.
func (b Batch) check(p *problems) {
	positive(p, map[string]time.Duration{"batch.max_wait": b.MaxWait})
	positive(p, map[string]int{"batch.size": b.Size})
	if b.Size > 1_000_000 {
		p.add("batch.size", "must be at most 1000000, got %d", b.Size)
	}
}

// check validates validate.*.
func (v Validation) check(p *problems) {
	positive(p, map[string]int{"validate.max_event_bytes": v.MaxEventBytes, "validate.max_id_bytes": v.MaxIDBytes})
	if v.MaxFuture < 0 {
		p.add("validate.max_future", "must not be negative, got %v", v.MaxFuture)
	}
	if m := v.MinTime; m != "" {
		if _, err := time.Parse(time.RFC3339, m); err != nil {
			p.add("validate.min_time", "%q is not an RFC 3339 time (empty: no bound)", m)
		}
	}
	if v.RatingMin >= v.RatingMax {
		p.add("validate.rating_min", "must be below validate.rating_max (%g), got %g", v.RatingMax, v.RatingMin)
	}
}

// check validates dedupe.*.
func (d Dedupe) check(p *problems) {
	if d.Window < 0 || d.Window > MaxDedupeWindow {
		p.add("dedupe.window", "must be within 0..%d, got %d", MaxDedupeWindow, d.Window)
	}
}

// check validates session.*.
func (s Session) check(p *problems) {
	positive(p, map[string]time.Duration{"session.idle_gap": s.IdleGap, "session.ttl": s.TTL})
	positive(p, map[string]int{"session.max_sessions": s.MaxSessions})
	if s.RebuildEvents < 0 {
		p.add("session.rebuild_events", "must not be negative, got %d", s.RebuildEvents)
	}
}
