package pipeline_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/sink"
)

// The shutdown deadline bounds snapshot publication: a worker whose
// snapshot is never acknowledged (the broker swallows every produce
// request to the snapshot topic) still returns once worker.shutdown_timeout
// has passed after ctx ends, with ErrShutdownDeadline. The worker's outputs
// are Memory sinks: only the snapshot goes to the broker.
func TestShutdownDeadlineBoundsSnapshotPublication(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := smallDQN(t, kafkatest.Target{Name: "kfake", Brokers: c.ListenAddrs()})
	cfg.Snapshot.EveryBatches, cfg.Snapshot.OnShutdown, cfg.Snapshot.Restore = 1, false, false
	cfg.Snapshot.OrderTopic = ""
	cfg.Worker.ShutdownTimeout = time.Second
	kafkatest.CreateTopics(t, cfg)
	swallowed := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, topic := range req.(*kmsg.ProduceRequest).Topics {
			if topic.Topic == cfg.Snapshot.Topic {
				c.KeepControl()
				once.Do(func() { close(swallowed) })
				return nil, nil, true // never answered
			}
		}
		return nil, nil, false
	})
	lines, _ := kafkatest.Events(50, 0, 10, 3)
	produce(t, cfg, lines)

	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs := sink.NewMemory()
	w := pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, pipeline.Outputs{Recs: recs, DLQ: sink.NewMemory(), Decisions: sink.NewMemory()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	guard := time.After(2 * time.Minute) // a test guard, not the bound under test
	select {
	case <-swallowed:
	case err := <-done:
		t.Fatalf("Run returned %v before publishing a snapshot", err)
	case <-guard:
		t.Fatal("no snapshot was published")
	}
	if got := len(recs.Messages()); got == 0 {
		t.Fatal("a snapshot was published before its batch's lists")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, pipeline.ErrShutdownDeadline) {
			t.Fatalf("Run returned %v, want ErrShutdownDeadline", err)
		}
	case <-guard:
		t.Fatal("Run did not return: the shutdown deadline does not bound snapshot publication")
	}
}
