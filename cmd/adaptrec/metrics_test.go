package main

import (
	"testing"

	"github.com/adaptrec/adaptrec/configs"
)

// The worker's metrics carry the service name its traces use
// (target_info's service_name label): OTEL_SERVICE_NAME over
// tracing.service_name, default adaptrec, never the SDK's
// unknown_service.
func TestMetricsServiceName(t *testing.T) {
	for _, c := range []struct{ name, env, key, want string }{
		{"default", "", "", "adaptrec"},
		{"config key", "", "from-config", "from-config"},
		{"environment over the key", "from-env", "from-config", "from-env"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("OTEL_SERVICE_NAME", c.env)
			cfg := configs.Default()
			if c.key != "" {
				cfg.Tracing.ServiceName = c.key
			}
			m, err := newMetrics(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Shutdown(t.Context())
			fams, err := m.Registry.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := "(no target_info)"
			for _, f := range fams {
				if f.GetName() != "target_info" {
					continue
				}
				for _, l := range f.Metric[0].Label {
					if l.GetName() == "service_name" {
						got = l.GetValue()
					}
				}
			}
			if got != c.want {
				t.Fatalf("target_info service_name %q, want %q", got, c.want)
			}
		})
	}
}
