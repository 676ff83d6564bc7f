package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// The fetch stage: the group reader's configuration, and the loop that
// fetches messages and decodes and validates them off the model's
// goroutine.

// fetched is a message as the fetch stage hands it on: the event it holds
// or why it is not one.
type fetched struct {
	msg    kafka.Message
	ev     feedback.Event
	err    error
	at     time.Time     // fetched
	decode time.Duration // time spent decoding (tracing only)
}

func (w *Worker) readerConfig() kafka.ReaderConfig {
	cfg := w.cfg
	start := kafka.FirstOffset
	if cfg.Kafka.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	return kafka.ReaderConfig{
		Brokers:               cfg.Kafka.Brokers,
		GroupID:               cfg.Kafka.Group,
		Topic:                 cfg.Topics.Feedback,
		Dialer:                w.conn.Dialer(),
		QueueCapacity:         max(100, cfg.Batch.Size),
		MinBytes:              1,
		MaxBytes:              cfg.Kafka.FetchMaxBytes,
		MaxWait:               cfg.Kafka.FetchMaxWait,
		ReadBatchTimeout:      cfg.Kafka.RequestTimeout,
		HeartbeatInterval:     cfg.Kafka.HeartbeatInterval,
		SessionTimeout:        cfg.Kafka.SessionTimeout,
		RebalanceTimeout:      cfg.Kafka.RebalanceTimeout,
		JoinGroupBackoff:      cfg.Kafka.JoinGroupBackoff,
		CommitInterval:        0, // synchronous: CommitMessages returns once the broker has the offsets
		StartOffset:           start,
		WatchPartitionChanges: true,
		ReadBackoffMin:        10 * time.Millisecond,
		ReadBackoffMax:        500 * time.Millisecond,
		Logger: kafka.LoggerFunc(func(f string, a ...any) {
			if w.assigned != nil {
				w.assigned.note(f, a)
			}
			w.groupLine(f, a)
			w.log.Debug(fmt.Sprintf(f, a...), "component", "kafka-go")
		}),
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			level := slog.LevelWarn
			if w.closing.Load() {
				level = slog.LevelDebug // closing connections time out reads on purpose
			}
			w.groupLine(f, a)
			w.readerLine(f, a)
			msg := fmt.Sprintf(f, a...)
			w.logLimited(msg, level, msg, "component", "kafka-go")
		}),
	}
}

// fetch reads messages and decodes them until ctx ends. Decoding here keeps
// it off the model goroutine.
//
// An error from FetchMessage is not waited on: kafka-go's partition
// readers already back off (up to ReadBackoffMax) and look
// the leader up again before each try, and queue their errors in front of
// the messages. Sleeping per error would leave the errors of a failed
// leader queued there, and the messages behind them waiting, long after
// the partition had a new leader. Repeated errors are rate-limited
// (logLimited).
func (w *Worker) fetch(ctx context.Context, r *kafka.Reader, in chan<- fetched) {
	lim := w.limits()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return
			}
			w.logLimited("fetching "+err.Error(), slog.LevelWarn, "fetching", "topic", w.cfg.Topics.Feedback, "err", err)
			continue
		}
		w.stats.Fetched.Add(1)
		at := time.Now()
		ev, derr := feedback.DecodeAt(m.Value, m.Time, lim)
		var took time.Duration
		if w.tracing {
			took = time.Since(at)
		}
		select {
		case in <- fetched{msg: m, ev: ev, err: derr, at: at, decode: took}:
		case <-ctx.Done():
			return
		}
	}
}

func (w *Worker) limits() feedback.Limits {
	v := w.cfg.Validate
	return feedback.Limits{
		MaxBytes: v.MaxEventBytes, MaxIDBytes: v.MaxIDBytes,
		RatingMin: v.RatingMin, RatingMax: v.RatingMax,
		MaxFuture: v.MaxFuture, MinTime: v.MinTimeValue(),
	}
}
