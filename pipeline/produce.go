package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/codes"
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
	if opts.Chunk <= 0 {
		opts.Chunk = 500
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	chunk := opts.Chunk
	var interval time.Duration
	if opts.Rate > 0 {
		// Send in chunks of about 10 ms worth of events.
		chunk = max(1, min(opts.Chunk, int(opts.Rate/100)))
		interval = time.Duration(float64(chunk) / opts.Rate * float64(time.Second))
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), opts.MaxLineBytes)
	var res ProduceResult
	start := time.Now()
	next := start
	batch := make([]kafka.Message, 0, chunk)
	var spans []trace.Span
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
			next = next.Add(interval)
		}
		now := opts.Now()
		for i := range batch {
			batch[i].Time = now
		}
		spans = spans[:0]
		if opts.Tracer != nil {
			for i := range batch {
				sctx, span := opts.Tracer.Start(ctx, "send "+opts.Topic, trace.WithSpanKind(trace.SpanKindProducer),
					trace.WithAttributes(append(telemetry.Messaging(opts.Topic), semconv.MessagingOperationTypeSend,
						semconv.MessagingOperationName("send"), semconv.MessagingMessageBodySize(len(batch[i].Value)))...))
				telemetry.Inject(sctx, &batch[i])
				spans = append(spans, span)
			}
		}
		err := out.Publish(ctx, batch...)
		for _, s := range spans {
			if err != nil {
				s.RecordError(err)
				s.SetStatus(codes.Error, err.Error())
			}
			s.End()
		}
		if err != nil {
			return err
		}
		res.Sent += len(batch)
		batch = batch[:0]
		if opts.Progress != nil {
			opts.Progress(res.Sent)
		}
		return nil
	}
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
			res.Unkeyed++
		}
		batch = append(batch, kafka.Message{Key: key, Value: val})
		if len(batch) == chunk {
			if err := flush(); err != nil {
				return res, fmt.Errorf("line %d: %w", line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("reading line %d: %w", line+1, err)
	}
	if err := flush(); err != nil {
		return res, fmt.Errorf("line %d: %w", line, err)
	}
	res.Duration = time.Since(start)
	res.Retried = retried(out)
	return res, nil
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
