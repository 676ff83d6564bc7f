package sink_test

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/sink"
	"github.com/adaptrec/adaptrec/sink/sinktest"
)

// The Kafka sink passes the Sink conformance suite on the in-process
// broker and, when KAFKA_TEST_BROKERS is set, on the real one.
func TestKafkaConformance(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Target {
				topic := kafkatest.Name(t, "sink")
				kafkatest.CreateTopic(t, target.Brokers, topic, 3)
				k := sink.NewKafka(sink.WriterConfig{Brokers: target.Brokers, Topic: topic, BatchTimeout: 2 * time.Millisecond,
					BatchSize: 100, WriteTimeout: 30 * time.Second, MaxAttempts: 5})
				return sinktest.Target{Sink: k, Stored: func(t *testing.T) []kafka.Message { return kafkatest.ReadAll(t, target.Brokers, topic) }}
			})
		})
	}
}
