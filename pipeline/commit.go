package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/sink"
)

// The commit stage: it commits the offsets of the groups the publish stage
// has acknowledged, in order, and hands the newest snapshot they carry to
// the snapshot publisher once its batch is committed.

// committing is a group of published batches whose offsets are ready.
type committing struct {
	offsets   map[int]kafka.Message
	batches   []batchTrace
	snapshots [][]byte
}

// commit commits the offsets of published groups in order, merging those
// that queued up meanwhile into one request.
func (w *Worker) commit(ctx context.Context, r *kafka.Reader, commits <-chan committing) error {
	for c := range commits {
		c = merged(c, commits)
		msgs := make([]kafka.Message, 0, len(c.offsets))
		for _, m := range c.offsets {
			msgs = append(msgs, m)
		}
		var parents []trace.Span
		for _, b := range c.batches {
			parents = append(parents, b.spans()...)
		}
		attrs := []attribute.KeyValue{semconv.MessagingConsumerGroupName(w.cfg.Kafka.Group), attribute.Int("adaptrec.commit.partitions", len(msgs))}
		err := w.observe(ctx, "commit", parents, &w.stats.CommitNanos, attrs, func(ctx context.Context) ([]attribute.KeyValue, error) {
			if len(msgs) == 0 {
				return nil, nil
			}
			return nil, w.commitMessages(ctx, r, msgs)
		})
		w.committed(c.batches, time.Now())
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("committing: %w", context.Cause(ctx))
			}
			// A rebalance took the partitions: the new owner re-reads from the
			// last commit (at-least-once), so this is not fatal.
			w.log.Warn("commit failed; the partitions' new owner re-reads from the last commit", "topic", w.cfg.Topics.Feedback, "err", err, "partitions", len(msgs))
			w.stats.CommitFailures.Add(1)
			continue
		}
		if len(msgs) > 0 {
			w.stats.Commits.Add(1)
		}
		if n := len(c.snapshots); n > 0 && w.snaps != nil {
			w.offerSnapshot(c.snapshots[n-1]) // the newest; its batch is committed
		}
	}
	return nil
}

// merged is c with the groups that queued up behind it merged in.
func merged(c committing, commits <-chan committing) committing {
	for {
		select {
		case more, ok := <-commits:
			if !ok {
				return c
			}
			for p, m := range more.offsets {
				c.offsets[p] = m // later groups have later offsets
			}
			c.batches = append(c.batches, more.batches...)
			c.snapshots = append(c.snapshots, more.snapshots...)
		default:
			return c
		}
	}
}

// committed ends the batches' spans and records their time from first
// fetch to commit.
func (w *Worker) committed(batches []batchTrace, done time.Time) {
	for _, b := range batches {
		if b.first.IsZero() {
			continue // a snapshot taken while idle
		}
		w.metrics.Committed(b.first, done)
		if b.span != nil {
			b.span.End(trace.WithTimestamp(done))
		}
	}
}

// commitMessages commits msgs' offsets. A commit that fails while the
// group's coordinator moves to another broker is tried again, after a
// backoff, until sink.write_timeout has passed (the reader finds the new
// coordinator meanwhile); one the group refuses because it rebalanced is
// not: the partitions' new owner re-reads from the last commit.
func (w *Worker) commitMessages(ctx context.Context, r *kafka.Reader, msgs []kafka.Message) error {
	_, err := retrying(ctx, w.cfg.Sink.WriteTimeout, commitRetriable, func(ctx context.Context) error {
		return r.CommitMessages(ctx, msgs...)
	}, func(_ int, err error, _ time.Duration, logNow bool) {
		w.stats.CommitRetries.Add(1)
		if logNow {
			w.log.Warn("commit failed; retrying", "topic", w.cfg.Topics.Feedback, "partitions", len(msgs), "err", err)
		}
	})
	return err
}

// commitRetriable reports whether a failed commit may succeed if tried
// again: not when the group has moved on (a rebalance), whose new
// partition owners re-read from the last commit.
func commitRetriable(err error) bool {
	for _, e := range []kafka.Error{kafka.RebalanceInProgress, kafka.IllegalGeneration, kafka.UnknownMemberId, kafka.FencedInstanceID} {
		if errors.Is(err, e) {
			return false
		}
	}
	return sink.Retriable(err)
}
