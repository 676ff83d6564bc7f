package configs

import (
	"net"
	"net/url"
)

// Log configures the slog handler.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Tracing is OTLP span export. The standard OTEL_* environment variables
// override it (see telemetry.Resolve).
type Tracing struct {
	Enabled     bool    `mapstructure:"enabled"`
	Endpoint    string  `mapstructure:"endpoint"`
	Protocol    string  `mapstructure:"protocol"`
	SampleRatio float64 `mapstructure:"sample_ratio"`
	ServiceName string  `mapstructure:"service_name"`
}

// Metrics is the HTTP endpoint for /metrics, /healthz and /readyz, and
// the rolling quality gauges.
type Metrics struct {
	Addr               string `mapstructure:"addr"`
	QualitySampleEvery int    `mapstructure:"quality_sample_every"`
	QualityWindow      int    `mapstructure:"quality_window"`
}

// check validates log.*.
func (l Log) check(p *problems) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be debug, info, warn or error, got %q", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		p.add("log.format", "must be text or json, got %q", l.Format)
	}
}

// check validates tracing.*.
func (t Tracing) check(p *problems) {
	switch t.Protocol {
	case "grpc", "http/protobuf":
	default:
		p.add("tracing.protocol", "must be grpc or http/protobuf, got %q", t.Protocol)
	}
	if r := t.SampleRatio; r < 0 || r > 1 {
		p.add("tracing.sample_ratio", "must be within [0, 1], got %g", r)
	}
	nonEmpty(p, map[string]string{"tracing.service_name": t.ServiceName})
	if t.Endpoint != "" {
		if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("tracing.endpoint", "%q is not an http:// or https:// URL", t.Endpoint)
		}
	}
}

// check validates metrics.*.
func (m Metrics) check(p *problems) {
	if a := m.Addr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			p.add("metrics.addr", "%q is not HOST:PORT (empty turns the endpoint off)", a)
		}
	}
	if m.QualitySampleEvery < 0 {
		p.add("metrics.quality_sample_every", "must not be negative")
	}
	if m.QualityWindow <= 0 {
		p.add("metrics.quality_window", "must be positive, got %d", m.QualityWindow)
	}
}
