package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// A user whose events arrive on more than one partition (a producer with
// another partitioner than murmur2 of the user id) is counted once in
// adaptrec_users_split_partitions_total and named in a warning; users
// whose events stay on one partition are not counted.
func TestUsersSplitAcrossPartitions(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			kafkatest.CreateTopics(t, cfg)
			at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
			var msgs []kafka.Message
			put := func(user string, partitions ...int) {
				for i, p := range partitions {
					at = at.Add(time.Second)
					ev := feedback.Encode(feedback.Event{UserID: user, ItemID: fmt.Sprint("i", i), Type: feedback.Click, TS: at})
					msgs = append(msgs, kafka.Message{Key: []byte(user), Value: ev, Partition: p})
				}
			}
			put("split-three", 0, 0, 1, 2, 0) // counted once
			put("split-two", 3, 4, 4)
			put("home", 5, 5, 5, 5)
			wr := &kafka.Writer{Addr: kafka.TCP(cfg.Kafka.Brokers...), Topic: cfg.Topics.Feedback, RequiredAcks: kafka.RequireAll,
				Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition })}
			if err := wr.WriteMessages(context.Background(), msgs...); err != nil {
				t.Fatal(err)
			}
			wr.Close()
			lines, _ := kafkatest.Events(300, 0, 40, 5) // keyed by user, murmur2
			produce(t, cfg, lines)

			metrics, err := telemetry.NewMetrics(cfg.Metrics.QualityWindow)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := telemetry.Serve("127.0.0.1:0", metrics, nil, kafkatest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close(context.Background())
			rec, err := wire.Model(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			w := pipeline.NewWorker(cfg, kafkatest.LoggerTo(&logs), rec, nil, kafkatest.Outputs(t, cfg))
			w.Instrument(nil, metrics, nil)
			runUntilCommitted(t, w, cfg, 60*time.Second, nil)
			fams := kafkatest.Scrape(t, "http://"+srv.Addr())
			if got := sum(fams["adaptrec_users_split_partitions_total"]); got != 2 {
				t.Errorf("adaptrec_users_split_partitions_total %v, want 2 (split-three, split-two)", got)
			}
			out := logs.String()
			if !strings.Contains(out, "more than one partition") || !strings.Contains(out, "murmur2") ||
				!(strings.Contains(out, "user=split-three") || strings.Contains(out, "user=split-two")) {
				t.Errorf("no warning naming a split user and the partitioner to use:\n%s", out)
			}
			if strings.Contains(out, "user=home") {
				t.Errorf("a user whose events stayed on one partition was reported:\n%s", out)
			}
		})
	}
}
