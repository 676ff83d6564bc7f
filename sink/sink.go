// Package sink owns adaptrec's outputs: the Sink contract every publisher
// meets, the Kafka publisher behind it, and the encoding of each output
// (recommendation lists, dead letters).
//
// Messages enter through Publish, which returns only once every message is
// acknowledged by the broker (all in-sync replicas), so the pipeline can
// commit the input offsets they came from.
package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
)

// Sink publishes messages to one destination.
//
// Publish blocks until every message is durably acknowledged or returns an
// error; on error some messages may have been written (at-least-once). It may
// be called from one goroutine at a time. Close flushes and releases.
type Sink interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// WriterConfig configures a Kafka publisher.
type WriterConfig struct {
	Brokers      []string
	Topic        string
	ClientID     string
	BatchTimeout time.Duration
	BatchSize    int
	WriteTimeout time.Duration
	MaxAttempts  int
	// Transport carries the connection's TLS and SASL (kafkaconn); nil
	// means plaintext with ClientID.
	Transport *kafka.Transport
}

// Kafka is a Sink writing to one topic, keyed by message key (murmur2, as
// the Java client partitions, so keys land where other clients put them).
type Kafka struct {
	w       *kafka.Writer
	timeout time.Duration
}

// NewKafka returns a publisher that waits for acks from all in-sync replicas.
func NewKafka(cfg WriterConfig) *Kafka {
	transport := cfg.Transport
	if transport == nil {
		transport = &kafka.Transport{ClientID: cfg.ClientID, DialTimeout: 5 * time.Second}
	}
	return &Kafka{
		timeout: cfg.WriteTimeout,
		w: &kafka.Writer{
			Addr:                   kafka.TCP(cfg.Brokers...),
			Topic:                  cfg.Topic,
			Balancer:               &kafka.Murmur2Balancer{},
			RequiredAcks:           kafka.RequireAll,
			BatchTimeout:           cfg.BatchTimeout,
			BatchSize:              cfg.BatchSize,
			BatchBytes:             16 << 20,
			MaxAttempts:            cfg.MaxAttempts,
			WriteBackoffMin:        10 * time.Millisecond,
			WriteBackoffMax:        time.Second,
			AllowAutoTopicCreation: false,
			Transport:              transport,
		},
	}
}

// Publish implements Sink.
func (k *Kafka) Publish(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if k.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, k.timeout)
		defer cancel()
	}
	if err := k.w.WriteMessages(ctx, msgs...); err != nil {
		var werr kafka.WriteErrors
		if errors.As(err, &werr) {
			return fmt.Errorf("publishing to %s: %d of %d messages failed: %w", k.w.Topic, werr.Count(), len(msgs), err)
		}
		return fmt.Errorf("publishing to %s: %w", k.w.Topic, err)
	}
	return nil
}

// Close implements Sink.
func (k *Kafka) Close() error { return k.w.Close() }

// Topic is the topic the publisher writes to.
func (k *Kafka) Topic() string { return k.w.Topic }

// RecommendationMessage encodes r as its recommendations-topic message,
// keyed by user.
func RecommendationMessage(r model.Recommendation) (kafka.Message, error) {
	b, err := AppendRecommendation(make([]byte, 0, 128+64*len(r.Items)), r)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encoding recommendation for user %q: %w", r.UserID, err)
	}
	return kafka.Message{Key: []byte(r.UserID), Value: b}, nil
}

// DecisionMessage encodes an architecture decision for the decisions
// topic, keyed by the model's id (the consumer group).
func DecisionMessage(modelID string, d model.Decision) (kafka.Message, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encoding decision %d: %w", d.Epoch, err)
	}
	return kafka.Message{Key: []byte(modelID), Value: b}, nil
}

// Headers of a dead letter.
const (
	HeaderErrorClass      = "adaptrec.error.class"
	HeaderErrorMessage    = "adaptrec.error.message"
	HeaderSourceTopic     = "adaptrec.source.topic"
	HeaderSourcePartition = "adaptrec.source.partition"
	HeaderSourceOffset    = "adaptrec.source.offset"
)

// DeadLetter wraps a rejected input message for the DLQ: the original key,
// value and headers, plus headers naming the error class and message and
// where the input was read.
func DeadLetter(src kafka.Message, class, reason string) kafka.Message {
	h := make([]kafka.Header, 0, len(src.Headers)+5)
	h = append(h, src.Headers...)
	h = append(h,
		kafka.Header{Key: HeaderErrorClass, Value: []byte(class)},
		kafka.Header{Key: HeaderErrorMessage, Value: []byte(reason)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(src.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
	)
	return kafka.Message{Key: src.Key, Value: src.Value, Headers: h}
}
