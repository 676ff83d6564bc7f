package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
)

// ErrUnreadable reports that what a worker needs to start from (the
// snapshot topic, the events it rebuilds session state from) could not be
// read within snapshot.restore_timeout. The worker then stops rather than
// serve, and later snapshot, a model that starts from nothing.
var ErrUnreadable = errors.New("not readable within snapshot.restore_timeout")

// Backoff between two reads of retryRead.
const (
	readBackoffMin = 200 * time.Millisecond
	readBackoffMax = 2 * time.Second
	// readLogEvery is the least time between two log lines of one retryRead.
	readLogEvery = 5 * time.Second
)

// retryRead calls read until it succeeds, ctx ends or timeout has passed
// since the first call, or (if retry is not nil) until retry says the
// error is not worth another try. Between tries it backs off and drops
// conn's cached cluster metadata, so the next try goes to the partitions'
// current leaders. Failures are logged, at most one line per
// readLogEvery. After the timeout it returns an error wrapping
// ErrUnreadable and the last failure; when ctx ends, ctx's cause.
func retryRead(ctx context.Context, conn *kafkaconn.Conn, timeout time.Duration, log *slog.Logger, what string, retry func(error) bool, read func(context.Context) error) error {
	tries, err := retrying(ctx, timeout, retry, read, func(tries int, err error, left time.Duration, logNow bool) {
		if logNow {
			log.Warn("read failed; retrying on fresh metadata", "what", what, "tries", tries, "gives_up_in", left.Round(time.Second), "err", err)
		}
		conn.Refresh()
	})
	switch {
	case err == nil:
		if tries > 1 {
			log.Info("read after retrying", "what", what, "tries", tries)
		}
		return nil
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case retry != nil && !retry(err):
		return err
	}
	return fmt.Errorf("%s: %w (%d tries in %v; last error: %w)", what, ErrUnreadable, tries, timeout, err)
}

// retrying calls try until it succeeds, ctx ends, timeout has passed
// since the first call, or (if retry is not nil) retry says the error is
// not worth another try; it returns the number of tries and the last
// error. Before each new try it calls between (logNow at most once per
// readLogEvery) and backs off, from readBackoffMin doubling to
// readBackoffMax, never past the deadline.
func retrying(ctx context.Context, timeout time.Duration, retry func(error) bool, try func(context.Context) error,
	between func(tries int, err error, left time.Duration, logNow bool)) (int, error) {
	deadline := time.Now().Add(timeout)
	backoff := readBackoffMin
	var loggedAt time.Time
	for tries := 1; ; tries++ {
		err := try(ctx)
		if err == nil || ctx.Err() != nil || (retry != nil && !retry(err)) || !time.Now().Before(deadline) {
			return tries, err
		}
		now := time.Now()
		logNow := now.Sub(loggedAt) >= readLogEvery
		if logNow {
			loggedAt = now
		}
		between(tries, err, deadline.Sub(now), logNow)
		select {
		case <-ctx.Done():
			return tries, err
		case <-time.After(min(backoff, max(time.Until(deadline), 0))):
		}
		backoff = min(2*backoff, readBackoffMax)
	}
}

// unreachable reports whether err says a broker could not be reached or
// hung up, or answered with an error that passes (no leader yet, not the
// coordinator): what a broker failure looks like, as opposed to a wrong
// setting.
func unreachable(err error) bool {
	var ne net.Error
	var ke kafka.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &ke):
		return ke.Temporary()
	}
	return false
}
