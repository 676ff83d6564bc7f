package session

import (
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// Assembler turns validated events into the Arrow batches a model learns
// from, the way the worker does: each event gets its session as it is
// added, in order. The evaluation harness uses it too, so offline results
// come from the worker's own code path. Not safe for concurrent use.
type Assembler struct {
	// OnSplit, if set, is called once per user held when one of the
	// user's events arrives on a partition other than the one where the
	// user's events were first read (Sessions.AssignFrom).
	OnSplit  func(user string, first, now int32)
	sessions *Sessions
	builder  *feedback.Builder
	n        int
}

// Options is the session policy of an Assembler.
type Options struct {
	// IdleGap ends a user's session without session_id after this gap in
	// event time; TTL evicts sessions not seen for this long.
	IdleGap, TTL time.Duration
	// MaxSessions bounds the sessions kept (least recently seen go first).
	MaxSessions int
}

// DefaultOptions is the session policy of the defaults file
// (configs/adaptrec.yaml, session.*).
func DefaultOptions() Options {
	return Options{IdleGap: 30 * time.Minute, TTL: 24 * time.Hour, MaxSessions: 1_000_000}
}

// NewAssembler returns an empty assembler with the session policy opts.
func NewAssembler(opts Options) *Assembler {
	return &Assembler{
		sessions: NewSessions(opts.IdleGap, opts.TTL, opts.MaxSessions),
		builder:  feedback.NewBuilder(nil),
	}
}

// Add appends ev, read at partition/offset at kafkaTime, to the batch.
func (a *Assembler) Add(ev feedback.Event, partition int32, offset int64, kafkaTime time.Time) {
	if first, split := a.sessions.AssignFrom(&ev, partition); split && a.OnSplit != nil {
		a.OnSplit(ev.UserID, first, partition)
	}
	a.builder.Append(feedback.Located{Event: ev, Partition: partition, Offset: offset, KafkaTime: kafkaTime})
	a.n++
}

// Len is the number of events added since the last Flush.
func (a *Assembler) Len() int { return a.n }

// Flush returns the batch of the events added since the last Flush; the
// caller releases it.
func (a *Assembler) Flush() *feedback.Batch {
	a.n = 0
	return a.builder.NewBatch()
}

// Users is the number of users with a live session.
func (a *Assembler) Users() int { return a.sessions.Len() }

// Release frees the builder.
func (a *Assembler) Release() { a.builder.Release() }
