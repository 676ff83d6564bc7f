package telemetry

import (
	"context"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/configs"
)

func TestHeaderCarrierRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("t").Start(context.Background(), "send")
	defer span.End()
	m := kafka.Message{Headers: []kafka.Header{{Key: "other", Value: []byte("x")}}}
	Inject(ctx, &m)
	Inject(ctx, &m) // replaces, does not duplicate
	n := 0
	for _, h := range m.Headers {
		if h.Key == "traceparent" {
			n++
		}
	}
	if n != 1 || len(m.Headers) != 2 {
		t.Fatalf("headers after two injections: %+v", m.Headers)
	}
	got := Extract(&m)
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsSampled() {
		t.Fatalf("extracted %v, injected %v", got, span.SpanContext())
	}
	if sc := Extract(&kafka.Message{}); sc.IsValid() {
		t.Fatalf("a message without headers carried %v", sc)
	}
}

func TestResolveEnvironment(t *testing.T) {
	base := configs.Default().Tracing
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	got, err := Resolve(base, env())
	if err != nil || got.Enabled {
		t.Fatalf("defaults: enabled %v, err %v; tracing must be off by default", got.Enabled, err)
	}
	got, err = Resolve(base, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf",
		"OTEL_SERVICE_NAME", "svc", "OTEL_TRACES_SAMPLER_ARG", "0.25"))
	if err != nil || !got.Enabled || got.Endpoint != "http://127.0.0.1:4318" || got.Protocol != "http/protobuf" || got.ServiceName != "svc" || got.SampleRatio != 0.25 {
		t.Fatalf("OTEL_* not applied: %+v, %v", got, err)
	}
	got, _ = Resolve(base, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4317", "OTEL_SDK_DISABLED", "true"))
	if got.Enabled {
		t.Fatal("OTEL_SDK_DISABLED=true left tracing on")
	}
	for _, c := range []struct{ env []string }{
		{[]string{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"}},
		{[]string{"OTEL_TRACES_SAMPLER_ARG", "2"}},
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4317"}},
	} {
		if _, err := Resolve(base, env(c.env...)); err == nil || !strings.Contains(err.Error(), c.env[0]) {
			t.Errorf("%s=%s: error %v does not name the variable", c.env[0], c.env[1], err)
		}
	}
}

func TestLinkedOrRatioSampler(t *testing.T) {
	s := LinkedOrRatio(0)
	sampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	dropped := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{2}, SpanID: trace.SpanID{2}})
	p := sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: trace.TraceID{3}, Name: "process"}
	if d := s.ShouldSample(p).Decision; d != sdktrace.Drop {
		t.Fatalf("ratio 0, no links: %v", d)
	}
	p.Links = []trace.Link{{SpanContext: dropped}}
	if d := s.ShouldSample(p).Decision; d != sdktrace.Drop {
		t.Fatalf("ratio 0, link to an unsampled span: %v", d)
	}
	p.Links = append(p.Links, trace.Link{SpanContext: sampled})
	if d := s.ShouldSample(p).Decision; d != sdktrace.RecordAndSample {
		t.Fatalf("ratio 0, link to a sampled span: %v", d)
	}
	if d := LinkedOrRatio(1).ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: trace.TraceID{4}}).Decision; d != sdktrace.RecordAndSample {
		t.Fatalf("ratio 1: %v", d)
	}
}

func TestRolling(t *testing.T) {
	r := newRolling(3)
	for _, v := range []float64{1, 1, 1, 0, 0} {
		r.add(v)
	}
	if r.n != 3 || r.mean() != 1.0/3 {
		t.Fatalf("window of 3 over 1,1,1,0,0: n %d mean %v", r.n, r.mean())
	}
}

// The fast traceparent parser agrees with the propagator on valid headers
// and rejects what the W3C format rejects.
func TestTraceparentMatchesPropagator(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.TraceIDRatioBased(0.5)))
	defer tp.Shutdown(context.Background())
	for i := range 50 {
		ctx, span := tp.Tracer("t").Start(context.Background(), "send")
		var m kafka.Message
		Inject(ctx, &m)
		span.End()
		if got, want := Traceparent(&m), Extract(&m); !got.Equal(want) {
			t.Fatalf("message %d: parsed %v, propagator %v", i, got, want)
		}
	}
	for _, v := range []string{
		"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
		"00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	} {
		m := kafka.Message{Headers: []kafka.Header{{Key: "traceparent", Value: []byte(v)}}}
		if sc := Traceparent(&m); sc.IsValid() {
			t.Errorf("%q parsed as valid %v", v, sc)
		}
	}
	m := kafka.Message{Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}}
	if sc := Traceparent(&m); !sc.IsValid() || !sc.IsSampled() || sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("valid header parsed as %v", sc)
	}
}
