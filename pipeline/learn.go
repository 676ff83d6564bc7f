package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/model/session"
	"github.com/adaptrec/adaptrec/sink"
)

// The learn stage owns the model: it batches what the fetch stage decoded,
// routes dead letters and duplicates, assigns sessions, builds the Arrow
// record, learns, and encodes the batch's outputs for the publish stage.

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
			if w.caps.replica != nil && w.peers != nil {
				w.mergePeers(w.caps.replica)
			}
			if w.caps.snapshotter != nil {
				if o.snapshot, err = w.encodeSnapshot(w.caps.snapshotter, false); err != nil {
					w.log.Error("snapshot", "err", err)
				}
			}
		}
		w.stats.Users.Store(int64(asm.Users()))
		return send(ctx, out, o)
	})
}

// send hands v to out unless ctx ends first.
func send[T any](ctx context.Context, out chan<- T, v T) error {
	select {
	case out <- v:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// processBatch turns one batch of fetched messages into its outputs: the
// dead letters and the order log entry, the lists the model serves after
// learning the valid events, and the decisions it took meanwhile.
func (w *Worker) processBatch(ctx context.Context, items []fetched, asm *session.Assembler) (o output, err error) {
	bt := w.startBatch(items)
	o.batch = bt
	defer func() { bt.fail(err) }() // o is reset when err is returned
	if w.caps.observer != nil && w.cfg.Session.RebuildEvents > 0 {
		if err := w.rebuildSessions(ctx, items, asm, w.caps.observer); err != nil {
			return output{}, err
		}
	}
	var batch *feedback.Batch
	err = w.observe(ctx, "decode", o.batch.spans(), nil, nil, func(context.Context) ([]attribute.KeyValue, error) {
		var attrs []attribute.KeyValue
		var rerr error
		batch, attrs, rerr = w.route(items, asm, &o)
		return attrs, rerr
	})
	if err != nil {
		return output{}, err
	}
	defer batch.Release()
	if batch.Len() > 0 {
		if o.lists, err = w.learnBatch(ctx, o.batch, batch, items); err != nil {
			return output{}, err
		}
	}
	if o.dec, err = w.decisions(o.batch, items[len(items)-1].msg); err != nil {
		return output{}, err
	}
	if w.metrics != nil {
		w.metrics.Model(w.rec.Params(), asm.Users())
	}
	w.statusArchitecture(time.Now())
	return o, nil
}

// route sends each fetched message where it belongs: a bad one to the
// dead letters, a duplicate nowhere (it is counted), a valid event to its
// session; it records the batch's offsets and order and returns the Arrow
// record of the valid events with the decode span's attributes.
func (w *Worker) route(items []fetched, asm *session.Assembler, o *output) (*feedback.Batch, []attribute.KeyValue, error) {
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
			o.batch.deadLetter(it.msg, class, it.err)
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
			return nil, nil, err
		}
		o.order = append(o.order, m)
	}
	if w.metrics != nil {
		w.metrics.Batch(len(items), lagOf(last))
	}
	return asm.Flush(), []attribute.KeyValue{attribute.Int("adaptrec.events.valid", valid), attribute.Int("adaptrec.events.dead", len(o.dead)),
		attribute.Int64("adaptrec.decode.ns", int64(decode))}, nil
}

// lagOf is the lag of each partition after its last message of a batch.
func lagOf(last map[int]kafka.Message) map[int]int64 {
	lag := make(map[int]int64, len(last))
	for p, m := range last {
		lag[p] = max(0, m.HighWaterMark-m.Offset-1)
	}
	return lag
}

// learnBatch learns the batch's valid events and encodes the lists the
// model serves after them.
func (w *Worker) learnBatch(ctx context.Context, bt batchTrace, batch *feedback.Batch, items []fetched) ([]kafka.Message, error) {
	var lists []model.Recommendation
	attrs := []attribute.KeyValue{attribute.String("adaptrec.model", w.rec.Name()), attribute.Int("adaptrec.events", batch.Len())}
	err := w.observe(ctx, "learn", bt.spans(), &w.stats.LearnNanos, attrs, func(lctx context.Context) ([]attribute.KeyValue, error) {
		var err error
		lists, err = w.learn(lctx, batch, items)
		return []attribute.KeyValue{attribute.Int("adaptrec.lists", len(lists))}, err
	})
	if err != nil {
		return nil, err
	}
	msgs := make([]kafka.Message, 0, len(lists))
	for _, l := range lists {
		m, err := sink.RecommendationMessage(l)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// decisions encodes, logs, counts and traces the architecture decisions
// the model took while it learned the batch that ends with last.
func (w *Worker) decisions(bt batchTrace, last kafka.Message) ([]kafka.Message, error) {
	var msgs []kafka.Message
	for _, d := range w.taken {
		m, err := sink.DecisionMessage(w.cfg.Kafka.Group, d)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
		w.log.Info("architecture decision", "topic", last.Topic, "partition", last.Partition, "offset", last.Offset,
			"epoch", d.Epoch, "action", d.Action.String(), "before", d.Before, "after", d.After,
			"params", d.Params, "rewarded", d.Rewarded, "reward", d.Reward)
		if !d.Rewarded {
			w.metrics.Decision(string(d.Action.Kind))
		}
		w.status.Decision(d, d.At)
		if bt.traced() {
			w.decisionSpan(trace.ContextWithSpan(context.Background(), bt.span), d)
		}
	}
	w.taken = w.taken[:0]
	return msgs, nil
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
	every := w.cfg.Metrics.QualitySampleEvery
	if w.metrics != nil && every > 0 && w.caps.probed != nil {
		var hits []bool
		lists, err = w.caps.probed.LearnProbed(ctx, batch, func(_ int, ok bool, rank func() int) {
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
	if w.caps.snapshotter == nil {
		return nil
	}
	replica := w.caps.replica != nil && w.peers != nil
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
			w.mergePeers(w.caps.replica)
		}
		return nil
	}
	if replica {
		w.mergePeers(w.caps.replica)
	}
	w.snapBatches, w.snapAt = 0, time.Now()
	blob, err := w.encodeSnapshot(w.caps.snapshotter, false)
	if err != nil {
		w.log.Error("snapshot", "err", err)
		return nil
	}
	return send(ctx, out, output{snapshot: blob})
}
