package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/sink"
)

func newSink(brokers []string, topic string) *sink.Kafka {
	return sink.NewKafka(sink.WriterConfig{Brokers: brokers, Topic: topic, BatchTimeout: 2 * time.Millisecond, BatchSize: 1000, WriteTimeout: 30 * time.Second, MaxAttempts: 10})
}

func bytesReader(lines [][]byte) io.Reader { return bytes.NewReader(kafkatest.JSONL(lines)) }

// produceB publishes lines unthrottled through the produce path.
func produceB(tb testing.TB, brokers []string, topic string, lines [][]byte) {
	tb.Helper()
	out := newSink(brokers, topic)
	defer out.Close()
	res, err := pipeline.Produce(context.Background(), out, bytesReader(lines), pipeline.ProduceOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	if res.Sent != len(lines) {
		tb.Fatalf("sent %d of %d", res.Sent, len(lines))
	}
}

// members lists the member ids of cfg's group that hold partitions.
func members(tb testing.TB, cfg configs.Config) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kafkatest.Client(cfg.Kafka.Brokers).DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{cfg.Kafka.Group}})
	if err != nil {
		return nil
	}
	var out []string
	for _, g := range resp.Groups {
		for _, m := range g.Members {
			if len(m.MemberAssignments.Topics) > 0 {
				out = append(out, m.MemberID)
			}
		}
	}
	return out
}
