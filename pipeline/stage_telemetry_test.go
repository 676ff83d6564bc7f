package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// tracedWorker runs a worker serving rec on the in-process broker with
// Memory outputs, its spans recorded, until ctx ends; it returns the
// recorder and Run's result.
func tracedWorker(ctx context.Context, t *testing.T, cfg configs.Config, rec model.Recommender) (*tracetest.SpanRecorder, <-chan error) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	w := pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, pipeline.Outputs{Recs: sink.NewMemory(), DLQ: sink.NewMemory(), Decisions: sink.NewMemory()})
	w.Instrument(&telemetry.Tracing{Provider: tp, Enabled: true}, nil, nil)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return sr, done
}

func inProcess(t *testing.T) configs.Config {
	targets := kafkatest.Targets(t)
	cfg := kafkatest.Config(t, targets[len(targets)-1])
	cfg.Snapshot.OrderTopic = ""
	kafkatest.CreateTopics(t, cfg)
	return cfg
}

// Every step of a batch has its span under the batch's span, with the
// names and attributes the tracing tests look for in Jaeger.
func TestStageSpans(t *testing.T) {
	cfg := inProcess(t)
	lines, _ := kafkatest.Events(40, 10, 10, 2)
	produce(t, cfg, lines)
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sr, done := tracedWorker(ctx, t, cfg, rec)
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, time.Minute)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	batches := map[string]bool{} // span ids of the batch spans
	children := map[string]map[string][]attribute.KeyValue{}
	for _, s := range sr.Ended() {
		if s.Name() == "process "+cfg.Topics.Feedback {
			batches[s.SpanContext().SpanID().String()] = true
		}
	}
	if len(batches) == 0 {
		t.Fatal("no batch span")
	}
	for _, s := range sr.Ended() {
		if p := s.Parent().SpanID().String(); batches[p] {
			if children[p] == nil {
				children[p] = map[string][]attribute.KeyValue{}
			}
			children[p][s.Name()] = s.Attributes()
		}
	}
	for id := range batches {
		c := children[id]
		for name, keys := range map[string][]string{
			"decode":  {"adaptrec.events.valid", "adaptrec.events.dead", "adaptrec.decode.ns"},
			"learn":   {"adaptrec.model", "adaptrec.events", "adaptrec.lists"},
			"publish": {"adaptrec.group.batches", "adaptrec.dlq.messages", "adaptrec.decisions"},
			"commit":  {"messaging.consumer.group.name", "adaptrec.commit.partitions"},
		} {
			attrs, ok := c[name]
			if !ok {
				t.Fatalf("batch span %s has no %q child (children %v)", id, name, c)
			}
			have := map[string]bool{}
			for _, a := range attrs {
				have[string(a.Key)] = true
			}
			for _, k := range keys {
				if !have[k] {
					t.Fatalf("span %q lacks attribute %s: %v", name, k, attrs)
				}
			}
		}
	}
}

// The span of a batch that fails (the model panics) ends, with an error.
func TestFailedBatchSpanEnds(t *testing.T) {
	cfg := inProcess(t)
	produce(t, cfg, [][]byte{[]byte(`{"user_id":"poison","item_id":"i1","type":"click","ts":"2026-11-28T10:00:00Z"}`)})
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sr, done := tracedWorker(context.Background(), t, cfg, panicky{rec})
	if err := <-done; err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("Run returned %v, want the panic", err)
	}
	for _, s := range sr.Ended() {
		if s.Name() == "process "+cfg.Topics.Feedback {
			if s.Status().Code != codes.Error {
				t.Fatalf("the failed batch's span has status %v, want Error", s.Status())
			}
			return
		}
	}
	t.Fatal("the failed batch's span never ended")
}
