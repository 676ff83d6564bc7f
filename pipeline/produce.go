package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// ProduceOptions configures Produce.
type ProduceOptions struct {
	// Rate is the target events per second; 0 sends as fast as acks allow.
	Rate float64
	// Chunk is the number of messages per write (default 500).
	Chunk int
	// MaxLineBytes bounds a line (default 1 MiB).
	MaxLineBytes int
	// Progress, if set, is called after every chunk with the lines sent.
	Progress func(sent int)
	// Now stamps each message; nil means time.Now. The stamp is the message
	// timestamp that replay --to-datetime seeks by.
	Now func() time.Time
	// Tracer, if set, starts a PRODUCER span per message and carries its
	// context in the message's headers (W3C traceparent).
	Tracer trace.Tracer
	// Topic names the destination in the spans.
	Topic string
}

// ProduceResult counts what Produce sent.
type ProduceResult struct {
	Sent    int // messages acknowledged
	Unkeyed int // lines without a string user_id, sent without a key
	// Retried counts the messages written again after a failed write (a
	// broker down, leadership moving), if out counts them (sink.Kafka).
	Retried  int64
	Duration time.Duration
}

// Produce publishes every line of r as one message, keyed by its user_id so
// that a user's events stay on one partition and in order. Lines are sent
// verbatim, malformed ones included (the worker's DLQ is there for them),
// except blank lines, which are skipped. It returns after every message is
// acknowledged. Chunks are written one after the other and out retries
// a failed write itself (sink.Kafka: until sink.write_timeout), so a
// user's events stay in order across a leader change.
func Produce(ctx context.Context, out sink.Sink, r io.Reader, opts ProduceOptions) (ProduceResult, error) {
	p := newProducer(out, opts)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), p.opts.MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if len(raw) == 0 {
			continue
		}
		val := append([]byte(nil), raw...)
		key := userKey(val)
		if key == nil {
			p.res.Unkeyed++
		}
		p.batch = append(p.batch, kafka.Message{Key: key, Value: val})
		if len(p.batch) == p.chunk {
			if err := p.flush(ctx); err != nil {
				return p.res, fmt.Errorf("line %d: %w", line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return p.res, fmt.Errorf("reading line %d: %w", line+1, err)
	}
	if err := p.flush(ctx); err != nil {
		return p.res, fmt.Errorf("line %d: %w", line, err)
	}
	p.res.Duration = time.Since(p.start)
	p.res.Retried = retried(out)
	return p.res, nil
}

// producer is the state of one Produce: the chunk being filled, the pace
// and what was sent.
type producer struct {
	out      sink.Sink
	opts     ProduceOptions
	chunk    int
	interval time.Duration // between chunks (0: as fast as acks allow)
	start    time.Time
	next     time.Time // when the next chunk may go
	batch    []kafka.Message
	res      ProduceResult
}

func newProducer(out sink.Sink, opts ProduceOptions) *producer {
	if opts.Chunk <= 0 {
		opts.Chunk = 500
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &producer{out: out, opts: opts, chunk: opts.Chunk, start: time.Now()}
	if opts.Rate > 0 {
		// Send in chunks of about 10 ms worth of events.
		p.chunk = max(1, min(opts.Chunk, int(opts.Rate/100)))
		p.interval = time.Duration(float64(p.chunk) / opts.Rate * float64(time.Second))
	}
	p.next, p.batch = p.start, make([]kafka.Message, 0, p.chunk)
	return p
}

// flush waits for the chunk's turn, stamps and publishes it, each message
// under a PRODUCER span if tracing.
func (p *producer) flush(ctx context.Context) error {
	if len(p.batch) == 0 {
		return nil
	}
	if p.interval > 0 {
		if d := time.Until(p.next); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		p.next = p.next.Add(p.interval)
	}
	now := p.opts.Now()
	for i := range p.batch {
		p.batch[i].Time = now
	}
	spans := p.sendSpans(ctx)
	err := p.out.Publish(ctx, p.batch...)
	endSpans(spans, err, time.Now())
	if err != nil {
		return err
	}
	p.res.Sent += len(p.batch)
	p.batch = p.batch[:0]
	if p.opts.Progress != nil {
		p.opts.Progress(p.res.Sent)
	}
	return nil
}

// sendSpans starts a PRODUCER span per message of the chunk and puts its
// context in the message's headers (none without a tracer).
func (p *producer) sendSpans(ctx context.Context) []trace.Span {
	t, topic := p.opts.Tracer, p.opts.Topic
	if t == nil {
		return nil
	}
	spans := make([]trace.Span, 0, len(p.batch))
	for i := range p.batch {
		sctx, span := t.Start(ctx, "send "+topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(append(telemetry.Messaging(topic), semconv.MessagingOperationTypeSend,
				semconv.MessagingOperationName("send"), semconv.MessagingMessageBodySize(len(p.batch[i].Value)))...))
		telemetry.Inject(sctx, &p.batch[i])
		spans = append(spans, span)
	}
	return spans
}

// retried is how many messages out wrote again, if it counts them.
func retried(out sink.Sink) int64 {
	if r, ok := out.(interface{ Retried() int64 }); ok {
		return r.Retried()
	}
	return 0
}

// userKey extracts user_id as the message key, or nil if the line has none.
func userKey(line []byte) []byte {
	var v struct {
		UserID any `json:"user_id"`
	}
	if json.Unmarshal(line, &v) != nil {
		return nil
	}
	if s, ok := v.UserID.(string); ok && s != "" {
		return []byte(s)
	}
	return nil
}
