package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/segmentio/kafka-go"
)

// ErrClosed is returned by Publish on a sink that was closed.
var ErrClosed = errors.New("sink closed")

// Memory is a Sink that keeps every message it acknowledges, in publish
// order: the outputs of a Worker under test, with no broker. Fail makes it
// refuse what is published next, as a broker that is down would. It is safe
// for concurrent use.
type Memory struct {
	mu     sync.Mutex
	msgs   []kafka.Message
	fail   error
	closed bool
	// published is closed and replaced at every acknowledged Publish.
	published chan struct{}
}

// NewMemory returns an empty Memory sink.
func NewMemory() *Memory { return &Memory{published: make(chan struct{})} }

// Publish implements Sink: it stores msgs (copies of them) unless ctx has
// ended, the sink is closed or Fail set an error, which it then returns
// with nothing stored.
func (m *Memory) Publish(ctx context.Context, msgs ...kafka.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publishing to memory: %w", context.Cause(ctx))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return fmt.Errorf("publishing to memory: %w", ErrClosed)
	case m.fail != nil:
		return fmt.Errorf("publishing to memory: %w", m.fail)
	case len(msgs) == 0:
		return nil
	}
	for _, msg := range msgs {
		msg.Key, msg.Value, msg.Headers = slices.Clone(msg.Key), slices.Clone(msg.Value), slices.Clone(msg.Headers)
		m.msgs = append(m.msgs, msg)
	}
	close(m.published)
	m.published = make(chan struct{})
	return nil
}

// Fail makes every Publish from now on return err (nil: acknowledge
// again).
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

// Messages returns a copy of the messages acknowledged so far, in order.
func (m *Memory) Messages() []kafka.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// Wait blocks until at least n messages were acknowledged or ctx ends, and
// returns the messages acknowledged so far.
func (m *Memory) Wait(ctx context.Context, n int) ([]kafka.Message, error) {
	for {
		m.mu.Lock()
		msgs, published := slices.Clone(m.msgs), m.published
		m.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-published:
		case <-ctx.Done():
			return msgs, fmt.Errorf("waiting for %d messages, have %d: %w", n, len(msgs), context.Cause(ctx))
		}
	}
}

// Close implements Sink; Publish fails with ErrClosed afterwards. Closing
// twice is not an error.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
