package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/sink"
)

// A worker publishes to the outputs it is given: its lists and dead
// letters arrive in Memory sinks, and an output that fails stops it
// without committing the batch.
func TestWorkerPublishesToItsOutputs(t *testing.T) {
	targets := kafkatest.Targets(t)
	target := targets[len(targets)-1] // the in-process broker
	cfg := kafkatest.Config(t, target)
	cfg.Snapshot.OrderTopic = ""
	kafkatest.CreateTopics(t, cfg)
	lines, bad := kafkatest.Events(100, 10, 20, 5)
	produce(t, cfg, lines)
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := pipeline.Outputs{Recs: sink.NewMemory(), DLQ: sink.NewMemory(), Decisions: sink.NewMemory()}
	w := pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	wait, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	dead, err := out.DLQ.(*sink.Memory).Wait(wait, len(bad))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range dead {
		if want, ok := bad[string(m.Value)]; !ok || kafkatest.Header(m, sink.HeaderErrorClass) != string(want) {
			t.Fatalf("dead letter %q has class %q, want %q", m.Value, kafkatest.Header(m, sink.HeaderErrorClass), want)
		}
	}
	if _, err := out.Recs.(*sink.Memory).Wait(wait, 1); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, time.Minute)

	down := errors.New("recommendations sink down")
	out.Recs.(*sink.Memory).Fail(down)
	more, _ := kafkatest.Events(10, 0, 20, 6)
	produce(t, cfg, more)
	select {
	case err := <-done:
		if !errors.Is(err, down) {
			t.Fatalf("Run returned %v, want the output's failure", err)
		}
	case <-wait.Done():
		t.Fatal("Run went on after its output failed")
	}
	if lag := committedLag(t, cfg); lag != int64(len(more)) {
		t.Fatalf("%d events uncommitted after the failed publish, want %d", lag, len(more))
	}
}

// committedLag is how many messages of cfg's feedback topic its group has
// not committed.
func committedLag(t *testing.T, cfg configs.Config) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := kafkatest.Client(cfg.Kafka.Brokers)
	ends, err := pipeline.EndOffsets(ctx, client, cfg.Topics.Feedback)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := pipeline.CommittedOffsets(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback)
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	for p, end := range ends {
		lag += end - max(committed[p], 0)
	}
	return lag
}
