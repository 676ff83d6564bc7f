package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/feedback"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

func snapshotBlob(t *testing.T, events int) []byte {
	t.Helper()
	cfg := model.DefaultDQN()
	cfg.Rows = 32
	d, err := model.NewDQN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var evs []feedback.Located
	for i := range events {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%17), ItemID: fmt.Sprint("i", (i*13)%4000),
			Type: feedback.Click, TS: time.Unix(int64(i), 0)}})
	}
	b := feedback.BatchOf(evs...)
	defer b.Release()
	if _, err := d.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := d.WriteSnapshot(&buf, model.SnapshotMeta{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Snapshots larger than a Kafka message travel in chunks on a compacted
// topic. The newest complete, verified snapshot is loaded; one whose
// publication was cut short (a crash) or whose bytes were damaged is
// reported and skipped for the one before it.
func TestSnapshotTopic(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			topic := kafkatest.Name(t, "snapshots")
			ctx := context.Background()
			err := pipeline.EnsureTopics(ctx, kafkatest.Client(cfg.Kafka.Brokers),
				[]pipeline.TopicSpec{{Name: topic, Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact"}}},
				true, kafkatest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			w := pipeline.SnapshotWriter(cfg.Kafka.Brokers, topic, "test")
			defer w.Close()
			good := snapshotBlob(t, 3000)
			if len(good) <= pipeline.SnapshotChunk {
				t.Fatalf("the snapshot (%d bytes) fits in one chunk: the test would not exercise chunking", len(good))
			}
			publish := func(msgs []kafka.Message) {
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					t.Fatal(err)
				}
			}
			publish(pipeline.SnapshotMessages("g", "0001", good))
			publish(pipeline.SnapshotMessages("other", "0002", snapshotBlob(t, 100)))
			cut := pipeline.SnapshotMessages("g", "0003", good)
			publish(cut[:len(cut)-1]) // killed during publication
			damaged := pipeline.SnapshotMessages("g", "0004", good)
			v := bytes.Clone(damaged[1].Value)
			v[rand.IntN(len(v))] ^= 0x40
			damaged[1].Value = v
			publish(damaged)

			all, err := pipeline.ListSnapshots(ctx, cfg.Kafka.Brokers, topic, "g")
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 3 || !all[0].Complete || all[1].Complete || all[2].Complete || all[0].Chunks < 2 {
				t.Fatalf("listed %+v", all)
			}
			var logged strings.Builder
			snap, from, err := pipeline.LoadNewestSnapshot(ctx, cfg.Kafka.Brokers, topic, "g", kafkatest.LoggerTo(&logged))
			if err != nil {
				t.Fatal(err)
			}
			if snap == nil || from.ID != "0001" {
				t.Fatalf("loaded %+v", from)
			}
			for _, id := range []string{"0003", "0004"} {
				if !strings.Contains(logged.String(), "snapshot="+id) {
					t.Errorf("skipping snapshot %s was not logged:\n%s", id, logged.String())
				}
			}
			if !bytes.Equal(all[0].Blob(), good) {
				t.Fatal("reassembled snapshot differs from the one published")
			}
		})
	}
}
