package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
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

// The worker exports the sessions its model closed: two anonymous
// sessions, the first idle past session.idle_gap once the second has two
// events, count as one in adaptrec_sessions_closed_total.
func TestMetricsCountClosedSessions(t *testing.T) {
	cfg := configs.Default()
	cfg.Recommender.Model = "itemknn"
	rec, m := countingModel(t, cfg)
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var evs []feedback.Located
	for k, user := range []string{"a", "b", "b"} {
		at := start
		if k > 0 {
			at = start.Add(cfg.Session.IdleGap + time.Duration(k)*time.Minute)
		}
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: user, SessionID: user, ItemID: "i", Type: feedback.Click,
			TS: at}, Offset: int64(k)})
	}
	b := feedback.BatchOf(evs...)
	defer b.Release()
	if _, err := rec.Learn(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, m, "adaptrec_sessions_closed_total"); got != 1 {
		t.Fatalf("adaptrec_sessions_closed_total %v, want 1", got)
	}
}

// countingModel is cfg's model with the worker's metrics counting what it
// closes and expires, shut down when the test ends.
func countingModel(t *testing.T, cfg configs.Config) (model.Recommender, *telemetry.Metrics) {
	t.Helper()
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	if err := countSessions(m, rec); err != nil {
		t.Fatal(err)
	}
	return rec, m
}

// counter is the value of the counter name that m exports.
func counter(t *testing.T, m *telemetry.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.Metric[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// The worker exports the items its model expired: 30 items against
// recommender.max_items 10 leave 9 (nine tenths of the bound), so 21 count
// in adaptrec_items_expired_total.
func TestMetricsCountExpiredItems(t *testing.T) {
	cfg := configs.Default()
	cfg.Recommender.MaxItems = 10
	rec, m := countingModel(t, cfg)
	learnClicks(t, rec, 30, func(k int) string { return fmt.Sprint("u", k%3) })
	if got := counter(t, m, "adaptrec_items_expired_total"); got != 21 {
		t.Fatalf("adaptrec_items_expired_total %v, want 21", got)
	}
}

// The worker exports the users its model forgot: five users with one
// event each against recommender.max_new_users 2 leave the newest two, so
// 3 count in adaptrec_users_evicted_total.
func TestMetricsCountEvictedUsers(t *testing.T) {
	cfg := configs.Default()
	cfg.Recommender.MaxNewUsers = 2
	rec, m := countingModel(t, cfg)
	learnClicks(t, rec, 5, func(k int) string { return fmt.Sprint("u", k) })
	if got := counter(t, m, "adaptrec_users_evicted_total"); got != 3 {
		t.Fatalf("adaptrec_users_evicted_total %v, want 3", got)
	}
}

// learnClicks has rec learn, in one batch, n clicks a second apart, click
// k by user(k) on item ik.
func learnClicks(t *testing.T, rec model.Recommender, n int, user func(k int) string) {
	t.Helper()
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var evs []feedback.Located
	for k := range n {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: user(k), ItemID: fmt.Sprint("i", k), Type: feedback.Click,
			TS: start.Add(time.Duration(k) * time.Second)}, Offset: int64(k)})
	}
	b := feedback.BatchOf(evs...)
	defer b.Release()
	if _, err := rec.Learn(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}
