package pipeline_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/eval"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/model/session"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// runReplicas runs one worker per name in cfg's group until the group has
// committed every event, stops them (each publishes a last snapshot) and
// returns their models and workers.
func runReplicas(t *testing.T, cfg configs.Config, names ...string) ([]model.Probed, []*pipeline.Worker) {
	t.Helper()
	return runWorkers(t, cfg, func(c configs.Config) (model.Recommender, error) { return wire.Model(c) }, nil, names...)
}

// runWorkers is runReplicas with the models build makes; joined, if not
// nil, is called once every worker has joined the group.
func runWorkers(t *testing.T, cfg configs.Config, build func(configs.Config) (model.Recommender, error), joined func(), names ...string) ([]model.Probed, []*pipeline.Worker) {
	t.Helper()
	recs := make([]model.Probed, len(names))
	workers := make([]*pipeline.Worker, len(names))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make([]error, len(names))
	healths := make([]*telemetry.Health, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		c := cfg
		c.Snapshot.Replica = name
		rec, err := build(c)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = rec.(model.Probed)
		workers[i] = pipeline.NewWorker(c, kafkatest.Logger(t).With("replica", name), rec, nil, kafkatest.Outputs(t, c))
		healths[i] = &telemetry.Health{}
		workers[i].Instrument(nil, nil, healths[i])
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = workers[i].Run(ctx) }()
	}
	// Joined implies restored: a worker loads its snapshot before it joins.
	for i, h := range healths {
		for deadline := time.Now().Add(2 * time.Minute); h.Check(ctx)["group"] != nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("replica %s did not join its group in 2m", names[i])
			}
		}
	}
	if joined != nil {
		joined()
	}
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 10*time.Minute)
	if len(names) > 1 {
		settle(t, cfg, workers)
	}
	cancel()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %s: %v", names[i], err)
		}
	}
	return recs, workers
}

// mlRatings returns ml-latest-small's ratings in time order for the tests
// that run DQN workers over it: they skip in -short mode and under -race
// (gorgonia is about ten times slower there; make test runs them in a
// pass of their own without it).
func mlRatings(t *testing.T) []feedback.Event {
	t.Helper()
	if testing.Short() {
		t.Skip("runs DQN workers over ml-latest-small")
	}
	if raceEnabled {
		t.Skip("the DQN under -race is ~10x slower: make test runs this test in its own pass without -race")
	}
	events, err := eval.Load("../../shared/data/ml-latest-small/ratings.csv", "movielens-csv")
	if err != nil {
		t.Fatalf("ml-latest-small is needed beside the project (../shared/data): %v", err)
	}
	return events
}

// encodeAll encodes events as feedback lines.
func encodeAll(events []feedback.Event) [][]byte {
	out := make([][]byte, len(events))
	for i, e := range events {
		out[i] = feedback.Encode(e)
	}
	return out
}

// settle waits until the idle replicas have published what they learned
// and merged each other's last snapshots: nothing published or merged
// for three idle periods, and no snapshot of another replica pending.
func settle(t *testing.T, cfg configs.Config, workers []*pipeline.Worker) {
	t.Helper()
	state := func() (s []int64) {
		for _, w := range workers {
			s = append(s, w.Stats().Snapshots.Load(), w.Stats().Merges.Load(), int64(w.PeerSnapshotsPending()))
		}
		return s
	}
	last, since := state(), time.Now()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		now := state()
		pending := int64(0)
		for i := 2; i < len(now); i += 3 {
			pending += now[i]
		}
		if !slices.Equal(now, last) || pending > 0 {
			last, since = now, time.Now()
			continue
		}
		if time.Since(since) > 3*cfg.Snapshot.Idle {
			return
		}
	}
	t.Fatalf("the replicas did not settle: %v", last)
}

// TestReplicasConverge runs two workers in one group over 6 partitions of
// ml-latest-small (its first 90% in time order), merging each other's
// snapshots, and one worker alone over the same events, then measures
// each model's prequential HR@10 on the held-out last 10% (weights as the
// run left them, users' state advancing event by event): the replicas must
// agree within 2% and each be within about 8% of the single worker.
func TestReplicasConverge(t *testing.T) {
	events := mlRatings(t)
	split := len(events) * 9 / 10
	train, tail := events[:split], events[split:]
	lines := encodeAll(train)
	targets := kafkatest.Targets(t)
	target := targets[0] // the real broker when there is one
	cfg := kafkatest.Config(t, target)
	cfg.Recommender.Model = "dqn"
	cfg.Batch.Size = 256
	cfg.Batch.MaxWait = 50 * time.Millisecond
	cfg.Worker.MaxPendingBatches = 8
	cfg.Snapshot.Interval = 0
	cfg.Snapshot.EveryBatches = 16
	// REPLICAS_NO_MERGE=1 runs the control: the same replicas, not merging.
	cfg.Snapshot.Merge = os.Getenv("REPLICAS_NO_MERGE") == ""
	kafkatest.CreateTopics(t, cfg)
	produceB(t, cfg.Kafka.Brokers, cfg.Topics.Feedback, lines)

	// Prequential over the tail with the weights as the run left them:
	// each event is ranked, then moves its user's state. (Learning on the
	// tail too would add each model's own learning path to the comparison.)
	hr := func(m model.Probed) float64 {
		d := m.(*model.DQN)
		hits := 0
		for i, e := range tail {
			if r, ok := d.Rank(e.UserID, e.ItemID); ok && r < 10 {
				hits++
			}
			b := feedback.BatchOf(feedback.Located{Event: e, Partition: -1, Offset: int64(i)})
			d.Observe(b)
			b.Release()
		}
		return float64(hits) / float64(len(tail))
	}
	replicas, workers := runReplicas(t, cfg, "replica-a", "replica-b")
	// The single worker reads the same events from one partition, in time
	// order: with several partitions its result would move with the order
	// it happened to fetch them in (about ±2.5% here), not only with what
	// it learned.
	single := cfg
	single.Kafka.Group += "-single"
	single.Snapshot.Topic += "-single"
	single.Topics.Feedback += "-single"
	kafkatest.CreateTopic(t, single.Kafka.Brokers, single.Topics.Feedback, 1)
	produceB(t, single.Kafka.Brokers, single.Topics.Feedback, lines)
	alone, _ := runReplicas(t, single, "alone")

	// Each replica holds the session state of its own partitions only: the
	// figure compares the learned models, so each replica first rebuilds
	// the state of every user from the log, as a worker does for a
	// partition it takes over (Observe skips what a user's state already
	// reflects). The single worker saw every user.
	log := kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Feedback)
	for _, m := range replicas {
		asm := session.NewAssembler(wire.Session(cfg.Session))
		for _, msg := range log {
			ev, err := feedback.Decode(msg.Value, feedback.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			asm.Add(ev, int32(msg.Partition), msg.Offset, msg.Time)
		}
		batch := asm.Flush()
		m.(model.Observer).Observe(batch)
		batch.Release()
		asm.Release()
	}
	a, b, s := hr(replicas[0]), hr(replicas[1]), hr(alone[0])
	for i, w := range workers {
		st := w.Stats()
		t.Logf("replica %d: %d events, %d batches, %d snapshots, %d merged", i, st.Events.Load(), st.Batches.Load(), st.Snapshots.Load(), st.Merges.Load())
		if st.Merges.Load() == 0 && os.Getenv("REPLICAS_NO_MERGE") == "" {
			t.Fatalf("replica %d merged no snapshot of the other", i)
		}
	}
	diff := math.Abs(a-b) / math.Max(a, b)
	t.Logf("HR@10 on the held-out %d events: replica a %.4f, replica b %.4f (differ by %.2f%%), single worker %.4f (a %+.2f%%, b %+.2f%%)",
		len(tail), a, b, 100*diff, s, 100*(a/s-1), 100*(b/s-1))
	if diff > 0.02 {
		t.Errorf("the replicas' HR@10 differ by %.2f%% (> 2%%)", 100*diff)
	}
	// Six runs on the real broker (0ccabab) put both replicas 3.2% to 5.6%
	// below the single worker (0.1072 each time; its run is the same
	// every time): merged tables learn a little less than one table fed
	// every event, and which replica fetched which partition first moves
	// that by about a point from run to run. The bound is two standard
	// errors of the difference of two HR@10 estimates on len(tail)
	// events (about 8% of HR 0.1 on 10,084 events), 5% at least; a run
	// at 5.09% had failed a fixed 5%.
	bound := math.Max(0.05, 2*math.Sqrt(2*s*(1-s)/float64(len(tail)))/s)
	for i, x := range []float64{a, b} {
		if math.Abs(x/s-1) > bound {
			t.Errorf("replica %d's HR@10 %.4f is not within %.1f%% of the single worker's %.4f", i, x, 100*bound, s)
		}
	}
}

// TestReplicasFollowTheDecider runs two adaptive workers (learned
// controller) in one group and checks what the design guarantees, not
// how many decisions each took (that depends on when the replicas first
// see each other's snapshots, before which each may decide on its own):
// the replica with the smaller name ends as the decider and took
// decisions; the other was made a follower and took no decision in any
// batch it learned as one; after the run both have the same architecture.
func TestReplicasFollowTheDecider(t *testing.T) {
	lines := encodeAll(mlRatings(t)[:20_000])
	cfg := kafkatest.Config(t, kafkatest.Targets(t)[0])
	cfg.Recommender.Model = "adaptive"
	cfg.Recommender.Adaptive.Controller = "rl"
	cfg.Recommender.Adaptive.EpochSessions = 10
	cfg.Batch.Size = 256
	cfg.Batch.MaxWait = 50 * time.Millisecond
	cfg.Snapshot.Interval = 0
	cfg.Snapshot.EveryBatches = 4
	kafkatest.CreateTopics(t, cfg)
	produceB(t, cfg.Kafka.Brokers, cfg.Topics.Feedback, lines)
	build := func(c configs.Config) (model.Recommender, error) {
		rec, err := wire.Model(c)
		if err != nil {
			return nil, err
		}
		return &watchedAdaptive{Adaptive: rec.(*model.Adaptive)}, nil
	}
	models, workers := runWorkers(t, cfg, build, nil, "replica-a", "replica-b")
	a, b := models[0].(*watchedAdaptive), models[1].(*watchedAdaptive)
	t.Logf("replica-a: %d decisions, widths %v, decider %v; replica-b: %d decisions (%d before it became a follower), widths %v, decider %v; merged %d and %d",
		len(a.Decisions()), a.Widths(), a.Decider(), len(b.Decisions()), b.beforeFollower, b.Widths(), b.Decider(), workers[0].Stats().Merges.Load(), workers[1].Stats().Merges.Load())
	if !a.Decider() || b.Decider() || a.demoted {
		t.Fatalf("decider: replica-a %v (made a follower: %v), replica-b %v; want replica-a only", a.Decider(), a.demoted, b.Decider())
	}
	if len(a.Decisions()) == 0 {
		t.Fatal("the decider took no decisions: the test shows nothing")
	}
	if !b.demoted {
		t.Fatal("replica-b was never made a follower: it never saw replica-a's snapshots")
	}
	if b.asFollower != 0 {
		t.Fatalf("the follower took %d decisions in batches it learned as a follower", b.asFollower)
	}
	if !slices.Equal(a.Widths(), b.Widths()) {
		t.Fatalf("after the run replica-a has widths %v, replica-b %v", a.Widths(), b.Widths())
	}
}

// watchedAdaptive is an adaptive model that records what the worker made
// of it: whether it was made a follower, the decisions it had taken when
// that first happened, and the decisions taken in batches it learned as
// a follower. The worker calls all of it from its model goroutine.
type watchedAdaptive struct {
	*model.Adaptive
	demoted        bool
	beforeFollower int
	asFollower     int
}

func (m *watchedAdaptive) SetDecider(on bool) {
	if !on && !m.demoted {
		m.demoted, m.beforeFollower = true, len(m.Decisions())
	}
	m.Adaptive.SetDecider(on)
}

func (m *watchedAdaptive) Learn(ctx context.Context, b *feedback.Batch) ([]model.Recommendation, error) {
	return m.LearnProbed(ctx, b, nil)
}

func (m *watchedAdaptive) LearnProbed(ctx context.Context, b *feedback.Batch, probe model.Probe) ([]model.Recommendation, error) {
	follower, n := !m.Decider(), len(m.Decisions())
	lists, err := m.Adaptive.LearnProbed(ctx, b, probe)
	if follower {
		m.asFollower += len(m.Decisions()) - n
	}
	return lists, err
}

// A replica that restarts takes its own snapshot, not the group's newest
// (another replica's), and adds the other replicas' learning back from
// their snapshots: after two replicas ran and each restarted alone, each
// holds the co-occurrence counts of every event the two learned (a
// rebalance may have them learn an uncommitted batch twice), no
// replica's lost or counted twice.
func TestRestartedReplicasKeepTheGroupsCounts(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := smallDQN(t, target)
			cfg.Batch.Size = 64
			cfg.Snapshot.EveryBatches = 4
			kafkatest.CreateTopics(t, cfg)
			lines, _ := kafkatest.Events(1500, 0, 200, 9)
			// The events come once both replicas hold partitions.
			split := func() {
				for deadline := time.Now().Add(time.Minute); len(members(t, cfg)) < 2; time.Sleep(100 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the two replicas did not both get partitions in 1m")
					}
				}
				produce(t, cfg, lines)
			}
			build := func(c configs.Config) (model.Recommender, error) { return wire.Model(c) }
			_, ws := runWorkers(t, cfg, build, split, "replica-a", "replica-b")
			a, b := ws[0].Stats().Events.Load(), ws[1].Stats().Events.Load()
			if a == 0 || b == 0 {
				t.Fatalf("a replica learned nothing: %d and %d events", a, b)
			}
			// b restarts first, so that its snapshot is the group's newest
			// when a restarts.
			var pairs []float64
			for _, name := range []string{"replica-b", "replica-a"} {
				ms, ws := runReplicas(t, cfg, name)
				if got := ws[0].Restored().Replica; got != name {
					t.Fatalf("%s restored a snapshot of %q", name, got)
				}
				got, p := ms[0].(*model.DQN).CoocTotals()
				pairs = append(pairs, p)
				t.Logf("%s after its restart: %v interactions counted (%v pair counts); the replicas learned %d + %d events", name, got, p, a, b)
				if got != float64(a+b) {
					t.Fatalf("%s counts %v interactions after its restart; the replicas learned %d + %d events", name, got, a, b)
				}
			}
			if pairs[0] != pairs[1] {
				t.Fatalf("the restarted replicas count %v and %v pairs", pairs[0], pairs[1])
			}
		})
	}
}

// Workers that change names at every restart (generations of a
// Deployment) keep what earlier generations learned: two replicas run and
// stop; two others, with new names, take over for more events and stop;
// a fifth starts after their snapshots (snapshot.keep 1) have retired the
// first generation's, and counts every event the four learned.
func TestGenerationsOfReplicasKeepTheirCounts(t *testing.T) {
	cfg := smallDQN(t, kafkatest.Targets(t)[0]) // the real broker when there is one
	cfg.Batch.Size = 64
	cfg.Snapshot.EveryBatches = 4
	cfg.Snapshot.Keep = 1
	kafkatest.CreateTopics(t, cfg)
	lines, _ := kafkatest.Events(1000, 0, 200, 9)
	build := func(c configs.Config) (model.Recommender, error) { return wire.Model(c) }
	learned := int64(0)
	for g, part := range [][][]byte{lines[:500], lines[500:]} {
		split := func() {
			for deadline := time.Now().Add(time.Minute); len(members(t, cfg)) < 2; time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the two replicas did not both get partitions in 1m")
				}
			}
			produce(t, cfg, part)
		}
		names := []string{fmt.Sprintf("gen%d-a", g), fmt.Sprintf("gen%d-b", g)}
		_, ws := runWorkers(t, cfg, build, split, names...)
		for _, w := range ws {
			learned += w.Stats().Events.Load()
		}
	}
	ms, _ := runReplicas(t, cfg, "gen2-a")
	got, _ := ms[0].(*model.DQN).CoocTotals()
	t.Logf("the third generation counts %v interactions; the first two learned %d events", got, learned)
	if got != float64(learned) {
		t.Fatalf("the third generation counts %v interactions; the first two learned %d events", got, learned)
	}
}
