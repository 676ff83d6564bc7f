package telemetry

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metrics are the worker's instruments, exported for Prometheus. A nil
// *Metrics records nothing, so instrumented code need not check.
type Metrics struct {
	Registry *prometheus.Registry
	provider *sdkmetric.MeterProvider

	events, dlq, lists, decisions metric.Int64Counter
	splitUsers                    metric.Int64Counter
	duplicates                    metric.Int64Counter
	batchSize                     metric.Int64Histogram
	batchLatency, recLatency      metric.Float64Histogram
	lag, params, sessions         metric.Int64Gauge
	hr, reward                    metric.Float64Gauge
	typeAttrs                     map[string]metric.MeasurementOption
	mu                            sync.Mutex // guards the rolling windows
	hits, rewards                 rolling
}

// meterName names the worker's instruments.
const meterName = "github.com/adaptrec/adaptrec/pipeline"

// MetricsOption changes a default of NewMetrics.
type MetricsOption func(*metricsOptions)

type metricsOptions struct{ service, version string }

// WithService sets the service.name and service.version of the metrics'
// resource (target_info on /metrics); the default is adaptrec, with no
// version. Give the name traces use (tracing.service_name or
// OTEL_SERVICE_NAME).
func WithService(name, version string) MetricsOption {
	return func(o *metricsOptions) { o.service, o.version = name, version }
}

// NewMetrics creates the instruments on a fresh Prometheus registry, with
// Go runtime metrics. window is the length of the rolling HR and reward
// windows.
func NewMetrics(window int, opts ...MetricsOption) (*Metrics, error) {
	o := metricsOptions{service: "adaptrec"}
	for _, opt := range opts {
		opt(&o)
	}
	res, err := ServiceResource(o.service, o.version)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	if err := runtime.Start(runtime.WithMeterProvider(mp)); err != nil {
		return nil, fmt.Errorf("metrics: runtime: %w", err)
	}
	m := &Metrics{Registry: reg, provider: mp, hits: newRolling(window), rewards: newRolling(window)}
	meter := mp.Meter(meterName)
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, desc string) metric.Int64Gauge {
		g, err := meter.Int64Gauge(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	fgauge := func(name, desc string) metric.Float64Gauge {
		g, err := meter.Float64Gauge(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	seconds := func(name, desc string) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
		errs = append(errs, err)
		return h
	}
	m.events = counter("adaptrec.events.consumed", "Valid feedback events consumed, by type.")
	m.dlq = counter("adaptrec.dlq.messages", "Messages routed to the dead-letter topic, by error class.")
	m.duplicates = counter("adaptrec.duplicates", "Duplicate events (by event_id, or message bytes without one) committed without being learned.")
	m.lists = counter("adaptrec.recommendation.lists", "Recommendation lists published (acknowledged).")
	m.decisions = counter("adaptrec.architecture.decisions", "Architecture decisions taken, by action.")
	m.splitUsers = counter("adaptrec.users.split_partitions", "Users whose events arrived on more than one partition, counted once per user held: a producer that does not key by murmur2 of the user id.")
	m.batchSize, err = meter.Int64Histogram("adaptrec.batch.size", metric.WithDescription("Messages per batch."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096))
	errs = append(errs, err)
	m.batchLatency = seconds("adaptrec.batch.duration", "From a batch's first fetched message to its commit.")
	m.recLatency = seconds("adaptrec.recommendation.latency", "From an event's produce timestamp to the acknowledgement of the list it caused.")
	m.lag = gauge("adaptrec.consumer.lag", "Messages behind the partition's high watermark after the last batch, by partition.")
	m.params = gauge("adaptrec.model.parameters", "Parameters of the model.")
	m.sessions = gauge("adaptrec.sessions", "Sessions held in memory.")
	m.hr = fgauge("adaptrec.quality.hr_at_10", "Rolling prequential HR@10 on a sample of events (metrics.quality_sample_every).")
	m.reward = fgauge("adaptrec.reward.mean", "Rolling mean reward of the consumed events.")
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	m.typeAttrs = map[string]metric.MeasurementOption{}
	for _, t := range []string{"click", "view", "rating"} {
		m.typeAttrs[t] = metric.WithAttributes(attribute.String("type", t))
	}
	return m, nil
}

// CountClosedSessions exports closed, the number of sessions the model
// has closed so far (by a new session id, the idle gap or an eviction),
// as the counter adaptrec.sessions.closed, read at each collection.
// closed is called from the collecting goroutine: it must be safe to call
// while the model learns (model.SessionCounter is).
func (m *Metrics) CountClosedSessions(closed func() int64) error {
	return m.observeCounter("adaptrec.sessions.closed",
		"Sessions the model closed: by a new session id, after session.idle_gap without events, or by evicting their user.", closed)
}

// CountExpiredItems exports expired, the number of items the model has
// expired so far (recommender.max_items), as the counter
// adaptrec.items.expired, read at each collection; like closed of
// CountClosedSessions, expired must be safe to call while the model
// learns (model.ItemExpirer is).
func (m *Metrics) CountExpiredItems(expired func() int64) error {
	return m.observeCounter("adaptrec.items.expired",
		"Items the model expired, the least recently seen, to hold at most recommender.max_items.", expired)
}

// CountEvictedUsers exports the users the model forgot, as evicted reads
// them.
func (m *Metrics) CountEvictedUsers(evicted func() int64) error {
	return m.observeCounter("adaptrec.users.evicted",
		"Users the model forgot: the least recently seen past recommender.max_users, those idle past recommender.user_ttl, and new users past recommender.max_new_users (the adaptive model's own).", evicted)
}

// observeCounter exports the counter name whose value read reads at each
// collection, from the collecting goroutine.
func (m *Metrics) observeCounter(name, description string, read func() int64) error {
	if m == nil {
		return nil
	}
	_, err := m.provider.Meter(meterName).Int64ObservableCounter(name,
		metric.WithDescription(description),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(read())
			return nil
		}))
	if err != nil {
		return fmt.Errorf("metrics: %s: %w", name, err)
	}
	return nil
}

// Shutdown stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return m.provider.Shutdown(ctx)
}

var bg = context.Background()

// Event counts one valid event of the given type.
func (m *Metrics) Event(typ string) {
	if m == nil {
		return
	}
	opt, ok := m.typeAttrs[typ]
	if !ok {
		opt = metric.WithAttributes(attribute.String("type", typ))
	}
	m.events.Add(bg, 1, opt)
}

// UserSplit counts a user whose events arrived on a second partition.
func (m *Metrics) UserSplit() {
	if m != nil {
		m.splitUsers.Add(bg, 1)
	}
}

// DeadLetter counts one message routed to the DLQ.
func (m *Metrics) DeadLetter(class string) {
	if m != nil {
		m.dlq.Add(bg, 1, metric.WithAttributes(attribute.String("class", class)))
	}
}

// Duplicate counts one duplicate event, committed but not learned.
func (m *Metrics) Duplicate() {
	if m != nil {
		m.duplicates.Add(bg, 1)
	}
}

// Batch records a batch's size and the lag it left on each partition.
func (m *Metrics) Batch(size int, lag map[int]int64) {
	if m == nil {
		return
	}
	m.batchSize.Record(bg, int64(size))
	for p, l := range lag {
		m.lag.Record(bg, l, metric.WithAttributes(attribute.String("partition", strconv.Itoa(p))))
	}
}

// Published counts acknowledged lists and records the produce→list
// latency of the events they reflect.
func (m *Metrics) Published(lists int, produced []time.Time, at time.Time) {
	if m == nil {
		return
	}
	m.lists.Add(bg, int64(lists))
	for _, t := range produced {
		m.recLatency.Record(bg, at.Sub(t).Seconds())
	}
}

// Committed records a batch's latency from first fetch to commit.
func (m *Metrics) Committed(first, at time.Time) {
	if m != nil {
		m.batchLatency.Record(bg, at.Sub(first).Seconds())
	}
}

// Decision counts an architecture decision.
func (m *Metrics) Decision(action string) {
	if m != nil {
		m.decisions.Add(bg, 1, metric.WithAttributes(attribute.String("action", action)))
	}
}

// Model records the model's parameters and the sessions held.
func (m *Metrics) Model(params, sessions int) {
	if m == nil {
		return
	}
	m.params.Record(bg, int64(params))
	m.sessions.Record(bg, int64(sessions))
}

// Quality adds sampled hits (rank < 10 of a scored event) and event
// rewards to the rolling windows and updates their gauges.
func (m *Metrics) Quality(hits []bool, rewards []float32) {
	if m == nil || (len(hits) == 0 && len(rewards) == 0) {
		return
	}
	m.mu.Lock()
	for _, h := range hits {
		v := 0.0
		if h {
			v = 1
		}
		m.hits.add(v)
	}
	for _, r := range rewards {
		m.rewards.add(float64(r))
	}
	hr, rw, nh, nr := m.hits.mean(), m.rewards.mean(), m.hits.n, m.rewards.n
	m.mu.Unlock()
	if nh > 0 {
		m.hr.Record(bg, hr)
	}
	if nr > 0 {
		m.reward.Record(bg, rw)
	}
}

// rolling is the mean of the last len(buf) values.
type rolling struct {
	buf     []float64
	next, n int
	sum     float64
}

func newRolling(size int) rolling { return rolling{buf: make([]float64, max(size, 1))} }

func (r *rolling) add(v float64) {
	if r.n == len(r.buf) {
		r.sum -= r.buf[r.next]
	} else {
		r.n++
	}
	r.buf[r.next] = v
	r.sum += v
	r.next = (r.next + 1) % len(r.buf)
}

func (r *rolling) mean() float64 {
	if r.n == 0 {
		return 0
	}
	return r.sum / float64(r.n)
}
