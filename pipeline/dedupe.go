package pipeline

import (
	"hash/fnv"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// Dedupe remembers the keys of the last window events the worker learned,
// so that an event sent again (a producer's retry, a re-sent batch, a
// duplicate event_id) is not learned twice. The window is a count of
// events, not a time: memory and snapshot size stay bounded whatever the
// event times say. Not safe for concurrent use; the model goroutine owns it.
type Dedupe struct {
	ring []uint64 // keys in the order they were learned; next is the oldest once full
	next int
	full bool
	seen map[uint64]struct{}
}

// NewDedupe returns an empty set of window keys; window 0 turns
// de-duplication off (a nil *Dedupe, whose Seen is always false).
func NewDedupe(window int) *Dedupe {
	if window <= 0 {
		return nil
	}
	return &Dedupe{ring: make([]uint64, window), seen: make(map[uint64]struct{}, window)}
}

// EventKey is the key an event is de-duplicated by: its event_id if it has
// one, else the bytes of its message, so that a message re-sent as is is
// recognised. Keys are 64-bit FNV-1a hashes; the chance that two distinct
// events of a window of n collide is about n²/2⁶⁵ (3·10⁻¹⁰ for 100000).
func EventKey(ev feedback.Event, value []byte) uint64 {
	h := fnv.New64a()
	if ev.EventID != "" {
		h.Write([]byte("event_id\x00"))
		h.Write([]byte(ev.EventID))
	} else {
		h.Write([]byte("value\x00"))
		h.Write(value)
	}
	return h.Sum64()
}

// Seen reports whether key is among the remembered keys; if not, it
// remembers it, forgetting the oldest key beyond the window.
func (d *Dedupe) Seen(key uint64) bool {
	if d == nil {
		return false
	}
	if _, ok := d.seen[key]; ok {
		return true
	}
	if d.full {
		delete(d.seen, d.ring[d.next])
	}
	d.ring[d.next] = key
	d.seen[key] = struct{}{}
	if d.next++; d.next == len(d.ring) {
		d.next, d.full = 0, true
	}
	return false
}

// Keys returns the remembered keys, oldest first (what a snapshot carries).
func (d *Dedupe) Keys() []uint64 {
	if d == nil {
		return nil
	}
	if !d.full {
		return append([]uint64(nil), d.ring[:d.next]...)
	}
	return append(append([]uint64(nil), d.ring[d.next:]...), d.ring[:d.next]...)
}

// Load replaces the remembered keys with keys, oldest first (of which the
// newest window are kept).
func (d *Dedupe) Load(keys []uint64) {
	if d == nil {
		return
	}
	clear(d.seen)
	d.next, d.full = 0, false
	for _, k := range keys[max(0, len(keys)-len(d.ring)):] {
		d.Seen(k)
	}
}

// Len is the number of keys remembered.
func (d *Dedupe) Len() int {
	if d == nil {
		return 0
	}
	return len(d.seen)
}
