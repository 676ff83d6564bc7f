// Package sinktest is the conformance suite every sink.Sink passes (as
// Watermill's pub/sub tests): what the Worker relies on when it publishes
// a batch's outputs and then commits its offsets. A sink's own test calls
// Run with a factory of fresh sinks.
package sinktest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/sink"
)

// Target is a sink under test on a destination of its own.
type Target struct {
	Sink sink.Sink
	// Stored returns what the destination holds now, each key's messages
	// in the order they were stored.
	Stored func(t *testing.T) []kafka.Message
}

// Run checks the sink.Sink contract on the targets newTarget returns, a
// fresh one per subtest: Publish returns once its messages are stored,
// keeps each key's order, keeps keys, values and headers, returns an error
// for a context that has ended and one wrapping sink.ErrClosed once the
// sink is closed, and Close keeps what was acknowledged.
func Run(t *testing.T, newTarget func(t *testing.T) Target) {
	t.Run("StoredWhenAcknowledged", func(t *testing.T) { storedWhenAcknowledged(t, newTarget(t)) })
	t.Run("KeyOrder", func(t *testing.T) { keyOrder(t, newTarget(t)) })
	t.Run("KeysValuesHeaders", func(t *testing.T) { keysValuesHeaders(t, newTarget(t)) })
	t.Run("EmptyPublish", func(t *testing.T) { emptyPublish(t, newTarget(t)) })
	t.Run("EndedContext", func(t *testing.T) { endedContext(t, newTarget(t)) })
	t.Run("Closed", func(t *testing.T) { closed(t, newTarget(t)) })
}

func msg(key string, i int) kafka.Message {
	return kafka.Message{Key: []byte(key), Value: []byte(key + "/" + strconv.Itoa(i))}
}

// storedWhenAcknowledged: what Publish acknowledged is stored when it
// returns (the Worker commits the batch's offsets then).
func storedWhenAcknowledged(t *testing.T, tg Target) {
	defer closeSink(t, tg.Sink)
	var want []kafka.Message
	for i := range 20 {
		want = append(want, msg("k"+strconv.Itoa(i%3), i))
	}
	if err := tg.Sink.Publish(context.Background(), want...); err != nil {
		t.Fatal(err)
	}
	if got := values(tg.Stored(t)); !sameSet(got, values(want)) {
		t.Fatalf("stored %v after Publish returned, want %v", got, values(want))
	}
}

// keyOrder: each key's messages are stored in publish order, over several
// Publish calls (a user's lists must not arrive out of order).
func keyOrder(t *testing.T, tg Target) {
	defer closeSink(t, tg.Sink)
	keys := []string{"alice", "bob", "carol", "dave", "erin"}
	n := 0
	for round := range 4 {
		var msgs []kafka.Message
		for i := range 10 {
			msgs = append(msgs, msg(keys[(round+i)%len(keys)], n))
			n++
		}
		if err := tg.Sink.Publish(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	last := map[string]int{}
	stored := tg.Stored(t)
	if len(stored) != n {
		t.Fatalf("stored %d messages, want %d", len(stored), n)
	}
	for _, m := range stored {
		var i int
		if _, err := fmt.Sscanf(string(m.Value[len(m.Key)+1:]), "%d", &i); err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[string(m.Key)]; ok && i <= prev {
			t.Fatalf("key %s: message %d stored after %d", m.Key, i, prev)
		}
		last[string(m.Key)] = i
	}
}

// keysValuesHeaders: a message is stored as published, headers included
// (trace context and dead-letter reasons travel in them).
func keysValuesHeaders(t *testing.T, tg Target) {
	defer closeSink(t, tg.Sink)
	m := kafka.Message{Key: []byte("u1"), Value: []byte(`{"x":1}`), Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-1-2-01")}, {Key: "a", Value: []byte("b")}}}
	if err := tg.Sink.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	stored := tg.Stored(t)
	if len(stored) != 1 {
		t.Fatalf("stored %d messages, want 1", len(stored))
	}
	got := stored[0]
	if string(got.Key) != "u1" || string(got.Value) != `{"x":1}` || len(got.Headers) != 2 ||
		got.Headers[0].Key != "traceparent" || string(got.Headers[0].Value) != "00-1-2-01" || got.Headers[1].Key != "a" {
		t.Fatalf("stored %q=%q %v, want the message as published", got.Key, got.Value, got.Headers)
	}
}

// emptyPublish: publishing nothing succeeds (a batch without dead letters
// or decisions).
func emptyPublish(t *testing.T, tg Target) {
	defer closeSink(t, tg.Sink)
	if err := tg.Sink.Publish(context.Background()); err != nil {
		t.Fatalf("publishing nothing: %v", err)
	}
}

// endedContext: Publish under a context that has ended returns its error
// (the Worker's shutdown deadline bounds every publish).
func endedContext(t *testing.T, tg Target) {
	defer closeSink(t, tg.Sink)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tg.Sink.Publish(ctx, msg("k", 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("publishing under a cancelled context returned %v, want context.Canceled", err)
	}
}

// closed: Close keeps what was acknowledged; Publish afterwards fails with
// sink.ErrClosed instead of blocking or retrying.
func closed(t *testing.T, tg Target) {
	if err := tg.Sink.Publish(context.Background(), msg("k", 1)); err != nil {
		t.Fatal(err)
	}
	if err := tg.Sink.Close(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	if err := tg.Sink.Publish(context.Background(), msg("k", 2)); !errors.Is(err, sink.ErrClosed) {
		t.Fatalf("publishing on a closed sink returned %v, want sink.ErrClosed", err)
	}
	if got := values(tg.Stored(t)); len(got) != 1 || got[0] != "k/1" {
		t.Fatalf("stored %v after Close, want [k/1]", got)
	}
}

func closeSink(t *testing.T, s sink.Sink) {
	if err := s.Close(); err != nil {
		t.Errorf("closing: %v", err)
	}
}

func values(msgs []kafka.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Value)
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		if count[s]--; count[s] < 0 {
			return false
		}
	}
	return true
}
