package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// The stages' telemetry. observe wraps a step of a stage (decode, learn,
// commit) with its span under each batch's span, its error and its time,
// so that the stages carry no span code of their own. Three kinds of span
// are not steps and are started here by hand: the batch's CONSUMER span,
// which lives from the first fetch to the commit across stages; the
// publish and PRODUCER send spans, whose context must go into the lists'
// headers before they are published; and the decision spans, which carry
// the times the model measured.

// observe runs f as the step name of a stage for the batches whose spans
// are parents: f's time goes to nanos (nil: not counted) and, for each
// traced batch, to a child span named name, from f's start to its end,
// with attrs, the attributes f returns and f's error. f's ctx carries the
// first span, so that what f traces nests under it.
func (w *Worker) observe(ctx context.Context, name string, parents []trace.Span, nanos *atomic.Int64, attrs []attribute.KeyValue,
	f func(context.Context) ([]attribute.KeyValue, error)) error {
	start := time.Now()
	spans := make([]trace.Span, 0, len(parents))
	fctx := ctx
	for i, p := range parents {
		sctx, s := w.tracer.Start(trace.ContextWithSpan(ctx, p), name, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
		if i == 0 {
			fctx = sctx
		}
		spans = append(spans, s)
	}
	more, err := f(fctx)
	done := time.Now()
	if nanos != nil {
		nanos.Add(int64(done.Sub(start)))
	}
	endSpans(spans, err, done, more...)
	return err
}

// endSpans ends spans at at, with attrs and err (if not nil) recorded.
func endSpans(spans []trace.Span, err error, at time.Time, attrs ...attribute.KeyValue) {
	for _, s := range spans {
		s.SetAttributes(attrs...)
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, err.Error())
		}
		s.End(trace.WithTimestamp(at))
	}
}

// batchTrace follows a batch to its commit: its span (nil: not traced)
// and when its first message was fetched.
type batchTrace struct {
	span  trace.Span
	first time.Time
}

// startBatch starts following the batch of items.
func (w *Worker) startBatch(items []fetched) batchTrace {
	b := batchTrace{first: items[0].at}
	if w.tracing {
		_, b.span = w.startBatchSpan(items)
	}
	return b
}

func (b batchTrace) traced() bool { return b.span != nil }

// spans is the batch's span as the parents of a step (none: not traced).
func (b batchTrace) spans() []trace.Span {
	if b.span == nil {
		return nil
	}
	return []trace.Span{b.span}
}

// fail ends the span of a batch that failed with err (nil: it did not).
func (b batchTrace) fail(err error) {
	if err != nil && b.span != nil {
		endSpans(b.spans(), err, time.Now())
	}
}

// deadLetter records a dead letter of the batch as a "dlq" event.
func (b batchTrace) deadLetter(m kafka.Message, class string, err error) {
	if b.span != nil {
		b.span.AddEvent("dlq", trace.WithAttributes(append(telemetry.MessageAttrs(m.Partition, m.Offset),
			attribute.String("error.type", class), attribute.String("adaptrec.dlq.reason", err.Error()))...))
	}
}

// notCommitted ends the spans of batches whose outputs failed.
func notCommitted(batches []batchTrace) {
	for _, b := range batches {
		if b.span != nil {
			b.span.SetStatus(codes.Error, "not committed")
			b.span.End()
		}
	}
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
