package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

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
