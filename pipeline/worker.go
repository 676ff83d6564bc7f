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

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// Worker is one member of the consumer group: it fetches feedback, decodes
// and validates it, batches it into Arrow records, hands each batch to the
// recommender, publishes the refreshed lists and dead letters, and commits
// the batch's offsets once every output is acknowledged.
//
// Three goroutines form the pipeline, joined by channels:
//
//	fetch:   FetchMessage, decode, validate        -> fetched
//	model:   batch, sessions, Arrow, Learn, encode -> outputs   (owns the model)
//	publish: publish lists and dead letters, wait for acks, commit
//
// The model stage may run up to worker.max_pending_batches ahead of the
// publish stage, which publishes what has queued up as one group and then
// commits it; commits stay in batch order and follow their batch's
// acknowledgements, so a crash re-delivers at most the group in flight.
type Worker struct {
	cfg  configs.Config
	log  *slog.Logger
	conn *kafkaconn.Conn // how every client reaches the brokers
	// connErr is why kafka.tls/kafka.sasl gave no Conn; Run returns it.
	connErr error
	rec     model.Recommender
	stats   *Stats
	recs    sink.Sink
	dlq     sink.Sink
	dec     sink.Sink
	order   sink.Sink // the order log (nil: off)
	// decisions the model took during the batch in hand (model goroutine)
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
	reward  model.Reward
	sampled int // events seen by the quality sampler

	// snapshots (model goroutine, then the snapshot goroutine)
	consumed    map[int32]int64 // next offset per partition of the batches learned
	snapAt      time.Time
	snapBatches int
	snaps       chan []byte
	snapsDone   chan struct{} // closed when the snapshot publisher has stopped
	snapWriter  *kafka.Writer
	restored    model.SnapshotMeta
	kept        []StoredSnapshot // the group's snapshots on the topic, oldest first

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

// NewWorker returns a worker for cfg that serves rec. stats may be nil.
func NewWorker(cfg configs.Config, log *slog.Logger, rec model.Recommender, stats *Stats) *Worker {
	if stats == nil {
		stats = &Stats{}
	}
	w := &Worker{cfg: cfg, log: log, rec: rec, stats: stats, gone: make(chan error, 1), logLimit: telemetry.NewLimiter(logRepeatInterval),
		dedupe: NewDedupe(cfg.Dedupe.Window), version: "devel"}
	if w.conn, w.connErr = kafkaconn.FromConfig(cfg.Kafka); w.connErr != nil {
		w.conn = kafkaconn.Plain(cfg.Kafka.Brokers) // never dialled: Run returns connErr
	}
	w.recs = sink.NewKafka(w.writerConfig(cfg.Topics.Recommendations))
	w.dlq = sink.NewKafka(w.writerConfig(cfg.Topics.DLQ))
	w.dec = sink.NewKafka(w.writerConfig(cfg.Topics.Decisions))
	r := cfg.Recommender.DQN.Reward
	w.reward = model.Reward{Click: r.Click, View: r.View, ViewPerMinute: r.ViewPerMinute, RatingCenter: r.RatingCenter, RatingScale: r.RatingScale}
	if d, ok := rec.(DecisionSource); ok {
		d.SetDecisionHook(func(dec model.Decision) { w.taken = append(w.taken, dec) })
	}
	return w
}

// writerConfig is the sink configuration of an output topic.
func (w *Worker) writerConfig(topic string) sink.WriterConfig {
	c := w.cfg
	return sink.WriterConfig{
		Brokers: c.Kafka.Brokers, Topic: topic, ClientID: c.Kafka.ClientID,
		BatchTimeout: c.Sink.BatchTimeout, BatchSize: c.Sink.BatchSize,
		WriteTimeout: c.Sink.WriteTimeout, MaxAttempts: c.Sink.MaxAttempts,
		Transport: w.conn.Transport(), Logger: w.log,
	}
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
// worker.shutdown_timeout, leaves the group and closes its writers. It
// returns nil after a clean drain, or the first error that stopped the
// pipeline; the batch that failed is not committed.
func (w *Worker) Run(ctx context.Context) error {
	cfg := w.cfg
	client := w.conn.Client()
	specs := []TopicSpec{
		{Name: cfg.Topics.Feedback, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
		{Name: cfg.Topics.Recommendations, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
		{Name: cfg.Topics.DLQ, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
		{Name: cfg.Topics.Decisions, Partitions: 1, ReplicationFactor: cfg.Topics.ReplicationFactor},
	}
	snapper, snapshots := w.rec.(model.Snapshotter)
	if snapshots {
		specs = append(specs, TopicSpec{Name: cfg.Snapshot.Topic, Partitions: 1, ReplicationFactor: cfg.Topics.ReplicationFactor,
			Configs: map[string]string{"cleanup.policy": "compact"}})
		if cfg.Snapshot.OrderTopic != "" {
			specs = append(specs, TopicSpec{Name: cfg.Snapshot.OrderTopic, Partitions: 1, ReplicationFactor: cfg.Topics.ReplicationFactor})
			w.order = sink.NewKafka(w.writerConfig(cfg.Snapshot.OrderTopic))
		}
	}
	if err := w.connect(ctx, client, specs); err != nil {
		w.closeSinks()
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was consumed
		}
		return err
	}

	w.consumed, w.snapAt, w.decider = map[int32]int64{}, time.Now(), true
	if w.replica = cfg.Snapshot.Replica; w.replica == "" {
		w.replica = DefaultReplica()
	}
	if r, ok := w.rec.(interface{ SetReplica(string) }); ok {
		r.SetReplica(w.replica)
	}
	var restored *model.Snapshot
	var restoredID string
	var listed []StoredSnapshot // the group's snapshots restore read
	var listedTo map[int]int64  // where restore stopped reading the snapshot topic
	if snapshots && cfg.Snapshot.Restore {
		var err error
		if restored, restoredID, listed, listedTo, err = w.restore(ctx, snapper); err != nil {
			w.closeSinks()
			if ctx.Err() != nil {
				return nil // stopped while starting: nothing was consumed
			}
			return err
		}
	}
	if _, ok := w.rec.(model.Replica); ok && snapshots && cfg.Snapshot.Merge {
		w.peers = NewPeers(w.conn, cfg.Snapshot.Topic, cfg.Kafka.Group, w.replica, w.log)
		w.peers.Seed(listed, restoredID, restored) // what restore read is not read again
		if restored != nil {
			w.mergeRestored(w.rec.(model.Replica))
		}
		peersCtx, stopPeers := context.WithCancel(context.Background())
		peersDone := make(chan struct{})
		go func() { defer close(peersDone); w.peers.Run(peersCtx, listedTo) }()
		defer func() { stopPeers(); <-peersDone }()
	}
	// The recorded order is followed when the snapshot was written by a
	// worker alone and this one has no live peers either (deterministic
	// replay is for a single worker): the order of several replicas'
	// partitions would hold it back until the order times out. A peer may
	// not have published a snapshot yet, so followOrder also gives the
	// order up unless the group assigned every partition to this worker.
	var runs []orderRun
	var feedbackParts []int
	if restored != nil && w.order != nil && restored.Meta.Replicas <= 1 && (w.peers == nil || len(w.peers.Live(time.Now(), cfg.Snapshot.PeerTimeout)) == 0) {
		var err error
		if runs, feedbackParts, err = orderFrom(ctx, w.conn, cfg.Snapshot.OrderTopic, cfg.Topics.Feedback, cfg.Kafka.Group, restored.Meta.Created, restored.Meta.Offsets); err != nil {
			w.log.Warn("not following the recorded order: reading it failed", "topic", cfg.Snapshot.OrderTopic, "err", err)
		} else if len(runs) > 0 {
			w.log.Info("following the recorded order from the restored snapshot", "topic", cfg.Snapshot.OrderTopic, "runs", len(runs))
		}
	}
	if snapshots {
		stopSnapshots := w.startSnapshots()
		defer stopSnapshots()
	}

	w.assigned = newAssignment(cfg.Topics.Feedback)
	w.startHealth(client, specs)
	reader := kafka.NewReader(w.readerConfig())
	w.log.Info("joining consumer group", "group", cfg.Kafka.Group, "topic", cfg.Topics.Feedback, "brokers", w.conn)

	// work carries the publish and commit calls. It outlives ctx by up to the
	// shutdown deadline, so the batch in hand can still be published.
	work, cancelWork := context.WithCancelCause(context.Background())
	defer cancelWork(nil)
	stopDeadline := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(cfg.Worker.ShutdownTimeout, func() { cancelWork(ErrShutdownDeadline) })
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stopDeadline()

	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	context.AfterFunc(work, stopFetch)

	in := make(chan fetched, cfg.Batch.Size)
	out := make(chan output, cfg.Worker.MaxPendingBatches)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	fail := func(err error) {
		if err != nil {
			errs <- err
			cancelWork(err)
		}
	}

	// One group waits while another commits: a crash re-delivers at most
	// the two groups between publish and commit.
	commits := make(chan committing, 1)
	wg.Add(5)
	go func() { defer wg.Done(); defer close(in); w.fetch(fetchCtx, reader, in) }()
	go func() { defer wg.Done(); fail(w.watch(fetchCtx)) }()
	learnIn := in
	if len(runs) > 0 {
		// A replay from a snapshot: learn in the recorded order.
		ordered := make(chan fetched, cfg.Batch.Size)
		learnIn = ordered
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(ordered)
			w.followOrder(work, in, ordered, runs, feedbackParts, w.assigned, cfg.Kafka.RebalanceTimeout+30*time.Second)
		}()
	}
	go func() { defer wg.Done(); defer close(out); fail(w.model(work, learnIn, out)) }()
	go func() { defer wg.Done(); defer close(commits); fail(w.publish(work, out, commits)) }()
	go func() { defer wg.Done(); fail(w.commit(work, reader, commits)) }()
	wg.Wait()
	if snapshots {
		w.drainSnapshots()
		if cfg.Snapshot.OnShutdown && context.Cause(work) == nil {
			// Drained and committed: the model has learned exactly what
			// the group committed.
			w.finalSnapshot(snapper)
		}
	}

	w.closing.Store(true)
	closeErr := reader.Close() // leaves the group so partitions move at once
	w.closeSinks()
	close(errs)
	if err := <-errs; err != nil {
		if cause := context.Cause(work); errors.Is(cause, ErrShutdownDeadline) {
			return fmt.Errorf("worker stopped: %w (%v)", ErrShutdownDeadline, err)
		}
		return fmt.Errorf("worker stopped: %w", err)
	}
	if closeErr != nil {
		w.log.Warn("leaving consumer group", "err", closeErr)
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

func (w *Worker) closeSinks() {
	for _, s := range []sink.Sink{w.recs, w.dlq, w.dec, w.order} {
		if s == nil {
			continue
		}
		if err := s.Close(); err != nil {
			w.log.Warn("closing writer", "err", err)
		}
	}
}
