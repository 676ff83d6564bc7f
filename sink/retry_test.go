package sink_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/sink"
)

// A failed write is retried when what failed can pass (a broker down,
// leadership moving, too few replicas in sync), never when a retry cannot
// cure it, and never after the deadline.
func TestRetriable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("kafka.(*Client).Produce: %w", refused), true},
		{kafka.NotLeaderForPartition, true},
		{kafka.LeaderNotAvailable, true},
		{kafka.NotEnoughReplicas, true},
		{kafka.RequestTimedOut, true},
		{kafka.BrokerNotAvailable, true},
		{kafka.WriteErrors{nil, kafka.NotLeaderForPartition, refused}, true},
		{kafka.MessageSizeTooLarge, false},
		{kafka.TopicAuthorizationFailed, false},
		{kafka.WriteErrors{kafka.NotLeaderForPartition, kafka.MessageSizeTooLarge}, false},
		{context.DeadlineExceeded, false},
		{context.Canceled, false},
		{nil, false},
	} {
		if got := sink.Retriable(c.err); got != c.want {
			t.Errorf("Retriable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if sink.Retriable(errors.Join(kafka.NotLeaderForPartition, context.DeadlineExceeded)) {
		t.Error("an error past the deadline is retried")
	}
}
