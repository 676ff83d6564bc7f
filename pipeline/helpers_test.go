package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
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

// syncBuffer is a log the test reads while the worker writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) contains(sub string) bool { return strings.Contains(s.String(), sub) }

// runUntilCommitted runs w until its group has committed the end of cfg's
// feedback topic, as cfg's brokers tell (within wait), then stops it; Run
// must return nil. With health, it first waits until w has joined its
// group, which implies restored: the snapshot is loaded before the reader
// joins.
func runUntilCommitted(t *testing.T, w *pipeline.Worker, cfg configs.Config, wait time.Duration, health *telemetry.Health) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for deadline := time.Now().Add(60 * time.Second); health != nil && health.Check(ctx)["group"] != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not join its group in 60s")
		}
	}
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, wait)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// runDQNToCommitted runs a worker of cfg, a DQN, until it has joined its
// group and the group has committed the end of the feedback topic, as
// committedOn's brokers tell (within wait); it returns the model and the
// stopped worker.
func runDQNToCommitted(t *testing.T, cfg, committedOn configs.Config, wait time.Duration) (*model.DQN, *pipeline.Worker) {
	t.Helper()
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, kafkatest.Outputs(t, cfg))
	health := &telemetry.Health{}
	w.Instrument(nil, nil, health)
	runUntilCommitted(t, w, committedOn, wait, health)
	return rec.(*model.DQN), w
}

// producedFeedback makes target's topics for a fresh config and produces
// n valid events of users users to its feedback topic; it returns the
// config, an admin client and the ends of the feedback partitions.
func producedFeedback(t *testing.T, target kafkatest.Target, n, users int) (configs.Config, *kafka.Client, map[int]int64) {
	t.Helper()
	cfg := kafkatest.Config(t, target)
	kafkatest.CreateTopics(t, cfg)
	lines, _ := kafkatest.Events(n, 0, users, 3)
	produce(t, cfg, lines)
	client := kafkatest.Client(cfg.Kafka.Brokers)
	ends, err := pipeline.EndOffsets(context.Background(), client, cfg.Topics.Feedback)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, client, ends
}

// serveToCommitted runs a worker of cfg until its group has committed the
// end of the feedback topic (within wait), then stops it; the stop must
// be clean. It returns the stopped worker.
func serveToCommitted(t *testing.T, cfg configs.Config, wait time.Duration) *pipeline.Worker {
	t.Helper()
	w, stop := startWorker(t, cfg)
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, wait)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return w
}

// snapshottingDQN is smallDQN in batches of 50 that snapshots every 4
// batches and keeps 100 snapshots (the tests pick one part way through),
// with its topics made.
func snapshottingDQN(t *testing.T, target kafkatest.Target) configs.Config {
	t.Helper()
	cfg := smallDQN(t, target)
	cfg.Batch.Size = 50
	cfg.Snapshot.EveryBatches = 4
	cfg.Snapshot.Keep = 100
	kafkatest.CreateTopics(t, cfg)
	return cfg
}

// snapshottedRun runs one worker of snapshottingDQN over 1,500 events to
// the end; it returns the config, the events and the checksum of the
// model the worker reached.
func snapshottedRun(t *testing.T, target kafkatest.Target) (configs.Config, [][]byte, uint64) {
	t.Helper()
	cfg := snapshottingDQN(t, target)
	lines, _ := kafkatest.Events(1500, 0, 150, 21)
	produce(t, cfg, lines)
	first, _ := runReplicas(t, cfg, "worker")
	return cfg, lines, first[0].(*model.DQN).Checksum()
}
