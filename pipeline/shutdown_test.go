package pipeline_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/adaptrec/adaptrec/configs"
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
	c, cfg := swallowingCluster(t)
	cfg.Snapshot.EveryBatches, cfg.Snapshot.OnShutdown = 1, false
	swallowed := swallowSnapshots(c, cfg.Snapshot.Topic)
	lines, _ := kafkatest.Events(50, 0, 10, 3)
	produce(t, cfg, lines)

	recs := sink.NewMemory()
	done, cancel := runOnMemory(t, cfg, recs, kafkatest.Logger(t))
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

// The final snapshot (snapshot.on_shutdown) is bounded by the same
// deadline as the drain, not a timeout of its own: a worker whose final
// snapshot is never acknowledged returns ErrShutdownDeadline, and the
// publication it logs as failed was ended by that deadline.
func TestShutdownDeadlineBoundsFinalSnapshot(t *testing.T) {
	c, cfg := swallowingCluster(t)
	cfg.Snapshot.EveryBatches, cfg.Snapshot.OnShutdown = 0, true
	swallowed := swallowSnapshots(c, cfg.Snapshot.Topic)
	lines, _ := kafkatest.Events(50, 0, 10, 3)
	produce(t, cfg, lines)

	recs, failed := sink.NewMemory(), &failedSnapshots{}
	done, cancel := runOnMemory(t, cfg, recs, slog.New(failed))
	guard, stopGuard := context.WithTimeout(context.Background(), 2*time.Minute) // a test guard, not the bound under test
	defer stopGuard()
	if _, err := recs.Wait(guard, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, pipeline.ErrShutdownDeadline) {
			t.Fatalf("Run returned %v, want ErrShutdownDeadline: the final snapshot is not bounded by the shutdown deadline", err)
		}
	case <-guard.Done():
		t.Fatal("Run did not return")
	}
	select {
	case <-swallowed:
	default:
		t.Fatal("Run returned without publishing the final snapshot")
	}
	if errs := failed.all(); len(errs) != 1 || !errors.Is(errs[0], pipeline.ErrShutdownDeadline) {
		t.Fatalf("failed snapshot publications %v, want one ended by ErrShutdownDeadline", errs)
	}
}

// failedSnapshots is a slog.Handler that keeps the errors of the
// "publishing snapshot" records.
type failedSnapshots struct {
	mu   sync.Mutex
	errs []error
}

func (f *failedSnapshots) Enabled(context.Context, slog.Level) bool { return true }

func (f *failedSnapshots) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "publishing snapshot" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
			f.mu.Lock()
			f.errs = append(f.errs, err)
			f.mu.Unlock()
		}
		return true
	})
	return nil
}

func (f *failedSnapshots) WithAttrs([]slog.Attr) slog.Handler { return f }
func (f *failedSnapshots) WithGroup(string) slog.Handler      { return f }

func (f *failedSnapshots) all() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errs)
}

// A stage that fails before ctx ends starts the shutdown too: the snapshot
// in flight is bounded by the same deadline, and Run returns
// ErrShutdownDeadline (naming the stage's error) instead of waiting for it
// for ever.
func TestShutdownDeadlineBoundsSnapshotAfterAFailedStage(t *testing.T) {
	c, cfg := swallowingCluster(t)
	cfg.Snapshot.EveryBatches, cfg.Snapshot.OnShutdown = 1, false
	swallowed := swallowSnapshots(c, cfg.Snapshot.Topic)
	lines, _ := kafkatest.Events(50, 0, 10, 3)
	produce(t, cfg, lines)

	recs := sink.NewMemory()
	done, _ := runOnMemory(t, cfg, recs, kafkatest.Logger(t))
	guard := time.After(2 * time.Minute) // a test guard, not the bound under test
	select {
	case <-swallowed:
	case err := <-done:
		t.Fatalf("Run returned %v before publishing a snapshot", err)
	case <-guard:
		t.Fatal("no snapshot was published")
	}
	recs.Fail(errors.New("recommendations sink down"))
	more, _ := kafkatest.Events(50, 100, 10, 4)
	produce(t, cfg, more) // their lists fail to publish: the publish stage fails
	select {
	case err := <-done:
		if !errors.Is(err, pipeline.ErrShutdownDeadline) {
			t.Fatalf("Run returned %v, want ErrShutdownDeadline", err)
		}
	case <-guard:
		t.Fatal("Run did not return: a failed stage does not start the shutdown deadline")
	}
}

// swallowingCluster returns a kfake cluster and a small DQN worker's
// config on it, whose topics exist, that neither restores nor records an
// order, with a shutdown deadline of a second.
func swallowingCluster(t *testing.T) (*kfake.Cluster, configs.Config) {
	t.Helper()
	awaitBackgroundClose(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := smallDQN(t, kafkatest.Target{Name: "kfake", Brokers: c.ListenAddrs()})
	cfg.Snapshot.Restore = false
	cfg.Snapshot.OrderTopic = ""
	cfg.Worker.ShutdownTimeout = time.Second
	kafkatest.CreateTopics(t, cfg)
	return c, cfg
}

// awaitBackgroundClose makes the test wait, at its very end, until the
// goroutines it started have ended: past the deadline, Run leaves the
// snapshot writer closing in the background (kafka-go's Writer.Close waits
// for the write in flight), which ends by the writer's own retries once the
// cluster is closed.
func awaitBackgroundClose(t *testing.T) {
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, libraryGoroutines...)
	t.Cleanup(func() { // registered first, so it runs last
		guard := time.Now().Add(time.Minute) // a test guard
		for {
			err := goleak.Find(opts...)
			if err == nil {
				return
			}
			if time.Now().After(guard) {
				t.Error(err)
				return
			}
		}
	})
}

// swallowSnapshots makes c swallow every produce request to topic (never
// answered); the returned channel closes at the first.
func swallowSnapshots(c *kfake.Cluster, topic string) <-chan struct{} {
	swallowed := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == topic {
				c.KeepControl()
				once.Do(func() { close(swallowed) })
				return nil, nil, true // never answered
			}
		}
		return nil, nil, false
	})
	return swallowed
}

// runOnMemory runs a worker of cfg's model whose outputs are Memory sinks
// (recs its recommendations), logging to log, until cancel; done receives
// Run's error.
func runOnMemory(t *testing.T, cfg configs.Config, recs *sink.Memory, log *slog.Logger) (done <-chan error, cancel func()) {
	t.Helper()
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.NewWorker(cfg, log, rec, nil, pipeline.Outputs{Recs: recs, DLQ: sink.NewMemory(), Decisions: sink.NewMemory()})
	ctx, cancelRun := context.WithCancel(context.Background())
	t.Cleanup(cancelRun)
	errs := make(chan error, 1)
	go func() { errs <- w.Run(ctx) }()
	return errs, cancelRun
}
