package model

// EventClock is the event time that drives eviction and decay. It follows
// the stream's event times but moves only to a time that two events in a
// row have reached (the older of the last two), so that no single event,
// however far in the future its ts, moves it: such an event cannot make
// every other user look idle past a TTL, nor decay every other item's
// weight away. In a stream in time order it lags by one event. Times are
// Unix microseconds. The zero value is a clock that has seen nothing.
type EventClock struct {
	now, last int64
}

// Observe records an event at t and returns the clock.
func (c *EventClock) Observe(t int64) int64 {
	c.now = max(c.now, min(t, c.last))
	c.last = t
	return c.now
}

// Now is the clock's time.
func (c *EventClock) Now() int64 { return c.now }
