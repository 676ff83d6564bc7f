package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/model/session"
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
	snapsDone   chan struct{}    // closed when the snapshot publisher has stopped
	store       *snapstore.Store // the snapshot topic (snapStore)
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

type fetched struct {
	msg    kafka.Message
	ev     feedback.Event
	err    error
	at     time.Time     // fetched
	decode time.Duration // time spent decoding (tracing only)
}

type output struct {
	lists   []kafka.Message
	dead    []kafka.Message
	dec     []kafka.Message // architecture decisions
	order   []kafka.Message // the batch's order (order log)
	commits []kafka.Message // the last message of every partition of the batch
	events  int
	dups    int // duplicates: committed, neither learned nor dead-lettered
	batch   batchTrace
	// snapshot taken after this batch, published once it is committed
	snapshot []byte
	// produce times of the batch's valid events (metrics only)
	produced []time.Time
}

// batchTrace follows a batch to its commit: its span (nil: not traced)
// and when its first message was fetched.
type batchTrace struct {
	span  trace.Span
	first time.Time
}

// committing is a group of published batches whose offsets are ready.
type committing struct {
	offsets   map[int]kafka.Message
	batches   []batchTrace
	snapshots [][]byte
}

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
	var listed []snapstore.Stored // the group's snapshots restore read
	var listedTo map[int]int64    // where restore stopped reading the snapshot topic
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
		w.peers = NewPeers(w.snapStore(), w.replica, w.log)
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

func (w *Worker) readerConfig() kafka.ReaderConfig {
	cfg := w.cfg
	start := kafka.FirstOffset
	if cfg.Kafka.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	return kafka.ReaderConfig{
		Brokers:               cfg.Kafka.Brokers,
		GroupID:               cfg.Kafka.Group,
		Topic:                 cfg.Topics.Feedback,
		Dialer:                w.conn.Dialer(),
		QueueCapacity:         max(100, cfg.Batch.Size),
		MinBytes:              1,
		MaxBytes:              cfg.Kafka.FetchMaxBytes,
		MaxWait:               cfg.Kafka.FetchMaxWait,
		ReadBatchTimeout:      cfg.Kafka.RequestTimeout,
		HeartbeatInterval:     cfg.Kafka.HeartbeatInterval,
		SessionTimeout:        cfg.Kafka.SessionTimeout,
		RebalanceTimeout:      cfg.Kafka.RebalanceTimeout,
		JoinGroupBackoff:      cfg.Kafka.JoinGroupBackoff,
		CommitInterval:        0, // synchronous: CommitMessages returns once the broker has the offsets
		StartOffset:           start,
		WatchPartitionChanges: true,
		ReadBackoffMin:        10 * time.Millisecond,
		ReadBackoffMax:        500 * time.Millisecond,
		Logger: kafka.LoggerFunc(func(f string, a ...any) {
			if w.assigned != nil {
				w.assigned.note(f, a)
			}
			w.groupLine(f, a)
			w.log.Debug(fmt.Sprintf(f, a...), "component", "kafka-go")
		}),
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			level := slog.LevelWarn
			if w.closing.Load() {
				level = slog.LevelDebug // closing connections time out reads on purpose
			}
			w.groupLine(f, a)
			w.readerLine(f, a)
			msg := fmt.Sprintf(f, a...)
			w.logLimited(msg, level, msg, "component", "kafka-go")
		}),
	}
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

// fetch reads messages and decodes them until ctx ends. Decoding here keeps
// it off the model goroutine.
//
// An error from FetchMessage is not waited on: kafka-go's partition
// readers already back off (up to ReadBackoffMax) and look
// the leader up again before each try, and queue their errors in front of
// the messages. Sleeping per error would leave the errors of a failed
// leader queued there, and the messages behind them waiting, long after
// the partition had a new leader. Repeated errors are rate-limited
// (logLimited).
func (w *Worker) fetch(ctx context.Context, r *kafka.Reader, in chan<- fetched) {
	lim := w.limits()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return
			}
			w.logLimited("fetching "+err.Error(), slog.LevelWarn, "fetching", "topic", w.cfg.Topics.Feedback, "err", err)
			continue
		}
		w.stats.Fetched.Add(1)
		at := time.Now()
		ev, derr := feedback.DecodeAt(m.Value, m.Time, lim)
		var took time.Duration
		if w.tracing {
			took = time.Since(at)
		}
		select {
		case in <- fetched{msg: m, ev: ev, err: derr, at: at, decode: took}:
		case <-ctx.Done():
			return
		}
	}
}

func (w *Worker) limits() feedback.Limits {
	v := w.cfg.Validate
	return feedback.Limits{
		MaxBytes: v.MaxEventBytes, MaxIDBytes: v.MaxIDBytes,
		RatingMin: v.RatingMin, RatingMax: v.RatingMax,
		MaxFuture: v.MaxFuture, MinTime: v.MinTimeValue(),
	}
}

// model owns the recommender: it batches, assigns sessions, builds the Arrow
// record, learns and encodes the outputs.
func (w *Worker) model(ctx context.Context, in <-chan fetched, out chan<- output) error {
	asm := session.NewAssembler(wire.Session(w.cfg.Session))
	asm.OnSplit = w.userSplit
	defer asm.Release()
	b := Batcher[fetched]{Size: w.cfg.Batch.Size, MaxWait: w.cfg.Batch.MaxWait,
		Idle: w.cfg.Snapshot.Idle, OnIdle: func() error { return w.idle(ctx, out) }}
	return b.Run(ctx, in, func(items []fetched) error {
		o, err := w.processBatch(ctx, items, asm)
		if err != nil {
			return err
		}
		if w.snapshotDue() {
			if r, ok := w.rec.(model.Replica); ok && w.peers != nil {
				w.mergePeers(r)
			}
			if snapper, ok := w.rec.(model.Snapshotter); ok {
				if o.snapshot, err = w.encodeSnapshot(snapper, false); err != nil {
					w.log.Error("snapshot", "err", err)
				}
			}
		}
		w.stats.Users.Store(int64(asm.Users()))
		select {
		case out <- o:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
}

func (w *Worker) processBatch(ctx context.Context, items []fetched, asm *session.Assembler) (o output, err error) {
	o.batch.first = items[0].at
	var bctx context.Context
	var span trace.Span
	if w.tracing {
		bctx, span = w.startBatchSpan(items)
		o.batch.span = span
		defer func() {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
				span.End()
			}
		}()
	}
	if obs, ok := w.rec.(model.Observer); ok && w.cfg.Session.RebuildEvents > 0 {
		if err := w.rebuildSessions(ctx, items, asm, obs); err != nil {
			return output{}, err
		}
	}
	start := time.Now()
	last := map[int]kafka.Message{}
	valid := 0
	var decode time.Duration
	for _, it := range items {
		last[it.msg.Partition] = it.msg
		decode += it.decode
		if it.err != nil {
			class := string(feedback.ClassOf(it.err))
			o.dead = append(o.dead, sink.DeadLetter(it.msg, class, it.err.Error()))
			w.log.Debug("dead letter", "topic", it.msg.Topic, "partition", it.msg.Partition, "offset", it.msg.Offset, "class", class, "err", it.err)
			w.metrics.DeadLetter(class)
			if span != nil {
				span.AddEvent("dlq", trace.WithAttributes(append(telemetry.MessageAttrs(it.msg.Partition, it.msg.Offset),
					attribute.String("error.type", class), attribute.String("adaptrec.dlq.reason", it.err.Error()))...))
			}
			continue
		}
		if w.dedupe.Seen(EventKey(it.ev, it.msg.Value)) {
			o.dups++
			w.log.Debug("duplicate not learned", "topic", it.msg.Topic, "partition", it.msg.Partition, "offset", it.msg.Offset, "event_id", it.ev.EventID)
			w.metrics.Duplicate()
			continue
		}
		asm.Add(it.ev, int32(it.msg.Partition), it.msg.Offset, it.msg.Time)
		valid++
		if w.metrics != nil {
			w.metrics.Event(it.ev.Type.String())
			o.produced = append(o.produced, it.msg.Time)
		}
	}
	for p, m := range last {
		o.commits = append(o.commits, m)
		w.consumed[int32(p)] = m.Offset + 1
	}
	o.events = len(items)
	if w.order != nil {
		m, err := orderMessage(w.cfg.Kafka.Group, items)
		if err != nil {
			return output{}, err
		}
		o.order = append(o.order, m)
	}
	batch := asm.Flush()
	defer batch.Release()
	if span != nil {
		_, ds := w.tracer.Start(bctx, "decode", trace.WithTimestamp(start), trace.WithAttributes(
			attribute.Int("adaptrec.events.valid", valid), attribute.Int("adaptrec.events.dead", len(o.dead)),
			attribute.Int64("adaptrec.decode.ns", int64(decode))))
		ds.End()
	}
	if w.metrics != nil {
		lag := make(map[int]int64, len(last))
		for p, m := range last {
			lag[p] = max(0, m.HighWaterMark-m.Offset-1)
		}
		w.metrics.Batch(len(items), lag)
	}
	if valid > 0 {
		lctx := ctx
		var ls trace.Span
		if span != nil {
			lctx, ls = w.tracer.Start(trace.ContextWithSpan(ctx, span), "learn", trace.WithAttributes(
				attribute.String("adaptrec.model", w.rec.Name()), attribute.Int("adaptrec.events", valid)))
		}
		lists, err := w.learn(lctx, batch, items)
		if ls != nil {
			ls.SetAttributes(attribute.Int("adaptrec.lists", len(lists)))
			ls.End()
		}
		if err != nil {
			return output{}, err
		}
		o.lists = make([]kafka.Message, 0, len(lists))
		for _, l := range lists {
			m, err := sink.RecommendationMessage(l)
			if err != nil {
				return output{}, err
			}
			o.lists = append(o.lists, m)
		}
	}
	lastMsg := items[len(items)-1].msg
	for _, d := range w.taken {
		m, err := sink.DecisionMessage(w.cfg.Kafka.Group, d)
		if err != nil {
			return output{}, err
		}
		o.dec = append(o.dec, m)
		w.log.Info("architecture decision", "topic", lastMsg.Topic, "partition", lastMsg.Partition, "offset", lastMsg.Offset,
			"epoch", d.Epoch, "action", d.Action.String(), "before", d.Before, "after", d.After,
			"params", d.Params, "rewarded", d.Rewarded, "reward", d.Reward)
		if !d.Rewarded {
			w.metrics.Decision(string(d.Action.Kind))
		}
		if span != nil {
			w.decisionSpan(bctx, d)
		}
	}
	w.taken = w.taken[:0]
	if w.metrics != nil {
		params := 0
		if p, ok := w.rec.(interface{ Params() int }); ok {
			params = p.Params()
		}
		w.metrics.Model(params, asm.Users())
	}
	return o, nil
}

// startBatchSpan starts the batch's CONSUMER span, linked to the producer
// span of every message whose trace was sampled (links to traces that were
// not kept would lead nowhere). Its parent is the first of them, so that
// producer's trace shows the batch, its publish and the lists it sent; the
// other producers reach it through their links. The sampler keeps a batch
// whose messages were sampled.
func (w *Worker) startBatchSpan(items []fetched) (context.Context, trace.Span) {
	var links []trace.Link
	for i := range items {
		m := &items[i].msg
		if sc := telemetry.Traceparent(m); sc.IsSampled() {
			links = append(links, trace.Link{SpanContext: sc, Attributes: telemetry.MessageAttrs(m.Partition, m.Offset)})
		}
	}
	ctx := context.Background()
	if len(links) > 0 {
		ctx = trace.ContextWithRemoteSpanContext(ctx, links[0].SpanContext)
	}
	attrs := append(telemetry.Messaging(w.cfg.Topics.Feedback),
		semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"),
		semconv.MessagingConsumerGroupName(w.cfg.Kafka.Group), semconv.MessagingBatchMessageCount(len(items)))
	return w.tracer.Start(ctx, "process "+w.cfg.Topics.Feedback,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithTimestamp(items[0].at), trace.WithAttributes(attrs...))
}

// decisionSpan records an architecture decision taken during learn, with
// the time the model measured for it.
func (w *Worker) decisionSpan(ctx context.Context, d model.Decision) {
	name := "architecture decision"
	if d.Rewarded {
		name = "architecture reward"
	}
	at := d.At
	if at.IsZero() {
		at = time.Now()
	}
	_, s := w.tracer.Start(ctx, name, trace.WithTimestamp(at), trace.WithAttributes(
		attribute.Int("adaptrec.decision.epoch", d.Epoch), attribute.String("adaptrec.decision.action", d.Action.String()),
		attribute.IntSlice("adaptrec.decision.before", d.Before), attribute.IntSlice("adaptrec.decision.after", d.After),
		attribute.Int("adaptrec.decision.params", d.Params), attribute.Float64("adaptrec.decision.reward", d.Reward),
		attribute.Bool("adaptrec.decision.rewarded", d.Rewarded)))
	s.End(trace.WithTimestamp(at.Add(d.Took)))
}

// learn calls the recommender, turning a panic into an error that names the
// batch's offsets; the batch is then not committed. With metrics on, one in
// metrics.quality_sample_every events is ranked (before it is learned) for
// the rolling HR@10, and every event's reward goes into the rolling mean.
func (w *Worker) learn(ctx context.Context, batch *feedback.Batch, items []fetched) (lists []model.Recommendation, err error) {
	defer func() {
		if p := recover(); p != nil {
			first, last := items[0].msg, items[len(items)-1].msg
			err = fmt.Errorf("model %s panicked on the batch from %s/%d@%d to %s/%d@%d: %v",
				w.rec.Name(), first.Topic, first.Partition, first.Offset, last.Topic, last.Partition, last.Offset, p)
			w.log.Error("model panicked", "topic", first.Topic, "partition", first.Partition, "offset", first.Offset, "err", err)
		}
	}()
	start := time.Now()
	every := w.cfg.Metrics.QualitySampleEvery
	probed, canProbe := w.rec.(model.Probed)
	if w.metrics != nil && every > 0 && canProbe {
		var hits []bool
		lists, err = probed.LearnProbed(ctx, batch, func(_ int, ok bool, rank func() int) {
			if !ok {
				return
			}
			if w.sampled++; w.sampled%every == 0 {
				hits = append(hits, rank() < 10)
			}
		})
		rewards := make([]float32, batch.Len())
		for i := range rewards {
			rewards[i] = w.reward.Of(batch, i)
		}
		w.metrics.Quality(hits, rewards)
	} else {
		lists, err = w.rec.Learn(ctx, batch)
	}
	w.stats.LearnNanos.Add(int64(time.Since(start)))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", w.rec.Name(), err)
	}
	return lists, nil
}

// publish writes each batch's outputs, waits for their acks, then hands the
// batch's offsets to the committer. Batches that queued up while the
// previous publish was in flight are published together (at most
// worker.max_pending_batches), so a broker round trip costs once per group,
// not once per batch; the commit of one group overlaps the publish of the
// next.
func (w *Worker) publish(ctx context.Context, out <-chan output, commits chan<- committing) error {
	var lists, dead []kafka.Message
	last := map[int]kafka.Message{}
	for o := range out {
		group := []output{o}
	drain:
		for len(group) < w.cfg.Worker.MaxPendingBatches {
			select {
			case more, ok := <-out:
				if !ok {
					break drain
				}
				group = append(group, more)
			default:
				break drain
			}
		}
		lists, dead = lists[:0], dead[:0]
		var decs, orders []kafka.Message
		clear(last)
		events, dups := 0, 0
		start := time.Now()
		spans := w.startSendSpans(group, start)
		var snaps [][]byte
		batches := make([]batchTrace, len(group))
		for i, g := range group {
			lists = append(lists, g.lists...)
			dead = append(dead, g.dead...)
			decs = append(decs, g.dec...)
			orders = append(orders, g.order...)
			for _, m := range g.commits {
				if prev, ok := last[m.Partition]; !ok || m.Offset > prev.Offset {
					last[m.Partition] = m
				}
			}
			events += g.events
			dups += g.dups
			batches[i] = g.batch
			if g.snapshot != nil {
				snaps = append(snaps, g.snapshot)
			}
		}

		var dlqErr, orderErr error
		var wg sync.WaitGroup
		if len(dead) > 0 {
			wg.Add(1)
			go func() { defer wg.Done(); dlqErr = w.dlq.Publish(ctx, dead...) }()
		}
		if w.order != nil && len(orders) > 0 {
			wg.Add(1)
			go func() { defer wg.Done(); orderErr = w.order.Publish(ctx, orders...) }()
		}
		recErr := w.recs.Publish(ctx, lists...)
		decErr := w.dec.Publish(ctx, decs...)
		wg.Wait()
		err := errors.Join(recErr, dlqErr, decErr, orderErr)
		acked := time.Now()
		for _, s := range spans {
			if err != nil {
				s.RecordError(err)
				s.SetStatus(codes.Error, err.Error())
			}
			s.End(trace.WithTimestamp(acked))
		}
		if err != nil {
			for _, b := range batches {
				if b.span != nil {
					b.span.SetStatus(codes.Error, "not committed")
					b.span.End()
				}
			}
			return fmt.Errorf("batch not committed: %w", err)
		}
		w.stats.PublishNanos.Add(int64(acked.Sub(start)))
		if w.metrics != nil {
			for _, g := range group {
				w.metrics.Published(len(g.lists), g.produced, acked)
			}
		}
		offsets := make(map[int]kafka.Message, len(last))
		for p, m := range last {
			offsets[p] = m
		}
		select {
		case commits <- committing{offsets: offsets, batches: batches, snapshots: snaps}:
		case <-ctx.Done():
			return fmt.Errorf("batch not committed: %w", context.Cause(ctx))
		}
		for _, g := range group {
			if g.events > 0 { // not a snapshot taken while idle
				w.stats.Batches.Add(1)
			}
		}
		w.stats.Groups.Add(1)
		w.stats.Events.Add(int64(events))
		w.stats.DLQ.Add(int64(len(dead)))
		w.stats.Duplicates.Add(int64(dups))
		w.stats.Lists.Add(int64(len(lists)))
		w.stats.Decisions.Add(int64(len(decs)))
	}
	return nil
}

// startSendSpans starts, for every traced batch of the group, a publish
// span and under it a PRODUCER span for its recommendation lists, whose
// context goes into the lists' headers.
func (w *Worker) startSendSpans(group []output, start time.Time) []trace.Span {
	if !w.tracing {
		return nil
	}
	var spans []trace.Span
	for i := range group {
		g := &group[i]
		if g.batch.span == nil {
			continue
		}
		pctx, ps := w.tracer.Start(trace.ContextWithSpan(context.Background(), g.batch.span), "publish", trace.WithTimestamp(start),
			trace.WithAttributes(attribute.Int("adaptrec.group.batches", len(group)), attribute.Int("adaptrec.dlq.messages", len(g.dead)),
				attribute.Int("adaptrec.decisions", len(g.dec))))
		attrs := append(telemetry.Messaging(w.cfg.Topics.Recommendations),
			semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("send"), semconv.MessagingBatchMessageCount(len(g.lists)))
		sctx, ss := w.tracer.Start(pctx, "send "+w.cfg.Topics.Recommendations, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithTimestamp(start), trace.WithAttributes(attrs...))
		if ss.SpanContext().IsSampled() && len(g.lists) > 0 {
			var hdr []kafka.Header
			telemetry.Propagator.Inject(sctx, telemetry.HeaderCarrier{Headers: &hdr})
			for j := range g.lists {
				g.lists[j].Headers = append(g.lists[j].Headers, hdr...)
			}
		}
		spans = append(spans, ss, ps)
	}
	return spans
}

// commit commits the offsets of published groups in order, merging those
// that queued up meanwhile into one request.
func (w *Worker) commit(ctx context.Context, r *kafka.Reader, commits <-chan committing) error {
	for c := range commits {
		offsets, batches := c.offsets, c.batches
	merge:
		for {
			select {
			case more, ok := <-commits:
				if !ok {
					break merge
				}
				for p, m := range more.offsets {
					offsets[p] = m // later groups have later offsets
				}
				batches = append(batches, more.batches...)
				c.snapshots = append(c.snapshots, more.snapshots...)
			default:
				break merge
			}
		}
		msgs := make([]kafka.Message, 0, len(offsets))
		for _, m := range offsets {
			msgs = append(msgs, m)
		}
		start := time.Now()
		var err error
		if len(msgs) > 0 {
			err = w.commitMessages(ctx, r, msgs)
		}
		done := time.Now()
		w.stats.CommitNanos.Add(int64(done.Sub(start)))
		for _, b := range batches {
			if b.first.IsZero() {
				continue // a snapshot taken while idle
			}
			w.metrics.Committed(b.first, done)
			if b.span == nil {
				continue
			}
			_, cs := w.tracer.Start(trace.ContextWithSpan(context.Background(), b.span), "commit", trace.WithTimestamp(start),
				trace.WithAttributes(semconv.MessagingConsumerGroupName(w.cfg.Kafka.Group), attribute.Int("adaptrec.commit.partitions", len(msgs))))
			if err != nil {
				cs.RecordError(err)
				cs.SetStatus(codes.Error, err.Error())
			}
			cs.End(trace.WithTimestamp(done))
			b.span.End(trace.WithTimestamp(done))
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("committing: %w", context.Cause(ctx))
			}
			// A rebalance took the partitions: the new owner re-reads from the
			// last commit (at-least-once), so this is not fatal.
			w.log.Warn("commit failed; the partitions' new owner re-reads from the last commit", "topic", w.cfg.Topics.Feedback, "err", err, "partitions", len(msgs))
			w.stats.CommitFailures.Add(1)
			continue
		}
		if len(msgs) > 0 {
			w.stats.Commits.Add(1)
		}
		if n := len(c.snapshots); n > 0 && w.snaps != nil {
			w.offerSnapshot(c.snapshots[n-1]) // the newest; its batch is committed
		}
	}
	return nil
}

// commitMessages commits msgs' offsets. A commit that fails while the
// group's coordinator moves to another broker is tried again, after a
// backoff, until sink.write_timeout has passed (the reader finds the new
// coordinator meanwhile); one the group refuses because it rebalanced is
// not: the partitions' new owner re-reads from the last commit.
func (w *Worker) commitMessages(ctx context.Context, r *kafka.Reader, msgs []kafka.Message) error {
	deadline := time.Now().Add(w.cfg.Sink.WriteTimeout)
	backoff := readBackoffMin
	var loggedAt time.Time
	for {
		err := r.CommitMessages(ctx, msgs...)
		if err == nil || ctx.Err() != nil || !commitRetriable(err) || !time.Now().Before(deadline) {
			return err
		}
		w.stats.CommitRetries.Add(1)
		if now := time.Now(); now.Sub(loggedAt) >= readLogEvery {
			loggedAt = now
			w.log.Warn("commit failed; retrying", "topic", w.cfg.Topics.Feedback, "partitions", len(msgs), "err", err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, readBackoffMax)
	}
}

// commitRetriable reports whether a failed commit may succeed if tried
// again: not when the group has moved on (a rebalance), whose new
// partition owners re-read from the last commit.
func commitRetriable(err error) bool {
	for _, e := range []kafka.Error{kafka.RebalanceInProgress, kafka.IllegalGeneration, kafka.UnknownMemberId, kafka.FencedInstanceID} {
		if errors.Is(err, e) {
			return false
		}
	}
	return sink.Retriable(err)
}

// maxEchoes bounds the snapshots an idle replica publishes after merging
// the others' without learning anything itself.
const maxEchoes = 3

// idle runs while no events arrive: it merges the other replicas'
// snapshots that came in, and publishes what the model learned since its
// last snapshot, so that replicas converge when the stream pauses. After
// merging without learning it publishes at most maxEchoes times, so that
// idle replicas do not answer each other's snapshots for ever.
func (w *Worker) idle(ctx context.Context, out chan<- output) error {
	snapper, ok := w.rec.(model.Snapshotter)
	if !ok {
		return nil
	}
	r, replica := w.rec.(model.Replica)
	replica = replica && w.peers != nil
	pending := replica && w.peers.Pending(time.Now(), w.cfg.Snapshot.PeerTimeout) > 0
	switch {
	case w.snapBatches > 0: // learned since the last snapshot: publish it
		w.echoes = 0
	case pending && w.echoes < maxEchoes:
		// Nothing learned: answer new snapshots of the others, a few
		// times, each round halving the replicas' spread.
		w.echoes++
	default:
		if pending {
			w.mergePeers(r)
		}
		return nil
	}
	if replica {
		w.mergePeers(r)
	}
	w.snapBatches, w.snapAt = 0, time.Now()
	blob, err := w.encodeSnapshot(snapper, false)
	if err != nil {
		w.log.Error("snapshot", "err", err)
		return nil
	}
	select {
	case out <- output{snapshot: blob}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
