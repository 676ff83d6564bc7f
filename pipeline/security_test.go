package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/sink"
)

// A worker whose every client goes through TLS and SCRAM-SHA-512 consumes,
// publishes lists and dead letters, and commits. The outputs are checked
// through the same broker's plaintext listener.
func TestWorkerOverSASLSSL(t *testing.T) {
	cfg := kafkatest.SecureConfig(t)
	plain := cfg
	plain.Kafka.Brokers = kafkatest.Real(t).Brokers
	kafkatest.CreateTopics(t, plain)
	lines, bad := kafkatest.Events(600, 50, 80, 3)

	conn, err := kafkaconn.FromConfig(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	out := sink.NewKafka(sink.WriterConfig{Brokers: cfg.Kafka.Brokers, Topic: cfg.Topics.Feedback, BatchTimeout: 2 * time.Millisecond,
		BatchSize: 1000, WriteTimeout: 30 * time.Second, MaxAttempts: 10, Transport: conn.Transport()})
	res, err := pipeline.Produce(context.Background(), out, bytesReader(lines), pipeline.ProduceOptions{})
	out.Close()
	if err != nil || res.Sent != len(lines) {
		t.Fatalf("producing over SASL_SSL: sent %d of %d: %v", res.Sent, len(lines), err)
	}

	_, stop := startWorker(t, cfg)
	kafkatest.WaitCommitted(t, plain.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	last, _ := lastValid(t, kafkatest.ReadAll(t, plain.Kafka.Brokers, cfg.Topics.Feedback))
	served := map[string]bool{}
	for _, r := range readRecs(t, plain) {
		served[r.UserID] = true
	}
	for u := range last {
		if !served[u] {
			t.Fatalf("user %s got no list (%d of %d users served)", u, len(served), len(last))
		}
	}
	if dead := kafkatest.ReadAll(t, plain.Kafka.Brokers, cfg.Topics.DLQ); len(dead) != len(bad) {
		t.Fatalf("DLQ holds %d messages, want %d", len(dead), len(bad))
	}
}

// A worker with a wrong password stops at start with an error naming the
// user and mechanism, instead of retrying for ever.
func TestWorkerWrongPasswordStops(t *testing.T) {
	cfg := kafkatest.SecureConfig(t)
	wrong := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(wrong, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.SASL.PasswordEnv, cfg.Kafka.SASL.PasswordFile = "", wrong
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, kafkatest.Outputs(t, cfg)).Run(ctx)
	var auth *kafkaconn.AuthError
	if !errors.As(err, &auth) || ctx.Err() != nil {
		t.Fatalf("got %v, want an AuthError before the deadline", err)
	}
	if want := `SASL authentication failed for user "` + cfg.Kafka.SASL.Username + `" (mechanism SCRAM-SHA-512)`; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

// Snapshots go over SASL_SSL too: a DQN worker publishes its model at
// shutdown through the snapshot writer, and the next one reads it back
// through the partition readers and starts from it.
func TestRestartOverSASLSSL(t *testing.T) {
	sec := kafkatest.SecureConfig(t)
	cfg := smallDQN(t, kafkatest.Target{Name: "kafka-sasl-ssl", Brokers: sec.Kafka.Brokers})
	cfg.Kafka.TLS, cfg.Kafka.SASL = sec.Kafka.TLS, sec.Kafka.SASL
	plain := cfg
	plain.Kafka.Brokers = kafkatest.Real(t).Brokers
	kafkatest.CreateTopics(t, plain)
	lines, _ := kafkatest.Events(600, 0, 60, 4)
	produce(t, plain, lines)
	run := func() (*model.DQN, *pipeline.Worker) { return runDQNToCommitted(t, cfg, plain, 60*time.Second) }
	first, w1 := run()
	if w1.Stats().Snapshots.Load() == 0 {
		t.Fatal("no snapshot published at shutdown")
	}
	second, w2 := run()
	if w2.Restored().Checksum == "" || second.Checksum() != first.Checksum() {
		t.Fatalf("the second worker did not restore the first one's model (restored %q)", w2.Restored().Checksum)
	}
}
