package telemetry

import (
	"context"
	"strconv"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// HeaderCarrier is a propagation.TextMapCarrier over a Kafka message's
// headers.
type HeaderCarrier struct{ Headers *[]kafka.Header }

// Get returns the value of the first header named key.
func (c HeaderCarrier) Get(key string) string {
	for _, h := range *c.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the header named key, or appends it.
func (c HeaderCarrier) Set(key, value string) {
	for i, h := range *c.Headers {
		if h.Key == key {
			(*c.Headers)[i].Value = []byte(value)
			return
		}
	}
	*c.Headers = append(*c.Headers, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, len(*c.Headers))
	for i, h := range *c.Headers {
		keys[i] = h.Key
	}
	return keys
}

// Inject writes the span context of ctx into m's headers.
func Inject(ctx context.Context, m *kafka.Message) {
	Propagator.Inject(ctx, HeaderCarrier{&m.Headers})
}

// Extract returns the span context carried in m's headers (invalid if none).
func Extract(m *kafka.Message) trace.SpanContext {
	return trace.SpanContextFromContext(Propagator.Extract(context.Background(), HeaderCarrier{&m.Headers}))
}

// Traceparent parses the W3C traceparent header of m without the
// propagator's allocations (the worker reads one per message). It returns
// an invalid span context if the header is missing or malformed; tracestate
// is not read.
func Traceparent(m *kafka.Message) trace.SpanContext {
	var v []byte
	for i := range m.Headers {
		if m.Headers[i].Key == "traceparent" {
			v = m.Headers[i].Value
			break
		}
	}
	// version(2) - trace-id(32) - parent-id(16) - flags(2)
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return trace.SpanContext{}
	}
	if v[0] == 'f' && v[1] == 'f' {
		return trace.SpanContext{}
	}
	var cfg trace.SpanContextConfig
	var flags [1]byte
	if !unhex(cfg.TraceID[:], v[3:35]) || !unhex(cfg.SpanID[:], v[36:52]) || !unhex(flags[:], v[53:55]) {
		return trace.SpanContext{}
	}
	cfg.TraceFlags, cfg.Remote = trace.TraceFlags(flags[0])&trace.FlagsSampled, true
	return trace.NewSpanContext(cfg) // invalid if either id is all zeros
}

// unhex decodes lower-case hex src into dst (len(src) == 2*len(dst)).
func unhex(dst, src []byte) bool {
	for i := range dst {
		hi, ok1 := hexVal(src[2*i])
		lo, ok2 := hexVal(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Common messaging attributes (OpenTelemetry semantic conventions v1.37.0).
func Messaging(topic string) []attribute.KeyValue {
	return []attribute.KeyValue{semconv.MessagingSystemKafka, semconv.MessagingDestinationName(topic)}
}

// MessageAttrs are the attributes of one Kafka message.
func MessageAttrs(partition int, offset int64) []attribute.KeyValue {
	return []attribute.KeyValue{
		semconv.MessagingDestinationPartitionID(strconv.Itoa(partition)),
		semconv.MessagingKafkaOffset(int(offset)),
	}
}
