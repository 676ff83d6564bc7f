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
	r := runSwallowing(t, 1, false, kafkatest.Logger(t))
	guard := time.After(2 * time.Minute) // a test guard, not the bound under test
	r.waitSwallowed(t, guard)
	recs, done, cancel := r.recs, r.done, r.cancel
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
	failed := &failedSnapshots{}
	r := runSwallowing(t, 0, true, slog.New(failed))
	recs, done, cancel, swallowed := r.recs, r.done, r.cancel, r.swallowed
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
	r := runSwallowing(t, 1, false, kafkatest.Logger(t))
	guard := time.After(2 * time.Minute) // a test guard, not the bound under test
	r.waitSwallowed(t, guard)
	r.recs.Fail(errors.New("recommendations sink down"))
	more, _ := kafkatest.Events(50, 100, 10, 4)
	produce(t, r.cfg, more) // their lists fail to publish: the publish stage fails
	select {
	case err := <-r.done:
		if !errors.Is(err, pipeline.ErrShutdownDeadline) {
			t.Fatalf("Run returned %v, want ErrShutdownDeadline", err)
		}
	case <-guard:
		t.Fatal("Run did not return: a failed stage does not start the shutdown deadline")
	}
}

// swallowing is a worker of a small DQN, its outputs Memory sinks, on a
// kfake cluster that swallows every produce request to its snapshot
// topic: swallowed closes at the first.
type swallowing struct {
	cfg       configs.Config
	recs      *sink.Memory // the worker's recommendations
	swallowed <-chan struct{}
	done      <-chan error // Run's error
	cancel    func()       // ends Run's ctx
}

// runSwallowing runs a swallowing worker over 50 events that snapshots
// every everyBatches batches and at shutdown if onShutdown, logging to
// log, with a shutdown deadline of a second; it neither restores nor
// records an order.
func runSwallowing(t *testing.T, everyBatches int, onShutdown bool, log *slog.Logger) *swallowing {
	t.Helper()
	awaitBackgroundClose(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := smallDQN(t, kafkatest.Target{Name: "kfake", Brokers: c.ListenAddrs()})
	cfg.Snapshot.EveryBatches, cfg.Snapshot.OnShutdown, cfg.Snapshot.Restore = everyBatches, onShutdown, false
	cfg.Snapshot.OrderTopic = ""
	cfg.Worker.ShutdownTimeout = time.Second
	kafkatest.CreateTopics(t, cfg)
	r := &swallowing{cfg: cfg, recs: sink.NewMemory(), swallowed: swallowSnapshots(c, cfg.Snapshot.Topic)}
	lines, _ := kafkatest.Events(50, 0, 10, 3)
	produce(t, cfg, lines)
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.NewWorker(cfg, log, rec, nil, pipeline.Outputs{Recs: r.recs, DLQ: sink.NewMemory(), Decisions: sink.NewMemory()})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	r.done, r.cancel = done, cancel
	return r
}

// waitSwallowed waits until the worker has published a snapshot, failing
// the test if Run returns first or guard passes.
func (r *swallowing) waitSwallowed(t *testing.T, guard <-chan time.Time) {
	t.Helper()
	select {
	case <-r.swallowed:
	case err := <-r.done:
		t.Fatalf("Run returned %v before publishing a snapshot", err)
	case <-guard:
		t.Fatal("no snapshot was published")
	}
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
