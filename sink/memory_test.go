package sink_test

import (
	"context"
	"errors"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/sink"
	"github.com/adaptrec/adaptrec/sink/sinktest"
)

func TestMemoryConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Target {
		m := sink.NewMemory()
		return sinktest.Target{Sink: m, Stored: func(*testing.T) []kafka.Message { return m.Messages() }}
	})
}

// A Memory sink made to fail stores nothing and returns the error, until
// it is told to acknowledge again.
func TestMemoryFail(t *testing.T) {
	m := sink.NewMemory()
	down := errors.New("broker down")
	m.Fail(down)
	if err := m.Publish(context.Background(), kafka.Message{Value: []byte("a")}); !errors.Is(err, down) {
		t.Fatalf("got %v, want the failure", err)
	}
	m.Fail(nil)
	if err := m.Publish(context.Background(), kafka.Message{Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if got := m.Messages(); len(got) != 1 || string(got[0].Value) != "b" {
		t.Fatalf("stored %v, want only b", got)
	}
}
