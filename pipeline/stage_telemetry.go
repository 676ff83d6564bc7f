package pipeline

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// batchTrace follows a batch to its commit: its span (nil: not traced)
// and when its first message was fetched.
type batchTrace struct {
	span  trace.Span
	first time.Time
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
