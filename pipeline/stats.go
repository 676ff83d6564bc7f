package pipeline

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// Stats are the worker's live counters, safe for concurrent use.
type Stats struct {
	Fetched        atomic.Int64 // messages fetched (valid or not)
	Events         atomic.Int64 // messages of committed-or-attempted batches
	DLQ            atomic.Int64 // dead letters published
	Duplicates     atomic.Int64 // duplicate events committed without being learned
	Batches        atomic.Int64 // batches published
	Groups         atomic.Int64 // publish-and-commit rounds (one or more batches each)
	Lists          atomic.Int64 // recommendation lists published
	Commits        atomic.Int64 // offset commits acknowledged
	CommitFailures atomic.Int64 // commits lost to rebalances
	CommitRetries  atomic.Int64 // commits tried again while the coordinator moved
	Users          atomic.Int64 // users with a live session
	Decisions      atomic.Int64 // architecture decision records published
	Snapshots      atomic.Int64 // model snapshots published
	Merges         atomic.Int64 // other replicas' snapshots merged in
	Rebuilt        atomic.Int64 // events re-read to rebuild session state
	// Time spent per stage, summed over batches (nanoseconds).
	LearnNanos, PublishNanos, CommitNanos atomic.Int64
}

// StatsSnapshot is a point-in-time copy of Stats (not to be confused with
// model.Snapshot, a model's saved state).
type StatsSnapshot struct {
	At                                                                     time.Time
	Fetched, Events, DLQ, Batches, Lists, CommitFailures, Users, Decisions int64
	Duplicates                                                             int64
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		At: time.Now(), Fetched: s.Fetched.Load(), Events: s.Events.Load(), DLQ: s.DLQ.Load(),
		Batches: s.Batches.Load(), Lists: s.Lists.Load(), CommitFailures: s.CommitFailures.Load(), Users: s.Users.Load(),
		Decisions: s.Decisions.Load(), Duplicates: s.Duplicates.Load(),
	}
}

// ProgressLine formats the progress between two snapshots.
func ProgressLine(prev, cur StatsSnapshot) string {
	rate := 0.0
	if dt := cur.At.Sub(prev.At).Seconds(); dt > 0 {
		rate = float64(cur.Events-prev.Events) / dt
	}
	line := fmt.Sprintf("events/s %7.0f  events %d  batches %d  users %d  lists published %d  dlq %d",
		rate, cur.Events, cur.Batches, cur.Users, cur.Lists, cur.DLQ)
	if cur.Decisions > 0 {
		line += fmt.Sprintf("  decisions %d", cur.Decisions)
	}
	if cur.Duplicates > 0 {
		line += fmt.Sprintf("  duplicates %d", cur.Duplicates)
	}
	return line
}

// Summary formats the totals of a run that started at start.
func Summary(start time.Time, cur StatsSnapshot) string {
	d := cur.At.Sub(start)
	rate := 0.0
	if d > 0 {
		rate = float64(cur.Events) / d.Seconds()
	}
	return fmt.Sprintf("summary: %s, events %d (%.0f/s), batches %d, users %d, lists published %d, dlq %d, duplicates %d, commits lost to rebalances %d",
		d.Round(time.Millisecond), cur.Events, rate, cur.Batches, cur.Users, cur.Lists, cur.DLQ, cur.Duplicates, cur.CommitFailures)
}

// ReportProgress writes a progress line to w every interval until done is
// closed; extra, if set, is appended to each line.
func ReportProgress(done <-chan struct{}, w io.Writer, s *Stats, interval time.Duration, extra func() string) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	prev := s.Snapshot()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			cur := s.Snapshot()
			line := ProgressLine(prev, cur)
			if extra != nil {
				line += extra()
			}
			fmt.Fprintln(w, line)
			prev = cur
		}
	}
}
