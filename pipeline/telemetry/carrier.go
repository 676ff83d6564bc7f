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
