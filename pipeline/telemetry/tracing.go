// Package telemetry is adaptrec's observability: OpenTelemetry tracing
// exported by OTLP with W3C trace context carried in Kafka headers,
// metrics through the OpenTelemetry SDK with a Prometheus exporter, and
// the /metrics, /healthz and /readyz endpoints.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/adaptrec/adaptrec/configs"
)

// Propagator carries W3C trace context (traceparent, tracestate) in Kafka
// message headers.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Resolve applies the standard OpenTelemetry environment variables over
// the tracing configuration, as every OTel-instrumented service does:
// OTEL_EXPORTER_OTLP_ENDPOINT (which alone turns export on),
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER_ARG,
// and OTEL_SDK_DISABLED=true (export off). Errors name the variable.
func Resolve(t configs.Tracing, getenv func(string) string) (configs.Tracing, error) {
	if v := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		t.Endpoint, t.Enabled = v, true
	}
	if v := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); v != "" {
		if v != "grpc" && v != "http/protobuf" {
			return t, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q is not supported (grpc or http/protobuf)", v)
		}
		t.Protocol = v
	}
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		t.ServiceName = v
	}
	if v := getenv("OTEL_TRACES_SAMPLER_ARG"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			return t, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio within [0, 1]", v)
		}
		t.SampleRatio = r
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		t.Enabled = false
	}
	if t.Enabled && !strings.HasPrefix(t.Endpoint, "http://") && !strings.HasPrefix(t.Endpoint, "https://") {
		return t, fmt.Errorf("tracing.endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT): %q is not an http:// or https:// URL", t.Endpoint)
	}
	return t, nil
}

// Tracing is a tracer provider and its shutdown (which flushes spans).
type Tracing struct {
	Provider trace.TracerProvider
	// Enabled is false for the no-op provider: instrumented code skips
	// its tracing work entirely then.
	Enabled  bool
	shutdown func(context.Context) error
}

// Shutdown flushes and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// Off is tracing disabled: a no-op provider, which costs nothing.
func Off() *Tracing { return &Tracing{Provider: noop.NewTracerProvider()} }

// NewTracing sets up OTLP export for t (resolved), or returns Off if t is
// not enabled. version goes into the service.version resource attribute.
func NewTracing(ctx context.Context, t configs.Tracing, version string) (*Tracing, error) {
	if !t.Enabled {
		return Off(), nil
	}
	var exp sdktrace.SpanExporter
	var err error
	base := strings.TrimRight(t.Endpoint, "/")
	switch t.Protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(base))
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(base+"/v1/traces"))
	default:
		err = fmt.Errorf("tracing.protocol: %q is not grpc or http/protobuf", t.Protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", t.Endpoint, err)
	}
	res, err := ServiceResource(t.ServiceName, version)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(LinkedOrRatio(t.SampleRatio)),
		sdktrace.WithResource(res),
	)
	return &Tracing{Provider: tp, Enabled: true, shutdown: tp.Shutdown}, nil
}

// ServiceResource is the resource traces and metrics are reported under:
// the SDK's defaults with service.name (tracing.service_name or
// OTEL_SERVICE_NAME, default adaptrec) and service.version.
func ServiceResource(service, version string) (*resource.Resource, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(service), semconv.ServiceVersion(version)))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("resource of service %q: %w", service, err)
	}
	return res, nil
}

// LinkedOrRatio samples a span whose parent is sampled, or, for a root
// span, one that links to a sampled span (a batch span keeps the traces
// its producers chose to keep); other roots are sampled at ratio.
func LinkedOrRatio(ratio float64) sdktrace.Sampler {
	return linkedSampler{inner: sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), ratio: ratio}
}

type linkedSampler struct {
	inner sdktrace.Sampler
	ratio float64
}

// ShouldSample samples a root span that links a sampled span (a batch
// whose events came from sampled traces); otherwise it defers to the
// ratio sampler.
func (s linkedSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if !trace.SpanContextFromContext(p.ParentContext).IsValid() {
		for _, l := range p.Links {
			if l.SpanContext.IsSampled() {
				return sdktrace.SamplingResult{
					Decision:   sdktrace.RecordAndSample,
					Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState(),
				}
			}
		}
	}
	return s.inner.ShouldSample(p)
}

// Description names the sampler and its ratio.
func (s linkedSampler) Description() string {
	return fmt.Sprintf("LinkedOrRatio{%g}", s.ratio)
}
