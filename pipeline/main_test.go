package pipeline_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// TestMain fails the package's tests if a goroutine outlives them, except
// for two kinds of library goroutines that outlive their owners by design:
//
//   - the connection pools of kafka-go Transports (discover, and a run per
//     connection): a kafkaconn.Conn keeps its admin clients' pool as long as
//     it lives and has no Close, and the tests make many Conns for the
//     snapshot, replay and rewind helpers. The sink package checks without
//     this exception that a closed sink leaves no pool.
//   - the keep-alive connections of otel's OTLP/HTTP trace exporter
//     (otlptracehttp's package-level transport, whose idle connections its
//     Shutdown does not close), from the tracing tests.
func TestMain(m *testing.M) {
	kafkatest.Main(m, libraryGoroutines...)
}

// libraryGoroutines are the goroutines TestMain lets outlive the tests.
var libraryGoroutines = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
	goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
}
