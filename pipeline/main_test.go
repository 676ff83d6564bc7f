package pipeline_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// TestMain fails the package's tests if a goroutine outlives them. The
// connection pools of kafka-go Transports are ignored: a kafkaconn.Conn
// keeps its admin clients' pool (discover, and a run per connection) for
// as long as it lives, and has no Close, and the tests make many Conns
// (kafkaconn.Plain) for the snapshot, replay and rewind helpers. The sink
// package checks without this exception that a closed sink leaves no pool.
func TestMain(m *testing.M) {
	kafkatest.Main(m,
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"))
}
