// Package kafkatest holds the helpers adaptrec's integration tests share:
// the brokers to run against (always the in-process broker; also the real
// Apache Kafka broker named by KAFKA_TEST_BROKERS, which `make test`
// starts), unique topic names, and readers that collect whole topics.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/embedded"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
)

// EnvBrokers names the real broker(s) the integration tests use.
const EnvBrokers = "KAFKA_TEST_BROKERS"

// Target is a broker to run a test against.
type Target struct {
	Name    string // "kfake" or "kafka"
	Brokers []string
}

// Targets returns the in-process broker (started for this test, closed at
// its end) and, when KAFKA_TEST_BROKERS is set, the real one. In -short
// mode the real broker is left out.
func Targets(t testing.TB) []Target {
	t.Helper()
	var out []Target
	if env := os.Getenv(EnvBrokers); env != "" && !testing.Short() {
		out = append(out, Target{Name: "kafka", Brokers: strings.Split(env, ",")})
	}
	b, err := embedded.Start(6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	out = append(out, Target{Name: "kfake", Brokers: b.Addrs()})
	return out
}

// Real returns the real broker, or skips the test when there is none.
func Real(t testing.TB) Target {
	t.Helper()
	env := os.Getenv(EnvBrokers)
	if env == "" || testing.Short() {
		t.Skipf("no real broker: set %s (make test does)", EnvBrokers)
	}
	return Target{Name: "kafka", Brokers: strings.Split(env, ",")}
}

var seq atomic.Int64

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Name returns a topic or group name unique to this test run.
func Name(t testing.TB, what string) string {
	n := unsafeChars.ReplaceAllString(t.Name(), "-")
	if len(n) > 80 {
		n = n[len(n)-80:]
	}
	return fmt.Sprintf("t.%s.%s.%d.%d", n, what, time.Now().UnixNano()%1e9, seq.Add(1))
}

// Config returns a worker configuration for tests on target: unique topics
// and group, short timeouts, no progress lines.
func Config(t testing.TB, target Target) configs.Config {
	c := configs.Default()
	c.Kafka.Brokers = target.Brokers
	c.Kafka.Group = Name(t, "group")
	c.Kafka.SessionTimeout = 3 * time.Second
	c.Kafka.HeartbeatInterval = 300 * time.Millisecond
	c.Kafka.RebalanceTimeout = 3 * time.Second
	c.Kafka.JoinGroupBackoff = 100 * time.Millisecond
	c.Topics.Feedback = Name(t, "feedback")
	c.Topics.Recommendations = Name(t, "recs")
	c.Topics.DLQ = Name(t, "dlq")
	c.Topics.Decisions = Name(t, "decisions")
	c.Snapshot.Topic = Name(t, "snapshots")
	c.Snapshot.OrderTopic = Name(t, "order")
	c.Batch.Size = 100
	// The pipeline tests need a model, not a good one; the DQN has its own
	// worker test (gorgonia under -race is slow).
	c.Recommender.Model = "popularity"
	c.Batch.MaxWait = 20 * time.Millisecond
	c.Worker.ProgressInterval = 0
	c.Worker.ShutdownTimeout = 20 * time.Second
	c.Worker.MaxPendingBatches = 2
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Client returns an admin client for brokers.
func Client(brokers []string) *kafka.Client {
	return plain(brokers).Client()
}

// CreateTopics creates the worker's topics of cfg.
func CreateTopics(t testing.TB, cfg configs.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var specs []pipeline.TopicSpec
	for _, n := range []string{cfg.Topics.Feedback, cfg.Topics.Recommendations, cfg.Topics.DLQ, cfg.Topics.Decisions} {
		specs = append(specs, pipeline.TopicSpec{Name: n, Partitions: cfg.Topics.Partitions, ReplicationFactor: 1})
	}
	if err := pipeline.EnsureTopics(ctx, Client(cfg.Kafka.Brokers), specs, true, discard()); err != nil {
		t.Fatal(err)
	}
}

// CreateTopic creates one topic.
func CreateTopic(t testing.TB, brokers []string, name string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := []pipeline.TopicSpec{{Name: name, Partitions: partitions, ReplicationFactor: 1}}
	if err := pipeline.EnsureTopics(ctx, Client(brokers), spec, true, discard()); err != nil {
		t.Fatal(err)
	}
}

// ReadAll returns every message of topic, partition by partition, up to
// the end offsets at the time of the call.
func ReadAll(t testing.TB, brokers []string, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := pipeline.EndOffsets(ctx, Client(brokers), topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for p, end := range ends {
		msgs, err := pipeline.ReadRange(ctx, plain(brokers), topic, p, 0, end)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, msgs...)
	}
	return out
}

// WaitCommitted waits until group has committed the end offset of every
// partition of topic, failing the test after timeout.
func WaitCommitted(t testing.TB, brokers []string, group, topic string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := Client(brokers)
	var last string
	for time.Now().Before(deadline) {
		var done bool
		if done, last = CommittedEnd(client, group, topic); done {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s did not commit the end of %s within %v: %s", group, topic, timeout, last)
}

// CommittedEnd reports whether group has committed the end offset of
// every partition of topic, and if not, what it has committed (or why
// that could not be read).
func CommittedEnd(client *kafka.Client, group, topic string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err1 := pipeline.EndOffsets(ctx, client, topic)
	committed, err2 := pipeline.CommittedOffsets(ctx, client, group, topic)
	if err := errors.Join(err1, err2); err != nil {
		return false, err.Error()
	}
	for p, end := range ends {
		if committed[p] != end && !(end == 0 && committed[p] < 0) { // an empty partition has nothing to commit
			return false, fmt.Sprintf("ends %v committed %v", ends, committed)
		}
	}
	return true, ""
}

// Jaeger endpoints for tracing tests: OTLP over gRPC and over HTTP, and
// the query API.
const (
	EnvJaegerOTLP     = "JAEGER_TEST_OTLP_ENDPOINT"
	EnvJaegerOTLPHTTP = "JAEGER_TEST_OTLP_HTTP_ENDPOINT"
	EnvJaegerQuery    = "JAEGER_TEST_QUERY_URL"
)

// JaegerHTTP returns the test Jaeger's OTLP/HTTP endpoint, or skips.
func JaegerHTTP(t testing.TB) string {
	t.Helper()
	if v := os.Getenv(EnvJaegerOTLPHTTP); v != "" && !testing.Short() {
		return v
	}
	t.Skipf("no Jaeger OTLP/HTTP endpoint: set %s (make test does)", EnvJaegerOTLPHTTP)
	return ""
}

// Jaeger returns the OTLP gRPC endpoint and query URL of the test Jaeger,
// or skips the test when there is none.
func Jaeger(t testing.TB) (otlp, query string) {
	t.Helper()
	otlp, query = os.Getenv(EnvJaegerOTLP), os.Getenv(EnvJaegerQuery)
	if otlp == "" || query == "" || testing.Short() {
		t.Skipf("no Jaeger: set %s and %s (make test does)", EnvJaegerOTLP, EnvJaegerQuery)
	}
	return otlp, query
}

// Header returns the value of the last header named key, or "".
func Header(m kafka.Message, key string) string {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if m.Headers[i].Key == key {
			return string(m.Headers[i].Value)
		}
	}
	return ""
}

// Outputs returns the Kafka sinks of cfg's output topics, connected as
// cfg.kafka says, for a worker under test.
func Outputs(tb testing.TB, cfg configs.Config) pipeline.Outputs {
	tb.Helper()
	conn, err := kafkaconn.FromConfig(cfg.Kafka)
	if err != nil {
		tb.Fatal(err)
	}
	return pipeline.KafkaOutputs(conn, cfg, Logger(tb))
}
