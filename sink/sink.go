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
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
)

// Sink publishes messages to one destination.
//
// Publish blocks until every message is durably acknowledged or returns an
// error; on error some messages may have been written (at-least-once).
// Messages of one key are stored in the order they were published. It
// returns an error, without blocking, when ctx has ended, and one wrapping
// ErrClosed once the sink is closed. It may be called from one goroutine at
// a time. Close flushes and releases; sinktest.Run checks this contract.
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
	// WriteTimeout bounds a Publish: messages that fail are retried, on
	// fresh cluster metadata, until it has passed (0: until ctx ends).
	WriteTimeout time.Duration
	// MaxAttempts bounds the attempts of one produce request inside a
	// round of Publish (kafka-go's Writer.MaxAttempts).
	MaxAttempts int
	// Transport carries the connection's TLS and SASL (kafkaconn); nil
	// means plaintext with ClientID.
	Transport *kafka.Transport
	// Logger receives the retries (at most one line per RetryLogEvery);
	// nil discards them.
	Logger *slog.Logger
}

// RetryLogEvery is the least time between two log lines about retries of
// one publisher.
const RetryLogEvery = 5 * time.Second

// Kafka is a Sink writing to one topic, keyed by message key (murmur2, as
// the Java client partitions, so keys land where other clients put them).
type Kafka struct {
	w         *kafka.Writer
	transport *kafka.Transport
	timeout   time.Duration
	log       *slog.Logger
	retried   atomic.Int64
	loggedAt  time.Time // last retry log line (Publish's goroutine)
}

// NewKafka returns a publisher that waits for acks from all in-sync replicas.
func NewKafka(cfg WriterConfig) *Kafka {
	transport := cfg.Transport
	if transport == nil {
		transport = &kafka.Transport{ClientID: cfg.ClientID, DialTimeout: 5 * time.Second}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Kafka{
		timeout: cfg.WriteTimeout, transport: transport, log: log,
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

// Publish implements Sink. A message whose write fails for a reason that
// can pass (a broker down, leadership moving, not enough replicas in sync)
// is written again, with the others that failed, after a backoff and on
// freshly read cluster metadata, so that it goes to the partition's new
// leader, until WriteTimeout has passed. Messages of one partition fail or
// succeed together, so a retry keeps each key's order.
func (k *Kafka) Publish(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if k.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, k.timeout)
		defer cancel()
	}
	pending, backoff := msgs, retryBackoffMin
	for {
		err := k.w.WriteMessages(ctx, pending...)
		if err == nil {
			return nil
		}
		if errors.Is(err, io.ErrClosedPipe) { // kafka-go's answer once closed
			return fmt.Errorf("publishing to %s: %w", k.w.Topic, ErrClosed)
		}
		failed := failedOf(pending, err)
		if ctx.Err() != nil || !Retriable(err) {
			var werr kafka.WriteErrors
			if errors.As(err, &werr) {
				return fmt.Errorf("publishing to %s: %d of %d messages failed: %w", k.w.Topic, len(failed), len(msgs), err)
			}
			return fmt.Errorf("publishing to %s: %w", k.w.Topic, err)
		}
		k.retried.Add(int64(len(failed)))
		if now := time.Now(); now.Sub(k.loggedAt) >= RetryLogEvery {
			k.loggedAt = now
			k.log.Warn("publishing: retrying on fresh metadata", "topic", k.w.Topic, "messages", len(failed), "of", len(msgs), "err", err)
		}
		// A new connection pool reads the cluster's metadata again, so the
		// retry goes to the partitions' current leaders.
		k.transport.CloseIdleConnections()
		select {
		case <-ctx.Done():
			return fmt.Errorf("publishing to %s: %d of %d messages failed: %w (last error: %w)", k.w.Topic, len(failed), len(msgs), context.Cause(ctx), err)
		case <-time.After(backoff):
		}
		pending, backoff = failed, min(2*backoff, retryBackoffMax)
	}
}

// Backoff between two rounds of a Publish.
const (
	retryBackoffMin = 100 * time.Millisecond
	retryBackoffMax = time.Second
)

// failedOf returns the messages of pending that err says failed (all of
// them unless it is a kafka.WriteErrors).
func failedOf(pending []kafka.Message, err error) []kafka.Message {
	var werr kafka.WriteErrors
	if !errors.As(err, &werr) || len(werr) != len(pending) {
		return pending
	}
	failed := make([]kafka.Message, 0, werr.Count())
	for i, e := range werr {
		if e != nil {
			failed = append(failed, pending[i])
		}
	}
	return failed
}

// permanent are the broker errors a retry cannot cure.
var permanent = map[kafka.Error]bool{
	kafka.MessageSizeTooLarge: true, kafka.RecordListTooLarge: true, kafka.InvalidTopic: true,
	kafka.InvalidRequiredAcks: true, kafka.TopicAuthorizationFailed: true, kafka.ClusterAuthorizationFailed: true,
	kafka.InvalidTimestamp: true, kafka.UnsupportedVersion: true, kafka.PolicyViolation: true,
	kafka.SASLAuthenticationFailed: true, kafka.UnsupportedCompressionType: true, kafka.InvalidRecord: true,
}

// Retriable reports whether a failed write may succeed if tried again:
// every message's error is a network error, a broker that is down or a
// broker error that can pass, not one a retry cannot cure (a message too
// large, an authorization failure, a bad request).
func Retriable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var werr kafka.WriteErrors
	if errors.As(err, &werr) {
		for _, e := range werr {
			if e != nil && !Retriable(e) {
				return false
			}
		}
		return true
	}
	var kerr kafka.Error
	return !errors.As(err, &kerr) || !permanent[kerr]
}

// Retried is the number of messages this publisher wrote again after a
// failed write.
func (k *Kafka) Retried() int64 { return k.retried.Load() }

// Close implements Sink. It closes the transport's connections too:
// kafka-go's Writer.Close leaves those of a Transport it was given open
// (goleak found their goroutines outliving every closed sink).
func (k *Kafka) Close() error {
	err := k.w.Close()
	k.transport.CloseIdleConnections()
	return err
}

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
