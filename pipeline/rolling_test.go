package pipeline_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// learnClock is the DQN with the time it was first handed a batch.
type learnClock struct {
	*model.DQN
	first atomic.Int64 // Unix nanoseconds; 0: nothing learned yet
}

func (d *learnClock) Learn(ctx context.Context, b *feedback.Batch) ([]model.Recommendation, error) {
	d.first.CompareAndSwap(0, time.Now().UnixNano())
	return d.DQN.Learn(ctx, b)
}

// replica is a running worker of a replica group.
type replica struct {
	w       *pipeline.Worker
	clock   *learnClock
	started time.Time
	stop    func() error // stops it (once) and returns Run's error
}

// startReplica starts a DQN worker named name and returns once it has
// joined the group (it restores its snapshot before it joins).
func startReplica(tb testing.TB, cfg configs.Config, name string) *replica {
	tb.Helper()
	cfg.Snapshot.Replica = name
	rec, err := wire.Model(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	r := &replica{clock: &learnClock{DQN: rec.(*model.DQN)}, started: time.Now()}
	r.w = pipeline.NewWorker(cfg, kafkatest.Logger(tb).With("replica", name), r.clock, nil, kafkatest.Outputs(tb, cfg))
	health := &telemetry.Health{}
	r.w.Instrument(nil, nil, health)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx) }()
	r.stop = sync.OnceValue(func() error { cancel(); return <-done })
	tb.Cleanup(func() { _ = r.stop() })
	for deadline := time.Now().Add(2 * time.Minute); health.Check(ctx)["group"] != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("replica %s did not join its group in 2m", name)
		}
	}
	return r
}

// rollingConfig is a replica group of small DQNs whose replicas publish
// snapshots only when they stop, as in issue 12's incident: the peer of
// the restarted worker had published none yet (snapshot.interval not yet
// due), so the restarted worker's own snapshot says it was alone, and it
// reads the recorded order.
func rollingConfig(tb testing.TB, target kafkatest.Target) configs.Config {
	cfg := kafkatest.Config(tb, target)
	cfg.Recommender.Model = "dqn"
	cfg.Recommender.DQN.Hidden = []int{16}
	cfg.Recommender.DQN.Rows = 32
	cfg.Batch.Size = 64
	cfg.Snapshot.Interval, cfg.Snapshot.EveryBatches, cfg.Snapshot.Idle = 0, 0, 0
	return cfg
}

// waitMembers waits until n members of cfg's group hold partitions.
func waitMembers(tb testing.TB, cfg configs.Config, n int) {
	tb.Helper()
	for deadline := time.Now().Add(time.Minute); len(members(tb, cfg)) < n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d members did not all get partitions in 1m", n)
		}
	}
}

// TestRollingRestartDoesNotWaitForThePeersPartitions (issue 12): two
// replicas share a group; one is stopped mid-stream and started again.
// Its snapshot says it was alone, so it reads the recorded order; the
// group assigns it only some of the partitions, so it gives the order up
// instead of holding its partitions back for partitions it does not own,
// and the events after the restart get their lists.
func TestRollingRestartDoesNotWaitForThePeersPartitions(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := rollingConfig(t, target)
			kafkatest.CreateTopics(t, cfg)
			lines, _ := kafkatest.Events(3000, 0, 200, 12)
			a := startReplica(t, cfg, "replica-a")
			b := startReplica(t, cfg, "replica-b")
			waitMembers(t, cfg, 2)
			produce(t, cfg, lines[:1000])
			kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 5*time.Minute)
			if err := b.stop(); err != nil {
				t.Fatal(err)
			}
			produce(t, cfg, lines[1000:2000]) // a takes over b's partitions meanwhile
			b = startReplica(t, cfg, "replica-b")
			produce(t, cfg, lines[2000:])
			kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 5*time.Minute)
			for _, r := range []*replica{a, b} {
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
			}

			if got := b.w.Restored(); got.Replica != "replica-b" || got.Replicas != 1 {
				t.Fatalf("the restarted replica restored a snapshot of %q written among %d replicas: the test needs its own, written alone", got.Replica, got.Replicas)
			}
			order := b.w.Order()
			t.Logf("the restarted replica's order: %+v; it learned %d events", order, b.w.Stats().Events.Load())
			if order.Runs == 0 {
				t.Fatal("the restarted replica found no recorded order to follow: the test shows nothing")
			}
			if len(order.Unassigned) == 0 {
				t.Fatalf("the restarted replica did not give the order up for the partitions it was not assigned: %+v", order)
			}
			if b.w.Stats().Events.Load() == 0 {
				t.Fatal("the restarted replica learned nothing")
			}
			// Every partition's last event got a list (the restarted
			// replica's partitions among them).
			ends, err := pipeline.EndOffsets(context.Background(), kafkatest.Client(cfg.Kafka.Brokers), cfg.Topics.Feedback)
			if err != nil {
				t.Fatal(err)
			}
			listed := map[int]bool{}
			for _, r := range readRecs(t, cfg) {
				if end := ends[int(r.Partition)]; r.Offset == end-1 {
					listed[int(r.Partition)] = true
				}
			}
			for p, end := range ends {
				if end > 0 && !listed[p] {
					t.Fatalf("partition %d: no list for its last event (offset %d)", p, end-1)
				}
			}
		})
	}
}

// BenchmarkRollingRestartPause measures, on the real broker, how long a
// replica restarted in a live group of two makes no progress while
// events keep coming (500 a second): from its start (restore, join) to
// the first batch it learns. "order" runs with the order log
// (snapshot.order_topic) and snapshots as in the incident (the restarted
// replica's own snapshot says it was alone); "plain" without the order
// log: the bare restart and rebalance. One iteration restarts the replica
// five times and reports the median and the maximum pause; run with
// -benchtime 1x.
func BenchmarkRollingRestartPause(b *testing.B) {
	target := kafkatest.Real(b)
	const restarts = 5
	for _, mode := range []string{"order", "plain"} {
		b.Run(mode, func(b *testing.B) {
			cfg := rollingConfig(b, target)
			if mode == "plain" {
				cfg.Snapshot.OrderTopic = ""
			}
			kafkatest.CreateTopics(b, cfg)
			stopStream := stream(b, cfg, 500)
			defer stopStream()
			startReplica(b, cfg, "replica-a")
			r := startReplica(b, cfg, "replica-b")
			waitMembers(b, cfg, 2)
			for b.Loop() {
				var pauses []float64
				for range restarts {
					waitLearned(b, r)
					if err := r.stop(); err != nil {
						b.Fatal(err)
					}
					r = startReplica(b, cfg, "replica-b")
					pause := waitLearned(b, r).Sub(r.started)
					pauses = append(pauses, float64(pause.Milliseconds()))
					b.Logf("%s: the restarted replica learned its first batch %v after its start (order: %+v)", mode, pause.Round(time.Millisecond), r.w.Order())
				}
				b.ReportMetric(median(pauses), "pause_p50_ms")
				b.ReportMetric(slices.Max(pauses), "pause_max_ms")
			}
		})
	}
}

// waitLearned waits until r has learned a batch and returns when it
// first did.
func waitLearned(tb testing.TB, r *replica) time.Time {
	tb.Helper()
	for deadline := time.Now().Add(3 * time.Minute); r.clock.first.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("the replica learned nothing in 3m")
		}
	}
	return time.Unix(0, r.clock.first.Load())
}

// stream produces events to cfg's feedback topic, perSecond of them in
// tenths of a second, until the returned stop is called.
func stream(tb testing.TB, cfg configs.Config, perSecond int) (stop func()) {
	lines, _ := kafkatest.Events(perSecond*600, 0, 2000, 5) // ten minutes' worth
	out := newSink(cfg.Kafka.Brokers, cfg.Topics.Feedback)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i = (i + perSecond/10) % (len(lines) - perSecond/10) {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := pipeline.Produce(ctx, out, bytesReader(lines[i:i+perSecond/10]), pipeline.ProduceOptions{}); err != nil && ctx.Err() == nil {
				tb.Errorf("producing: %v", err)
				return
			}
		}
	}()
	return sync.OnceFunc(func() { cancel(); <-done; out.Close() })
}
