package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// panicky learns normally until it sees the poisoned user, then panics.
type panicky struct{ model.Recommender }

func (p panicky) Learn(ctx context.Context, b *feedback.Batch) ([]model.Recommendation, error) {
	for i := range b.Len() {
		if b.UserID(i) == "poison" {
			panic("boom")
		}
	}
	return p.Recommender.Learn(ctx, b)
}

// A panic in the model stops the worker with an error naming the batch's
// offsets, and that batch is not committed: a restart reads it again.
func TestWorkerModelPanicIsNotCommitted(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Topics.Partitions = 1
			kafkatest.CreateTopics(t, cfg)
			lines, _ := kafkatest.Events(300, 0, 30, 9)
			produce(t, cfg, lines)
			rec, _ := wire.Model(cfg)
			w := pipeline.NewWorker(cfg, kafkatest.Logger(t), panicky{rec}, nil, kafkatest.Outputs(t, cfg))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 60*time.Second)

			poison := []byte(`{"user_id":"poison","item_id":"i1","type":"click","ts":"2026-11-28T10:00:00Z"}`)
			produce(t, cfg, [][]byte{poison})
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("worker kept running after the model panicked")
			}
			if err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), cfg.Topics.Feedback+"/0@300") {
				t.Fatalf("error %v does not name the panic and the batch's offsets", err)
			}
			committed, _ := pipeline.CommittedOffsets(context.Background(), kafkatest.Client(cfg.Kafka.Brokers), cfg.Kafka.Group, cfg.Topics.Feedback)
			if committed[0] != 300 {
				t.Fatalf("committed %d, want 300: the panicking batch must not be committed", committed[0])
			}
		})
	}
}

// The worker creates missing topics with the configured partition count.
func TestWorkerCreatesTopics(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Topics.Partitions = 4
			_, stop := startWorker(t, cfg)
			client := kafkatest.Client(cfg.Kafka.Brokers)
			deadline := time.Now().Add(30 * time.Second)
			for _, topic := range []string{cfg.Topics.Feedback, cfg.Topics.Recommendations, cfg.Topics.DLQ} {
				for {
					parts, err := pipeline.Partitions(context.Background(), client, topic)
					if err == nil && len(parts) == 4 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("topic %s: partitions %v, err %v; want 4 partitions", topic, parts, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			// With creation off, a missing topic is an error naming it.
			cfg2 := kafkatest.Config(t, target)
			cfg2.Topics.Create = false
			rec, _ := wire.Model(cfg2)
			err := pipeline.NewWorker(cfg2, kafkatest.Logger(t), rec, nil, kafkatest.Outputs(t, cfg2)).Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), cfg2.Topics.Feedback) || !strings.Contains(err.Error(), "topics.create") {
				t.Fatalf("missing topic with topics.create=false: %v", err)
			}
		})
	}
}
