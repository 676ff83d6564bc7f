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

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/feedback"
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
	cfg   configs.Config
	log   *slog.Logger
	rec   model.Recommender
	stats *Stats
	recs  sink.Sink
	dlq   sink.Sink
	dec   sink.Sink
	// decisions the model took during the batch in hand (model goroutine)
	taken []model.Decision
	// closing is set once the reader is being closed.
	closing atomic.Bool
}

// NewWorker returns a worker for cfg that serves rec. stats may be nil.
func NewWorker(cfg configs.Config, log *slog.Logger, rec model.Recommender, stats *Stats) *Worker {
	if stats == nil {
		stats = &Stats{}
	}
	wc := func(topic string) sink.WriterConfig {
		return sink.WriterConfig{
			Brokers: cfg.Kafka.Brokers, Topic: topic, ClientID: cfg.Kafka.ClientID,
			BatchTimeout: cfg.Sink.BatchTimeout, BatchSize: cfg.Sink.BatchSize,
			WriteTimeout: cfg.Sink.WriteTimeout, MaxAttempts: cfg.Sink.MaxAttempts,
		}
	}
	w := &Worker{
		cfg: cfg, log: log, rec: rec, stats: stats,
		recs: sink.NewKafka(wc(cfg.Topics.Recommendations)),
		dlq:  sink.NewKafka(wc(cfg.Topics.DLQ)),
		dec:  sink.NewKafka(wc(cfg.Topics.Decisions)),
	}
	if d, ok := rec.(DecisionSource); ok {
		d.SetDecisionHook(func(dec model.Decision) { w.taken = append(w.taken, dec) })
	}
	return w
}

// DecisionSource is a recommender that changes its own architecture; the
// worker publishes its decisions with the batch that caused them.
type DecisionSource interface {
	SetDecisionHook(func(model.Decision))
}

// Stats returns the worker's live counters.
func (w *Worker) Stats() *Stats { return w.stats }

type fetched struct {
	msg kafka.Message
	ev  feedback.Event
	err error
}

type output struct {
	lists   []kafka.Message
	dead    []kafka.Message
	dec     []kafka.Message // architecture decisions
	commits []kafka.Message // the last message of every partition of the batch
	events  int
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
	client := &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Timeout: cfg.Kafka.RequestTimeout}
	specs := []TopicSpec{
		{Name: cfg.Topics.Feedback, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
		{Name: cfg.Topics.Recommendations, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
		{Name: cfg.Topics.DLQ, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
		{Name: cfg.Topics.Decisions, Partitions: 1, ReplicationFactor: cfg.Topics.ReplicationFactor},
	}
	if err := EnsureTopics(ctx, client, specs, cfg.Topics.Create, w.log); err != nil {
		w.closeSinks()
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was consumed
		}
		return err
	}

	reader := kafka.NewReader(w.readerConfig())
	w.log.Info("joining consumer group", "group", cfg.Kafka.Group, "topic", cfg.Topics.Feedback, "brokers", cfg.Kafka.Brokers)

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
	commits := make(chan map[int]kafka.Message, 1)
	wg.Add(4)
	go func() { defer wg.Done(); defer close(in); w.fetch(fetchCtx, reader, in) }()
	go func() { defer wg.Done(); defer close(out); fail(w.model(work, in, out)) }()
	go func() { defer wg.Done(); defer close(commits); fail(w.publish(work, out, commits)) }()
	go func() { defer wg.Done(); fail(w.commit(work, reader, commits)) }()
	wg.Wait()

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
		Dialer:                &kafka.Dialer{ClientID: cfg.Kafka.ClientID, Timeout: cfg.Kafka.RequestTimeout, DualStack: true},
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
		Logger:                kafka.LoggerFunc(func(f string, a ...any) { w.log.Debug(fmt.Sprintf(f, a...), "component", "kafka-go") }),
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			level := slog.LevelWarn
			if w.closing.Load() {
				level = slog.LevelDebug // closing connections time out reads on purpose
			}
			w.log.Log(context.Background(), level, fmt.Sprintf(f, a...), "component", "kafka-go")
		}),
	}
}

func (w *Worker) closeSinks() {
	for _, s := range []sink.Sink{w.recs, w.dlq, w.dec} {
		if err := s.Close(); err != nil {
			w.log.Warn("closing writer", "err", err)
		}
	}
}

// fetch reads messages and decodes them until ctx ends. Decoding here keeps
// it off the model goroutine.
func (w *Worker) fetch(ctx context.Context, r *kafka.Reader, in chan<- fetched) {
	lim := feedback.Limits{
		MaxBytes: w.cfg.Validate.MaxEventBytes, MaxIDLength: w.cfg.Validate.MaxIDLength,
		RatingMin: w.cfg.Validate.RatingMin, RatingMax: w.cfg.Validate.RatingMax,
	}
	backoff := 10 * time.Millisecond
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return
			}
			w.log.Warn("fetching", "topic", w.cfg.Topics.Feedback, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		w.stats.Fetched.Add(1)
		ev, derr := feedback.Decode(m.Value, lim)
		select {
		case in <- fetched{msg: m, ev: ev, err: derr}:
		case <-ctx.Done():
			return
		}
	}
}

// model owns the recommender: it batches, assigns sessions, builds the Arrow
// record, learns and encodes the outputs.
func (w *Worker) model(ctx context.Context, in <-chan fetched, out chan<- output) error {
	asm := NewAssembler(w.cfg.Session)
	defer asm.Release()
	b := Batcher[fetched]{Size: w.cfg.Batch.Size, MaxWait: w.cfg.Batch.MaxWait}
	return b.Run(ctx, in, func(items []fetched) error {
		o, err := w.processBatch(ctx, items, asm)
		if err != nil {
			return err
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

func (w *Worker) processBatch(ctx context.Context, items []fetched, asm *Assembler) (o output, err error) {
	last := map[int]kafka.Message{}
	valid := 0
	for _, it := range items {
		last[it.msg.Partition] = it.msg
		if it.err != nil {
			class := string(feedback.ClassOf(it.err))
			o.dead = append(o.dead, sink.DeadLetter(it.msg, class, it.err.Error()))
			w.log.Debug("dead letter", "topic", it.msg.Topic, "partition", it.msg.Partition, "offset", it.msg.Offset, "class", class, "err", it.err)
			continue
		}
		asm.Add(it.ev, int32(it.msg.Partition), it.msg.Offset, it.msg.Time)
		valid++
	}
	for _, m := range last {
		o.commits = append(o.commits, m)
	}
	o.events = len(items)
	batch := asm.Flush()
	defer batch.Release()
	if valid > 0 {
		lists, err := w.learn(ctx, batch, items)
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
	for _, d := range w.taken {
		m, err := sink.DecisionMessage(w.cfg.Kafka.Group, d)
		if err != nil {
			return output{}, err
		}
		o.dec = append(o.dec, m)
		w.log.Info("architecture decision", "epoch", d.Epoch, "action", d.Action.String(), "before", d.Before, "after", d.After,
			"params", d.Params, "rewarded", d.Rewarded, "reward", d.Reward)
	}
	w.taken = w.taken[:0]
	return o, nil
}

// learn calls the recommender, turning a panic into an error that names the
// batch's offsets; the batch is then not committed.
func (w *Worker) learn(ctx context.Context, batch *feedback.Batch, items []fetched) (lists []model.Recommendation, err error) {
	defer func() {
		if p := recover(); p != nil {
			first, last := items[0].msg, items[len(items)-1].msg
			err = fmt.Errorf("model %s panicked on the batch from %s/%d@%d to %s/%d@%d: %v",
				w.rec.Name(), first.Topic, first.Partition, first.Offset, last.Topic, last.Partition, last.Offset, p)
			w.log.Error("model panicked", "err", err)
		}
	}()
	start := time.Now()
	lists, err = w.rec.Learn(ctx, batch)
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
func (w *Worker) publish(ctx context.Context, out <-chan output, commits chan<- map[int]kafka.Message) error {
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
		var decs []kafka.Message
		clear(last)
		events := 0
		for _, g := range group {
			lists = append(lists, g.lists...)
			dead = append(dead, g.dead...)
			decs = append(decs, g.dec...)
			for _, m := range g.commits {
				if prev, ok := last[m.Partition]; !ok || m.Offset > prev.Offset {
					last[m.Partition] = m
				}
			}
			events += g.events
		}

		start := time.Now()
		var dlqErr error
		var wg sync.WaitGroup
		if len(dead) > 0 {
			wg.Add(1)
			go func() { defer wg.Done(); dlqErr = w.dlq.Publish(ctx, dead...) }()
		}
		recErr := w.recs.Publish(ctx, lists...)
		decErr := w.dec.Publish(ctx, decs...)
		wg.Wait()
		if err := errors.Join(recErr, dlqErr, decErr); err != nil {
			return fmt.Errorf("batch not committed: %w", err)
		}
		w.stats.PublishNanos.Add(int64(time.Since(start)))
		offsets := make(map[int]kafka.Message, len(last))
		for p, m := range last {
			offsets[p] = m
		}
		select {
		case commits <- offsets:
		case <-ctx.Done():
			return fmt.Errorf("batch not committed: %w", context.Cause(ctx))
		}
		w.stats.Batches.Add(int64(len(group)))
		w.stats.Groups.Add(1)
		w.stats.Events.Add(int64(events))
		w.stats.DLQ.Add(int64(len(dead)))
		w.stats.Lists.Add(int64(len(lists)))
		w.stats.Decisions.Add(int64(len(decs)))
	}
	return nil
}

// commit commits the offsets of published groups in order, merging those
// that queued up meanwhile into one request.
func (w *Worker) commit(ctx context.Context, r *kafka.Reader, commits <-chan map[int]kafka.Message) error {
	for offsets := range commits {
	merge:
		for {
			select {
			case more, ok := <-commits:
				if !ok {
					break merge
				}
				for p, m := range more {
					offsets[p] = m // later groups have later offsets
				}
			default:
				break merge
			}
		}
		msgs := make([]kafka.Message, 0, len(offsets))
		for _, m := range offsets {
			msgs = append(msgs, m)
		}
		start := time.Now()
		err := r.CommitMessages(ctx, msgs...)
		w.stats.CommitNanos.Add(int64(time.Since(start)))
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("committing: %w", context.Cause(ctx))
			}
			// A rebalance took the partitions: the new owner re-reads from the
			// last commit (at-least-once), so this is not fatal.
			w.log.Warn("commit failed; the partitions' new owner re-reads from the last commit", "err", err, "partitions", len(msgs))
			w.stats.CommitFailures.Add(1)
			continue
		}
		w.stats.Commits.Add(1)
	}
	return nil
}
