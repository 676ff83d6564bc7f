package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/model/session"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

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

// model owns the recommender: it batches, assigns sessions, builds the Arrow
// record, learns and encodes the outputs.
func (w *Worker) model(ctx context.Context, in <-chan fetched, out chan<- output) error {
	asm := session.NewAssembler(w.cfg.Session)
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
