package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// Worker is one member of the consumer group: it fetches feedback, decodes
// and validates it, batches it into Arrow records, hands each batch to the
// recommender, publishes the refreshed lists and dead letters, and commits
// the batch's offsets once every output is acknowledged.
//
// Run runs its stages as one group (runStages lists them), one file each:
// fetch.go, learn.go, publish.go, commit.go, with their telemetry from one
// wrapper (stage_telemetry.go). The learn stage may run up to
// worker.max_pending_batches ahead of the publish stage, which publishes
// what has queued up as one group; commits stay in batch order and follow
// their batch's acknowledgements, so a crash re-delivers at most the
// groups in flight.
type Worker struct {
	cfg  configs.Config
	log  *slog.Logger
	conn *kafkaconn.Conn // how every client reaches the brokers
	// connErr is why kafka.tls/kafka.sasl gave no Conn; Run returns it.
	connErr error
	rec     model.Recommender
	caps    capabilities // rec's optional interfaces, resolved once
	stats   *Stats
	out     Outputs // every sink Run publishes to; Run closes them
	// order is out.Order while the model snapshots (nil: the order log is off)
	order sink.Sink
	// decisions the model took during the batch in hand (model goroutine;
	// learn hands them on)
	taken []model.Decision
	// dedupe holds the keys of the events learned last (model goroutine;
	// nil: off); it travels in the snapshot
	dedupe *Dedupe
	// closing is set once the reader is being closed.
	closing atomic.Bool

	// health checks (health.go)
	hs       healthState
	gone     chan error // a reader stuck past the end of its partition
	logLimit *telemetry.Limiter

	// observability (Instrument); the zero values cost nothing
	tracer  trace.Tracer
	tracing bool
	metrics *telemetry.Metrics
	health  *telemetry.Health
	status  *telemetry.Status // the status page's data (ShowStatus; nil: none)
	reward  model.Reward      // scores events for the quality metrics: the DQN's reward (wire.Reward)
	sampled int               // events seen by the quality sampler

	// snapshots (model goroutine, then the snapshot goroutine)
	consumed    map[int32]int64 // next offset per partition of the batches learned
	snapAt      time.Time
	snapBatches int
	snaps       chan []byte
	snapsDone   chan struct{}    // closed when the snapshot publisher has stopped
	store       *snapstore.Store // the snapshot topic (snapStore makes it)
	restored    model.SnapshotMeta
	kept        []snapstore.Stored // the group's snapshots on the topic, oldest first

	// replicas (snapshot.merge): the other workers' snapshots, this
	// worker's name, and whether it decides the architecture
	peers   *Peers
	replica string
	decider bool
	echoes  int // snapshots published while idle since the model last learned

	splits splitWarnings // users seen on more than one partition (model goroutine)

	version string // the adaptrec version written into snapshots (SetVersion)

	// the partitions the group assigned to this worker (kafka-go's log),
	// and how it followed the recorded order of a replay (followOrder)
	assigned    *assignment
	orderMu     sync.Mutex
	orderReport OrderReport
}

// Instrument turns on tracing (if t is enabled), metrics (if m is not nil)
// and health reporting (if h is not nil: Run reports the model loaded once
// its snapshot is restored, and its health checks, health.go, keep h
// current). Call it before Run.
func (w *Worker) Instrument(t *telemetry.Tracing, m *telemetry.Metrics, h *telemetry.Health) {
	if t != nil && t.Enabled {
		w.tracer, w.tracing = t.Provider.Tracer("github.com/adaptrec/adaptrec/pipeline"), true
	}
	w.metrics, w.health = m, h
}

// SetVersion sets the adaptrec version the worker writes into its
// snapshots (the binary's module version; "devel" if not set). Call it
// before Run.
func (w *Worker) SetVersion(v string) { w.version = v }

// NewWorker returns a worker for cfg that serves rec and publishes to
// out, which it owns from now on (Run closes them). stats may be nil.
func NewWorker(cfg configs.Config, log *slog.Logger, rec model.Recommender, stats *Stats, out Outputs) *Worker {
	if stats == nil {
		stats = &Stats{}
	}
	w := &Worker{cfg: cfg, log: log, rec: rec, caps: capabilitiesOf(rec), stats: stats, out: out, gone: make(chan error, 1),
		logLimit: telemetry.NewLimiter(logRepeatInterval), dedupe: NewDedupe(cfg.Dedupe.Window), version: "devel"}
	if w.conn, w.connErr = kafkaconn.FromConfig(cfg.Kafka); w.connErr != nil {
		w.conn = kafkaconn.Plain(cfg.Kafka.Brokers) // never dialled: Run returns connErr
	} else {
		w.connErr = out.check()
	}
	if w.caps.snapshotter != nil {
		w.order = out.Order
	}
	w.reward = wire.Reward(cfg.Recommender.DQN.Reward)
	if w.caps.decisions != nil {
		w.caps.decisions.SetDecisionHook(func(dec model.Decision) { w.taken = append(w.taken, dec) })
	}
	return w
}

// capabilities are the optional interfaces of the worker's model, resolved
// once by NewWorker so that no stage asserts them; a nil field is one the
// model lacks.
type capabilities struct {
	snapshotter model.Snapshotter // snapshots: publish, restore
	replica     model.Replica     // merges the other replicas' snapshots
	observer    model.Observer    // rebuilds session state without learning
	probed      model.Probed      // ranks events before learning them (quality metric)
	decisions   DecisionSource    // changes its own architecture
	named       replicaNamer      // learns under this worker's replica name
}

// replicaNamer is a model that keeps what each replica learned apart.
type replicaNamer interface{ SetReplica(string) }

func capabilitiesOf(rec model.Recommender) capabilities {
	var c capabilities
	c.snapshotter, _ = rec.(model.Snapshotter)
	c.replica, _ = rec.(model.Replica)
	c.observer, _ = rec.(model.Observer)
	c.probed, _ = rec.(model.Probed)
	c.decisions, _ = rec.(DecisionSource)
	c.named, _ = rec.(replicaNamer)
	return c
}

// DecisionSource is a recommender that changes its own architecture; the
// worker publishes its decisions with the batch that caused them.
type DecisionSource interface {
	SetDecisionHook(func(model.Decision))
}

// Stats returns the worker's live counters.
func (w *Worker) Stats() *Stats { return w.stats }

// ErrShutdownDeadline reports that the drain on shutdown did not finish in
// time; the batch in hand was not committed and will be read again.
var ErrShutdownDeadline = errors.New("shutdown deadline exceeded")

// Run consumes until ctx is cancelled, then drains: it stops fetching,
// finishes, publishes and commits the batch in hand within
// worker.shutdown_timeout, leaves the group and closes its outputs. It
// returns nil after a clean drain, or the first error that stopped the
// pipeline; the batch that failed is not committed. The shutdown deadline
// bounds every stage, the snapshot publisher and the final snapshot: a
// drain or a snapshot still in flight when it passes makes Run return
// ErrShutdownDeadline.
func (w *Worker) Run(ctx context.Context) error {
	defer w.conn.Refresh() // closes the admin client's connections
	defer w.closeOutputs()
	specs := w.topicSpecs()
	client := w.conn.Client()
	err := w.connect(ctx, client, specs)
	var st started
	if err == nil {
		st, err = w.prepare(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was consumed
		}
		return err
	}
	if st.stopPeers != nil {
		defer st.stopPeers()
	}
	w.assigned = newAssignment(w.cfg.Topics.Feedback)
	w.startHealth(client, specs)
	reader := kafka.NewReader(w.readerConfig())
	w.log.Info("joining consumer group", "group", w.cfg.Kafka.Group, "topic", w.cfg.Topics.Feedback, "brokers", w.conn)
	err = w.runStages(ctx, reader, st)
	w.closing.Store(true)
	if closeErr := reader.Close(); closeErr != nil && err == nil { // leaves the group so partitions move at once
		w.log.Warn("leaving consumer group", "err", closeErr)
	}
	return err
}

// topicSpecs are the topics Run ensures: the feedback and output topics,
// and the snapshot and order topics of a model that snapshots.
func (w *Worker) topicSpecs() []TopicSpec {
	t, rf := w.cfg.Topics, w.cfg.Topics.ReplicationFactor
	specs := []TopicSpec{
		{Name: t.Feedback, Partitions: t.Partitions, ReplicationFactor: rf},
		{Name: t.Recommendations, Partitions: t.Partitions, ReplicationFactor: rf},
		{Name: t.DLQ, Partitions: t.Partitions, ReplicationFactor: rf},
		{Name: t.Decisions, Partitions: 1, ReplicationFactor: rf},
	}
	if w.caps.snapshotter != nil {
		specs = append(specs, TopicSpec{Name: w.cfg.Snapshot.Topic, Partitions: 1, ReplicationFactor: rf,
			Configs: map[string]string{"cleanup.policy": "compact"}})
		if w.order != nil {
			specs = append(specs, TopicSpec{Name: w.cfg.Snapshot.OrderTopic, Partitions: 1, ReplicationFactor: rf})
		}
	}
	return specs
}

// started is what Run found before joining the group: the snapshot it
// restored, the recorded order to follow, and how to stop the replicas'
// follower.
type started struct {
	restored      *model.Snapshot
	runs          []orderRun // the recorded order (nil: learn as fetched)
	feedbackParts []int
	stopPeers     func() // nil: no follower
}

// prepare names the replica, restores the newest snapshot, starts
// following the other replicas' snapshots and reads the recorded order.
func (w *Worker) prepare(ctx context.Context) (started, error) {
	cfg := w.cfg
	w.consumed, w.snapAt, w.decider = map[int32]int64{}, time.Now(), true
	if w.replica = cfg.Snapshot.Replica; w.replica == "" {
		w.replica = DefaultReplica()
	}
	if w.caps.named != nil {
		w.caps.named.SetReplica(w.replica)
	}
	var st started
	var restoredID string
	var listed []snapstore.Stored // the group's snapshots restore read
	var listedTo map[int]int64    // where restore stopped reading the snapshot topic
	if w.caps.snapshotter != nil && cfg.Snapshot.Restore {
		var err error
		if st.restored, restoredID, listed, listedTo, err = w.restore(ctx, w.caps.snapshotter); err != nil {
			return st, err
		}
	}
	if w.caps.replica != nil && cfg.Snapshot.Merge {
		w.peers = NewPeers(w.snapStore(), w.replica, w.log)
		w.peers.Seed(listed, restoredID, st.restored) // what restore read is not read again
		if st.restored != nil {
			w.mergeRestored(w.caps.replica)
		}
		peersCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.peers.Run(peersCtx, listedTo) }()
		st.stopPeers = func() { stop(); <-done }
	}
	st.runs, st.feedbackParts = w.recordedOrder(ctx, st.restored)
	w.statusSelf()
	return st, nil
}

// recordedOrder reads the order to learn in from the order log. It is
// followed when the snapshot was written by a worker alone and this one
// has no live peers either (deterministic replay is for a single worker):
// the order of several replicas' partitions would hold it back until the
// order times out. A peer may not have published a snapshot yet, so
// followOrder also gives the order up unless the group assigned every
// partition to this worker.
func (w *Worker) recordedOrder(ctx context.Context, restored *model.Snapshot) ([]orderRun, []int) {
	cfg := w.cfg
	if restored == nil || w.order == nil || restored.Meta.Replicas > 1 || (w.peers != nil && len(w.peers.Live(time.Now(), cfg.Snapshot.PeerTimeout)) > 0) {
		return nil, nil
	}
	runs, parts, err := orderFrom(ctx, w.conn, cfg.Snapshot.OrderTopic, cfg.Topics.Feedback, cfg.Kafka.Group, restored.Meta.Created, restored.Meta.Offsets)
	if err != nil {
		w.log.Warn("not following the recorded order: reading it failed", "topic", cfg.Snapshot.OrderTopic, "err", err)
		return nil, nil
	}
	if len(runs) > 0 {
		w.log.Info("following the recorded order from the restored snapshot", "topic", cfg.Snapshot.OrderTopic, "runs", len(runs))
	}
	return runs, parts
}

// runStages runs the stages as one group and, once they have drained,
// publishes the final snapshot. Each stage is an actor: it executes until
// its input ends, and is interrupted by the group's context, which the
// first stage to fail cancels (its error is the cause) and the shutdown
// deadline cancels (worker.shutdown_timeout after ctx ends or, if a stage
// fails first, after the stages end; the cause is ErrShutdownDeadline).
// The deadline also bounds the snapshot publisher and the final snapshot.
//
//	fetch:   FetchMessage, decode, validate             -> fetched
//	order:   hold back what the recorded order puts later (replay only)
//	learn:   batch, sessions, Arrow, Learn, encode      -> output   (owns the model)
//	publish: publish a group of outputs, wait for acks  -> committing
//	commit:  commit the group's offsets, offer its snapshot
//	health:  check brokers, topics and lag; stop on a topic gone
func (w *Worker) runStages(ctx context.Context, reader *kafka.Reader, st started) error {
	cfg := w.cfg
	// work outlives ctx by up to the shutdown deadline, so the batch in
	// hand can still be published and committed.
	work, cancelWork := context.WithCancelCause(context.Background())
	defer cancelWork(nil)
	startDeadline := sync.OnceFunc(func() {
		t := time.AfterFunc(cfg.Worker.ShutdownTimeout, func() { cancelWork(ErrShutdownDeadline) })
		context.AfterFunc(work, func() { t.Stop() })
	})
	stopDeadline := context.AfterFunc(ctx, startDeadline)
	defer stopDeadline()
	if w.caps.snapshotter != nil {
		closeWriter := w.startSnapshots(work)
		defer func() {
			if errors.Is(context.Cause(work), ErrShutdownDeadline) {
				// kafka-go's Writer.Close waits for a write in flight, which
				// ctx does not end: Run returns by the deadline, the writer
				// closes when its own write timeout ends the write.
				go closeWriter()
				return
			}
			closeWriter()
		}()
	}
	g, gctx := errgroup.WithContext(work)
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	context.AfterFunc(gctx, stopFetch)

	in := make(chan fetched, cfg.Batch.Size)
	out := make(chan output, cfg.Worker.MaxPendingBatches)
	// One group waits while another commits: a crash re-delivers at most
	// the two groups between publish and commit.
	commits := make(chan committing, 1)
	g.Go(func() error { defer close(in); w.fetch(fetchCtx, reader, in); return nil })
	g.Go(func() error { return w.watch(fetchCtx) })
	learnIn := in
	if len(st.runs) > 0 {
		// A replay from a snapshot: learn in the recorded order.
		ordered := make(chan fetched, cfg.Batch.Size)
		learnIn = ordered
		g.Go(func() error {
			defer close(ordered)
			w.followOrder(gctx, in, ordered, st.runs, st.feedbackParts, w.assigned, cfg.Kafka.RebalanceTimeout+30*time.Second)
			return nil
		})
	}
	g.Go(func() error { defer close(out); return w.model(gctx, learnIn, out) })
	g.Go(func() error { defer close(commits); return w.publish(gctx, out, commits) })
	g.Go(func() error { return w.commit(gctx, reader, commits) })
	err := g.Wait()
	// The stages have ended, so the shutdown has begun even if ctx has
	// not (a stage failed): what is left is bounded by the same deadline.
	startDeadline()
	if w.caps.snapshotter != nil {
		w.drainSnapshots()
		if cfg.Snapshot.OnShutdown && context.Cause(work) == nil {
			// Drained and committed: the model has learned exactly what
			// the group committed.
			w.finalSnapshot(work, w.caps.snapshotter)
		}
	}
	return stopped(err, context.Cause(work))
}

// stopped is Run's error for the group's first error err and the cause of
// the end of its work context.
func stopped(err, cause error) error {
	switch {
	case err != nil && errors.Is(cause, ErrShutdownDeadline):
		return fmt.Errorf("worker stopped: %w (%w)", ErrShutdownDeadline, err)
	case err != nil:
		return fmt.Errorf("worker stopped: %w", err)
	case errors.Is(cause, ErrShutdownDeadline):
		// The stages drained, but a snapshot was still being published.
		return fmt.Errorf("worker stopped: %w (publishing a snapshot)", ErrShutdownDeadline)
	}
	return nil
}

// connect checks that the brokers accept this worker's TLS and SASL (so a
// wrong password or CA stops it at once, saying so), then ensures its
// topics.
func (w *Worker) connect(ctx context.Context, client *kafka.Client, specs []TopicSpec) error {
	if w.connErr != nil {
		return w.connErr
	}
	if err := w.conn.Check(ctx); err != nil {
		return err
	}
	// A broker that fails as the worker starts costs a retry, not the
	// start; a wrong setting (topics.create false, a refused creation)
	// stops it at once.
	return retryRead(ctx, w.conn, w.cfg.Snapshot.RestoreTimeout, w.log, "ensuring topics", unreachable, func(ctx context.Context) error {
		return EnsureTopics(ctx, client, specs, w.cfg.Topics.Create, w.log)
	})
}

// closeOutputs closes the worker's outputs.
func (w *Worker) closeOutputs() {
	if err := w.out.close(); err != nil {
		w.log.Warn("closing outputs", "err", err)
	}
}
