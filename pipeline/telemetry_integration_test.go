package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// startInstrumented runs a worker with instrument applied before Run.
func startInstrumented(t *testing.T, cfg configs.Config, instrument func(*pipeline.Worker)) (*pipeline.Worker, func() error) {
	t.Helper()
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, kafkatest.Outputs(t, cfg))
	instrument(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			t.Fatal("worker did not stop within 60s of cancellation")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return w, stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// byLabel sums a counter family's values by one label.
func byLabel(f *dto.MetricFamily, label string) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == label {
				out[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// label is the value of a label of a family's first metric.
func label(f *dto.MetricFamily, name string) string {
	if f == nil || len(f.Metric) == 0 {
		return ""
	}
	for _, l := range f.Metric[0].Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func histCount(f *dto.MetricFamily) uint64 {
	var n uint64
	if f != nil {
		for _, m := range f.Metric {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

// After a known input, /metrics counts the events by type, the dead
// letters by class and the lists published, and its latency histograms
// are filled; /readyz is 503 until the worker has joined its group (and
// checked the broker and loaded the model) and after it has left, 200 in
// between.
func TestWorkerMetricsAndReadiness(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Metrics.QualitySampleEvery = 4
			lines, bad := kafkatest.Events(2000, 50, 300, 3)
			wantTypes, wantClasses := map[string]float64{}, map[string]float64{}
			for _, l := range lines {
				if class, ok := bad[string(l)]; ok {
					wantClasses[string(class)]++
					continue
				}
				e, err := feedback.Decode(l, feedback.DefaultLimits)
				if err != nil {
					t.Fatalf("fixture line %s: %v", l, err)
				}
				wantTypes[e.Type.String()]++
			}
			metrics, err := telemetry.NewMetrics(cfg.Metrics.QualityWindow, telemetry.WithService("adaptrec-metrics-test", "v0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			health := &telemetry.Health{}
			srv, err := telemetry.Serve("127.0.0.1:0", metrics, health, kafkatest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close(context.Background())
			base := "http://" + srv.Addr()
			if code, _ := get(t, base+"/healthz"); code != 200 {
				t.Fatalf("/healthz: %d", code)
			}
			kafkatest.CreateTopics(t, cfg)
			w, stop := startInstrumented(t, cfg, func(w *pipeline.Worker) {
				if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "group") {
					t.Errorf("/readyz before joining: %d %q, want 503 naming the group", code, body)
				}
				w.Instrument(nil, metrics, health)
			})
			deadline := time.Now().Add(60 * time.Second)
			for {
				code, body := get(t, base+"/readyz")
				if code == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz still %d after 60s: %s", code, body)
				}
				time.Sleep(100 * time.Millisecond)
			}
			produce(t, cfg, lines)
			kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 120*time.Second)
			// The last batch's lists are counted once acknowledged, just
			// before its commit: wait for the counter to settle on Stats.
			var fams map[string]*dto.MetricFamily
			for range 50 {
				fams = kafkatest.Scrape(t, base)
				if f := fams["adaptrec_recommendation_lists_total"]; f != nil && int64(sum(f)) == w.Stats().Snapshot().Lists {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			got := byLabel(fams["adaptrec_events_consumed_total"], "type")
			if fmt.Sprint(got) != fmt.Sprint(wantTypes) {
				t.Errorf("events by type %v, want %v", got, wantTypes)
			}
			for typ := range got {
				if typ != "click" && typ != "view" && typ != "rating" {
					t.Errorf("events counted under type %q, want click, view or rating", typ)
				}
			}
			if len(got) != 3 {
				t.Errorf("events by type %v: the fixture holds clicks, views and ratings", got)
			}
			if svc := label(fams["target_info"], "service_name"); svc != "adaptrec-metrics-test" {
				t.Errorf("target_info service_name %q, want the service name given (adaptrec-metrics-test)", svc)
			}
			if got := byLabel(fams["adaptrec_dlq_messages_total"], "class"); fmt.Sprint(got) != fmt.Sprint(wantClasses) {
				t.Errorf("DLQ by class %v, want %v", got, wantClasses)
			}
			s := w.Stats().Snapshot()
			if got := sum(fams["adaptrec_recommendation_lists_total"]); int64(got) != s.Lists || s.Lists == 0 {
				t.Errorf("lists published %v, worker counted %d", got, s.Lists)
			}
			valid := uint64(len(lines) - len(bad))
			if n := histCount(fams["adaptrec_recommendation_latency_seconds"]); n != valid {
				t.Errorf("produce→list latency histogram holds %d observations, want one per valid event (%d)", n, valid)
			}
			if n := histCount(fams["adaptrec_batch_duration_seconds"]); n == 0 || int64(n) > s.Batches {
				t.Errorf("batch latency histogram holds %d observations for %d batches", n, s.Batches)
			}
			if n := histCount(fams["adaptrec_batch_size"]); int64(n) != s.Batches {
				t.Errorf("batch size histogram holds %d observations for %d batches", n, s.Batches)
			}
			for _, name := range []string{"adaptrec_quality_hr_at_10", "adaptrec_reward_mean", "adaptrec_sessions", "adaptrec_consumer_lag", "adaptrec_model_parameters"} {
				if fams[name] == nil {
					t.Errorf("/metrics has no %s", name)
				}
			}
			if g := fams["adaptrec_sessions"]; g != nil && g.Metric[0].GetGauge().GetValue() == 0 {
				t.Error("sessions gauge is 0 after 2000 events")
			}
			runtime := false
			for name := range fams {
				runtime = runtime || strings.HasPrefix(name, "go_")
			}
			if !runtime {
				t.Error("/metrics has no Go runtime metrics")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz after leaving the group: %d, want 503", code)
			}
		})
	}
}

func sum(f *dto.MetricFamily) float64 {
	s := 0.0
	if f != nil {
		for _, m := range f.Metric {
			s += m.GetCounter().GetValue()
		}
	}
	return s
}

// Log lines about a message carry its topic, partition and offset; with a
// JSON handler every line is a JSON object.
func TestDeadLetterLogLinesNameTheMessage(t *testing.T) {
	targets := kafkatest.Targets(t)
	target := targets[len(targets)-1] // the in-process broker
	cfg := kafkatest.Config(t, target)
	lines, bad := kafkatest.Events(200, 20, 30, 4)
	kafkatest.CreateTopics(t, cfg)
	produce(t, cfg, lines)
	var buf syncBuffer
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.NewWorker(cfg, slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), rec, nil, kafkatest.Outputs(t, cfg))
	runUntilCommitted(t, w, cfg, 60*time.Second, nil)
	dead := 0
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] != "dead letter" {
			continue
		}
		dead++
		for _, k := range []string{"topic", "partition", "offset", "class"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("dead letter log line without %s: %s", k, line)
			}
		}
	}
	if dead != len(bad) {
		t.Errorf("%d dead letter log lines for %d malformed events", dead, len(bad))
	}
}
