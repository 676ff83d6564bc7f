package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
	"github.com/adaptrec/adaptrec/sink"
)

// The failover tests run on a 3-node KRaft cluster (make test-failover):
// replication 3, min ISR 2, a node killed with SIGKILL while the worker
// runs. They assert what the design guarantees, not how fast: nothing
// lost, no exit, lists resume, a restarted worker serves the restored
// model.

// replicatedConfig is a worker configuration on the cluster with every
// topic replicated 3 times, its topics created.
func replicatedConfig(t *testing.T, cl *kafkatest.Cluster) configs.Config {
	t.Helper()
	cfg := kafkatest.Config(t, kafkatest.Target{Name: "cluster", Brokers: cl.Brokers})
	cfg.Topics.ReplicationFactor = 3
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var specs []pipeline.TopicSpec
	for _, n := range []string{cfg.Topics.Feedback, cfg.Topics.Recommendations, cfg.Topics.DLQ, cfg.Topics.Decisions} {
		specs = append(specs, pipeline.TopicSpec{Name: n, Partitions: cfg.Topics.Partitions, ReplicationFactor: 3})
	}
	// A list's timestamp is when the broker stored it, so that the pause a
	// failover causes can be read off the topics.
	specs[1].Configs = map[string]string{"message.timestamp.type": "LogAppendTime"}
	if err := pipeline.EnsureTopics(ctx, kafkatest.Client(cl.Brokers), specs, true, kafkatest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// running is a worker started in the background: done receives Run's
// error when it returns.
type running struct {
	w    *pipeline.Worker
	done chan error
	stop func() error
}

// runInBackground starts a worker; log, if not nil, receives its log.
func runInBackground(t *testing.T, cfg configs.Config, log io.Writer) *running {
	t.Helper()
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lg := kafkatest.Logger(t)
	if log != nil {
		lg = kafkatest.LoggerTo(log)
	}
	r := &running{w: pipeline.NewWorker(cfg, lg, rec, nil, kafkatest.Outputs(t, cfg)), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- r.w.Run(ctx) }()
	var once sync.Once
	var stopErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-r.done:
			case <-time.After(90 * time.Second):
				stopErr = errors.New("worker did not stop within 90s of cancellation")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// waitCommittedWhileUp waits until the group has committed the end of the
// feedback topic, failing at once if the worker exits meanwhile.
func waitCommittedWhileUp(t *testing.T, cfg configs.Config, r *running, timeout time.Duration) {
	t.Helper()
	client := kafkatest.Client(cfg.Kafka.Brokers)
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		select {
		case err := <-r.done:
			t.Fatalf("the worker exited while the cluster recovered: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		var done bool
		if done, last = kafkatest.CommittedEnd(client, cfg.Kafka.Group, cfg.Topics.Feedback); done {
			return
		}
	}
	t.Fatalf("group did not commit the end of %s within %v (%s)", cfg.Topics.Feedback, timeout, last)
}

// TestFailoverLeaderKill kills, with SIGKILL, the node that leads most
// partitions of the feedback topic while events stream in at 1,000/s.
// The producer and the worker ride it out on the new leaders: every event
// is acknowledged, the worker does not exit, and every user gets a list
// reflecting their last event while the node is still down (nothing lost;
// lists resume without it). Started again, the node is used again.
func TestFailoverLeaderKill(t *testing.T) {
	res := failover(t, "the leader of most partitions", func(cl *kafkatest.Cluster, cfg configs.Config) int {
		return cl.MostLeading(t, cfg.Topics.Feedback)
	})
	if res.Retried == 0 {
		t.Errorf("produce retried no message, yet it wrote to the partitions of a dead leader")
	}
}

// TestFailoverCoordinatorKill kills the group's coordinator (the node
// that takes the worker's commits and heartbeats) mid-stream. Commits
// that fail while the coordinator moves are retried on the new one,
// within sink.write_timeout, instead of stopping the worker.
func TestFailoverCoordinatorKill(t *testing.T) {
	_ = failover(t, "the group coordinator", func(cl *kafkatest.Cluster, cfg configs.Config) int {
		return coordinator(t, cl, cfg.Kafka.Group)
	})
}

// coordinator is the node that coordinates group.
func coordinator(t *testing.T, cl *kafkatest.Cluster, group string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kafkatest.Client(cl.Brokers).FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: group, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("finding the coordinator of group %s: %v", group, err)
	}
	return resp.Coordinator.NodeID
}

// failover streams 9,000 events at 1,000/s into a worker, kills the node
// victim picks with SIGKILL after 3,000, and checks that the producer and
// the worker ride it out: every event acknowledged and stored, the group
// commits the end of the topic while the node is down, the worker does
// not exit, every user has a list reflecting their last event. Then it
// starts the node again and checks the worker goes on learning.
func failover(t *testing.T, what string, victim func(*kafkatest.Cluster, configs.Config) int) pipeline.ProduceResult {
	cl := kafkatest.RealCluster(t)
	cfg := replicatedConfig(t, cl)
	// One stream in time order: the first events before the failure
	// (the group has joined and has a coordinator), the bulk across it,
	// the rest after the node is back.
	all, _ := kafkatest.Events(9_300, 0, 600, 1)
	first, lines, more := all[:20], all[20:9_000], all[9_000:]
	r := runInBackground(t, cfg, nil)
	produce(t, cfg, first)
	waitCommittedWhileUp(t, cfg, r, 3*time.Minute)
	node := victim(cl, cfg)
	t.Logf("killing node %d, %s (leaders of %s: %v)", node, what, cfg.Topics.Feedback, cl.Leaders(t, cfg.Topics.Feedback))

	// One produce request per attempt inside a round (MaxAttempts 1), so
	// the writes that reach the dead leader are the publisher's retries.
	out := sink.NewKafka(sink.WriterConfig{Brokers: cl.Brokers, Topic: cfg.Topics.Feedback, BatchTimeout: 2 * time.Millisecond,
		BatchSize: 1000, WriteTimeout: cfg.Sink.WriteTimeout, MaxAttempts: 1, Logger: kafkatest.Logger(t)})
	defer out.Close()
	var sent atomic.Int64
	produced := make(chan error, 1)
	var res pipeline.ProduceResult
	go func() {
		var err error
		res, err = pipeline.Produce(context.Background(), out, bytesReader(lines), pipeline.ProduceOptions{
			Rate: 1000, Progress: func(n int) { sent.Store(int64(n)) }})
		produced <- err
	}()
	waitSent(t, &sent, 3_000, produced)
	killed := time.Now()
	cl.Kill(t, node)
	if err := <-produced; err != nil {
		t.Fatalf("produce did not survive the failure of %s: %v", what, err)
	}
	if res.Sent != len(lines) {
		t.Fatalf("produce sent %d of %d", res.Sent, len(lines))
	}
	waitCommittedWhileUp(t, cfg, r, 3*time.Minute)
	cl.Start(t, node)
	produce(t, cfg, more)
	waitCommittedWhileUp(t, cfg, r, 3*time.Minute)
	if err := r.stop(); err != nil {
		t.Fatalf("graceful stop after the failover: %v", err)
	}
	// A write whose ack timed out may have landed: retried, it lands
	// twice (at-least-once). None may be missing.
	input := kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Feedback)
	stored := map[string]bool{}
	for _, m := range input {
		stored[string(m.Value)] = true
	}
	for i, l := range all {
		if !stored[string(l)] {
			t.Fatalf("event %d was acknowledged but is not on the feedback topic: %s", i, l)
		}
	}
	last := lastLearned(t, input)
	reflected := map[string]bool{}
	for _, rec := range readRecs(t, cfg) {
		if l := last[rec.UserID]; int(rec.Partition) == l.p && rec.Offset == l.o {
			reflected[rec.UserID] = true
		}
	}
	logPause(t, cl, node, killed, input, kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Recommendations))
	for u, l := range last {
		if !reflected[u] {
			t.Errorf("user %s: no list reflects their last event %d@%d", u, l.p, l.o)
		}
	}
	st := r.w.Stats()
	t.Logf("%d users, each with a list of their last event; produce retried %d messages, %d stored twice; the worker retried %d commits",
		len(last), res.Retried, len(input)-len(all), st.CommitRetries.Load())
	return res
}

// lastLearned is, per user, the location of the last event the worker
// learns: a message whose bytes were stored before (a produce retry whose
// first write landed after all) is a duplicate, which the worker skips
// (dedupe.window), so the list reflecting a user's last event carries the
// first copy's offset.
func lastLearned(t *testing.T, msgs []kafka.Message) map[string]loc {
	t.Helper()
	seen := map[string]bool{}
	var first []kafka.Message
	for _, m := range msgs {
		if !seen[string(m.Value)] {
			seen[string(m.Value)] = true
			first = append(first, m)
		}
	}
	last, _ := lastValid(t, first)
	return last
}

// logPause logs the pause in lists the failover caused: the longest time
// from an event's first send to the list that reflects it (lists carry the
// broker's append time), beside the typical one, and when the controller
// fenced the killed node, which is when its partitions got new leaders.
// README: Delivery and shutdown quotes these lines.
func logPause(t *testing.T, cl *kafkatest.Cluster, victim int, killed time.Time, input, recs []kafka.Message) {
	t.Helper()
	sentAt := map[loc]time.Time{}
	for _, m := range input {
		if _, ok := sentAt[loc{m.Partition, m.Offset}]; !ok {
			sentAt[loc{m.Partition, m.Offset}] = m.Time
		}
	}
	var waits []time.Duration
	for _, m := range recs {
		var r model.Recommendation
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatal(err)
		}
		if at, ok := sentAt[loc{int(r.Partition), r.Offset}]; ok {
			waits = append(waits, m.Time.Sub(at))
		}
	}
	if len(waits) == 0 {
		t.Fatal("no list reflects an event")
	}
	slices.Sort(waits)
	fenced, ok := cl.Fenced(t, victim, killed)
	election := "not in the log"
	if ok {
		election = fenced.Sub(killed).Round(10 * time.Millisecond).String()
	}
	t.Logf("FAILOVER pause=%v typical=%v node_fenced_after=%s lists=%d",
		waits[len(waits)-1].Round(10*time.Millisecond), waits[len(waits)/2].Round(time.Millisecond), election, len(waits))
}

// waitSent waits until the producer has had n events acknowledged.
func waitSent(t *testing.T, sent *atomic.Int64, n int64, produced chan error) {
	t.Helper()
	for sent.Load() < n {
		select {
		case err := <-produced:
			t.Fatalf("produce ended after %d events: %v", sent.Load(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestFailoverRestoreWhileBrokersDown restarts a DQN worker while two of
// the three nodes, the snapshot partition's leader among them, are down
// (the cluster has no quorum, so the partition has no leader: the
// snapshot topic cannot be read). The worker must not start from an
// empty model: it retries until the nodes are back and then restores the
// snapshot its predecessor left. A worker whose snapshot.restore_timeout
// passes first exits with ErrUnreadable instead of serving.
func TestFailoverRestoreWhileBrokersDown(t *testing.T) {
	cl := kafkatest.RealCluster(t)
	cfg := replicatedConfig(t, cl)
	cfg.Recommender.Model = "dqn"
	produce(t, cfg, func() [][]byte { l, _ := kafkatest.Events(600, 0, 200, 2); return l }())
	first := runInBackground(t, cfg, nil)
	waitCommittedWhileUp(t, cfg, first, 3*time.Minute)
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	// The snapshot topic exists now (the worker created it); its only
	// partition's leader and one more node go down.
	down := []int{cl.Leaders(t, cfg.Snapshot.Topic)[0]}
	down = append(down, down[0]%len(cl.Brokers)+1)
	for _, n := range down {
		cl.Kill(t, n)
	}

	short := cfg
	short.Snapshot.RestoreTimeout = 3 * time.Second
	gaveUp := runInBackground(t, short, nil)
	select {
	case err := <-gaveUp.done:
		if !errors.Is(err, pipeline.ErrUnreadable) {
			t.Fatalf("a worker that cannot read the snapshot topic for snapshot.restore_timeout returned %v, want ErrUnreadable", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("a worker that cannot read the snapshot topic did not exit after snapshot.restore_timeout")
	}

	// The restart proper: it waits, retrying, until the nodes are back.
	log := &syncBuffer{}
	second := runInBackground(t, cfg, log)
	for !log.contains("retrying on fresh metadata") {
		select {
		case err := <-second.done:
			t.Fatalf("the restarted worker exited while the snapshot topic was unreadable: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, n := range down {
		cl.Start(t, n)
	}
	produce(t, cfg, func() [][]byte { l, _ := kafkatest.Events(200, 0, 200, 3); return l }())
	waitCommittedWhileUp(t, cfg, second, 3*time.Minute)
	if got := second.w.Restored(); got.Checksum == "" || got.Items == 0 {
		t.Fatalf("the restarted worker served without restoring its predecessor's snapshot (restored %+v)", got)
	}
	if err := second.stop(); err != nil {
		t.Fatal(err)
	}
}

// A worker that starts from a fresh model because none of the group's
// snapshots on the topic loads must not retire them as it publishes its
// own (snapshot.keep): they may hold what the group learned.
func TestWorkerKeepsSnapshotsItCouldNotLoad(t *testing.T) {
	targets := kafkatest.Targets(t)
	cfg := smallDQN(t, targets[len(targets)-1])
	cfg.Snapshot.EveryBatches, cfg.Snapshot.Keep = 1, 1
	kafkatest.CreateTopics(t, cfg)
	kafkatest.CreateTopic(t, cfg.Kafka.Brokers, cfg.Snapshot.Topic, 1)
	// Complete (every chunk, the digest matches) but not a model snapshot:
	// say, one written by a newer version.
	unreadable := snapstore.Messages(cfg.Kafka.Group, "0000000000000000001", "other", []byte("not a snapshot this version reads"), 0)
	out := newSink(cfg.Kafka.Brokers, cfg.Snapshot.Topic)
	if err := out.Publish(context.Background(), unreadable...); err != nil {
		t.Fatal(err)
	}
	out.Close()
	lines, _ := kafkatest.Events(600, 0, 100, 4)
	produce(t, cfg, lines)
	_, ws := runReplicas(t, cfg, "worker")
	if n := ws[0].Stats().Snapshots.Load(); n < 2 {
		t.Fatalf("the worker published %d snapshots; the test needs more than snapshot.keep", n)
	}
	all := listSnapshots(t, cfg)
	for _, s := range all {
		if s.ID == "0000000000000000001" {
			return
		}
	}
	t.Fatalf("the snapshot the worker could not load was retired: %+v", all)
}
