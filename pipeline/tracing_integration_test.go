package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// jaegerTrace is the part of Jaeger's /api/traces JSON the test reads.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
		Logs []struct {
			Fields []struct {
				Key   string `json:"key"`
				Value any    `json:"value"`
			} `json:"fields"`
		} `json:"logs"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

func jaegerTraces(t *testing.T, url string) []jaegerTrace {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []jaegerTrace `json:"data"`
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return body.Data
}

// A feedback event is followed in a real Jaeger from the producer that sent
// it, through the worker's batch, to the recommendation list it caused,
// with trace context carried in Kafka headers both ways.
func TestTraceThroughKafkaInJaeger(t *testing.T) {
	t.Run("grpc", func(t *testing.T) {
		otlp, query := kafkatest.Jaeger(t)
		traceThroughKafka(t, "grpc", otlp, query)
	})
	t.Run("http", func(t *testing.T) {
		_, query := kafkatest.Jaeger(t)
		traceThroughKafka(t, "http/protobuf", kafkatest.JaegerHTTP(t), query)
	})
}

func traceThroughKafka(t *testing.T, protocol, otlp, query string) {
	target := kafkatest.Real(t)
	cfg := kafkatest.Config(t, target)
	service := kafkatest.Name(t, "svc")
	tcfg := configs.Tracing{Enabled: true, Endpoint: otlp, Protocol: protocol, SampleRatio: 1, ServiceName: service + "-producer"}
	ctx := context.Background()
	ptr, err := telemetry.NewTracing(ctx, tcfg, "test")
	if err != nil {
		t.Fatal(err)
	}
	lines, bad := kafkatest.Events(100, 50, 20, 5)
	kafkatest.CreateTopics(t, cfg)
	out := newSink(cfg.Kafka.Brokers, cfg.Topics.Feedback)
	res, err := pipeline.Produce(ctx, out, bytesReader(lines), pipeline.ProduceOptions{
		Tracer: ptr.Provider.Tracer("test"), Topic: cfg.Topics.Feedback})
	out.Close()
	if err != nil || res.Sent != 100 {
		t.Fatalf("produced %d: %v", res.Sent, err)
	}
	if err := ptr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	tcfg.ServiceName = service
	wtr, err := telemetry.NewTracing(ctx, tcfg, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, stop := startInstrumented(t, cfg, func(w *pipeline.Worker) { w.Instrument(wtr, nil, nil) })
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 120*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := wtr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// Every list carries the context of its send span.
	recs := kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Recommendations)
	if len(recs) == 0 {
		t.Fatal("no recommendations")
	}
	tp := ""
	for _, m := range recs {
		sc := telemetry.Extract(&m)
		if !sc.IsValid() {
			t.Fatalf("recommendation %d@%d has no traceparent header", m.Partition, m.Offset)
		}
		if tp == "" {
			tp = sc.TraceID().String() + "/" + sc.SpanID().String()
		}
	}
	traceID, sendID, _ := strings.Cut(tp, "/")

	// Jaeger has the trace: poll while its batch processor flushes.
	var tr jaegerTrace
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ts := jaegerTraces(t, query+"/api/traces/"+traceID); len(ts) == 1 {
			tr = ts[0]
			if spans(tr, "commit") > 0 && spans(tr, "send "+cfg.Topics.Feedback) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s not complete in Jaeger after 30s: %+v", traceID, tr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	ids := map[string]string{} // operation -> span id (first)
	for _, s := range tr.Spans {
		if _, ok := ids[s.OperationName]; !ok {
			ids[s.OperationName] = s.SpanID
		}
	}
	for _, op := range []string{"send " + cfg.Topics.Feedback, "process " + cfg.Topics.Feedback, "decode", "learn", "publish", "send " + cfg.Topics.Recommendations, "commit"} {
		if ids[op] == "" {
			t.Errorf("trace %s has no %q span (has %v)", traceID, op, ids)
		}
	}
	if ids["send "+cfg.Topics.Recommendations] != sendID {
		t.Errorf("the list's traceparent names span %s, the trace's send span is %s", sendID, ids["send "+cfg.Topics.Recommendations])
	}
	// The batch span is linked to the producer spans of its messages.
	producers := map[string]bool{}
	for _, s := range tr.Spans {
		if s.OperationName == "send "+cfg.Topics.Feedback {
			producers[s.SpanID] = true
			if svc := tr.Processes[s.ProcessID].ServiceName; svc != service+"-producer" {
				t.Errorf("producer span from service %q", svc)
			}
		}
	}
	for _, s := range tr.Spans {
		if s.OperationName != "process "+cfg.Topics.Feedback {
			continue
		}
		linked := 0
		for _, r := range s.References {
			if r.RefType == "FOLLOWS_FROM" {
				linked++
			}
			if r.TraceID == traceID && producers[r.SpanID] {
				producers[r.SpanID] = false // referenced
			}
		}
		if linked == 0 {
			t.Errorf("batch span has no links: %+v", s.References)
		}
		tags := map[string]string{}
		for _, tg := range s.Tags {
			tags[tg.Key] = fmt.Sprint(tg.Value)
		}
		for k, v := range map[string]string{"messaging.system": "kafka", "messaging.destination.name": cfg.Topics.Feedback,
			"messaging.consumer.group.name": cfg.Kafka.Group, "span.kind": "consumer"} {
			if tags[k] != v {
				t.Errorf("batch span tag %s = %q, want %q", k, tags[k], v)
			}
		}
		if tags["messaging.batch.message_count"] == "" {
			t.Error("batch span has no messaging.batch.message_count")
		}
	}
	referenced := false
	for _, open := range producers {
		referenced = referenced || !open
	}
	if !referenced {
		t.Error("no producer span of the trace is referenced by its batch span")
	}
	// Dead letters are span events with their error class.
	dlq := 0
	for _, ts := range jaegerTraces(t, query+"/api/traces?service="+service+"&limit=1000") {
		for _, s := range ts.Spans {
			for _, l := range s.Logs {
				for _, f := range l.Fields {
					if f.Key == "error.type" {
						dlq++
					}
				}
			}
		}
	}
	if dlq != len(bad) {
		t.Errorf("Jaeger holds %d DLQ span events with an error class, want %d", dlq, len(bad))
	}
}

func spans(tr jaegerTrace, op string) int {
	n := 0
	for _, s := range tr.Spans {
		if s.OperationName == op {
			n++
		}
	}
	return n
}
