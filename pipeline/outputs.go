package pipeline

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/sink"
)

// Outputs are the sinks a Worker publishes to. The Worker owns them once
// NewWorker has them: Run closes every one that is set when it returns.
// Snapshots do not go through a sink but through the snapshot store.
type Outputs struct {
	Recs      sink.Sink // recommendation lists, keyed by user
	DLQ       sink.Sink // dead letters
	Decisions sink.Sink // architecture decisions
	// Order is the order log (snapshot.order_topic); nil turns it off. It
	// is written only for a model that snapshots.
	Order sink.Sink
}

// KafkaOutputs returns the Kafka sinks of cfg's output topics, reached
// through conn: the Outputs of a worker on a Kafka cluster. Order is set
// only when snapshot.order_topic is.
func KafkaOutputs(conn *kafkaconn.Conn, cfg configs.Config, log *slog.Logger) Outputs {
	writer := func(topic string) sink.Sink {
		return sink.NewKafka(sink.WriterConfig{
			Brokers: cfg.Kafka.Brokers, Topic: topic, ClientID: cfg.Kafka.ClientID,
			BatchTimeout: cfg.Sink.BatchTimeout, BatchSize: cfg.Sink.BatchSize,
			WriteTimeout: cfg.Sink.WriteTimeout, MaxAttempts: cfg.Sink.MaxAttempts,
			Transport: conn.Transport(), Logger: log,
		})
	}
	o := Outputs{Recs: writer(cfg.Topics.Recommendations), DLQ: writer(cfg.Topics.DLQ), Decisions: writer(cfg.Topics.Decisions)}
	if cfg.Snapshot.OrderTopic != "" {
		o.Order = writer(cfg.Snapshot.OrderTopic)
	}
	return o
}

// check returns an error naming the first required output that is missing.
func (o Outputs) check() error {
	for _, s := range []struct {
		name string
		sink sink.Sink
	}{{"Recs", o.Recs}, {"DLQ", o.DLQ}, {"Decisions", o.Decisions}} {
		if s.sink == nil {
			return fmt.Errorf("worker outputs: %s is nil", s.name)
		}
	}
	return nil
}

// close closes every output that is set and returns their errors joined.
func (o Outputs) close() error {
	var errs []error
	for _, s := range []sink.Sink{o.Recs, o.DLQ, o.Decisions, o.Order} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
