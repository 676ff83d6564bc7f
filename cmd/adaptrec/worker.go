package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/embedded"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/sim"
	"github.com/adaptrec/adaptrec/pipeline/synth"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// servingMsg is the log message, with the address, of the worker's HTTP
// server (tests find the address by it).
const servingMsg = "serving the status page, /metrics, /status.json, /healthz and /readyz"

func (a *app) workerCmd() *cobra.Command {
	var embed bool
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker of the consumer group until SIGINT/SIGTERM",
		Long: `worker joins the consumer group, consumes the feedback topic, publishes
recommendation lists, routes bad events to the DLQ and commits offsets once
every output of a batch is acknowledged. Missing topics are created at start.

With --embedded it starts an in-process broker and a synthetic event source
instead of connecting to --brokers, and prints a progress line every second.

It serves a live status page at / on metrics.addr (default
127.0.0.1:9464; its link is printed at start): events/s and lag, rolling
HR@10 and reward, the network's layer widths and parameters over time, the
latest architecture decisions with their reward terms, the replicas and the
ages of their snapshots. Beside it: /metrics (Prometheus), /status.json
(the page's data that /metrics cannot carry), /healthz and /readyz.
/readyz fails while no broker answers, the group is
not joined, a topic is missing, the model is not loaded or the worker is
stalled; /healthz fails once it has held partitions with lag and committed
nothing for worker.stall_timeout. A topic deleted under a running worker
stops it with a non-zero exit, so that its supervisor restarts it.

It exports traces by OTLP when tracing.enabled is set or
OTEL_EXPORTER_OTLP_ENDPOINT is (OTEL_EXPORTER_OTLP_PROTOCOL,
OTEL_SERVICE_NAME and OTEL_TRACES_SAMPLER_ARG are honoured).`,
		Example: `  adaptrec worker --brokers 127.0.0.1:9092 --group adaptrec
  adaptrec worker --embedded
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 adaptrec worker --brokers 127.0.0.1:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			return a.runWorker(cmd.Context(), cfg, embed)
		},
	}
	cmd.Flags().BoolVar(&embed, "embedded", false, "run an in-process broker and synthetic event source (ignores --brokers)")
	return cmd
}

func (a *app) runWorker(ctx context.Context, cfg configs.Config, embed bool) error {
	log := a.logger(cfg)
	var wg sync.WaitGroup
	defer wg.Wait()
	var population *rollingSim // the embedded simulated population, if any
	if embed {
		stop, err := startEmbedded(ctx, &cfg, log, &wg, &population)
		if err != nil {
			return err
		}
		defer stop()
	}

	rec, err := wire.Model(cfg)
	if err != nil {
		return err
	}
	conn, err := kafkaconn.FromConfig(cfg.Kafka)
	if err != nil {
		return err
	}
	stats := &pipeline.Stats{}
	w := pipeline.NewWorker(cfg, log, rec, stats, pipeline.KafkaOutputs(conn, cfg, log))
	w.SetVersion(version())
	stopTelemetry, err := a.instrument(ctx, cfg, log, w, rec)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	start := time.Now()
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		pipeline.ReportProgress(done, a.stdout, stats, cfg.Worker.ProgressInterval, population.String)
	}()
	err = w.Run(ctx)
	close(done)
	fmt.Fprintln(a.stdout, pipeline.Summary(start, stats.Snapshot()))
	if err != nil {
		return err
	}
	log.Info("worker stopped cleanly", slog.String("group", cfg.Kafka.Group))
	return nil
}

// startEmbedded starts the in-process broker and its event source (the
// simulated population, set in *population, or the synthetic stream) and
// points cfg at the broker. stop closes the broker; wg waits for the
// source, which stops with ctx.
func startEmbedded(ctx context.Context, cfg *configs.Config, log *slog.Logger, wg *sync.WaitGroup, population **rollingSim) (stop func(), err error) {
	broker, err := embedded.Start(cfg.Topics.Partitions, cfg.Topics.Feedback, cfg.Topics.Recommendations, cfg.Topics.DLQ)
	if err != nil {
		return nil, err
	}
	cfg.Kafka.Brokers = broker.Addrs()
	cfg.Kafka.TLS, cfg.Kafka.SASL = configs.KafkaTLS{}, configs.KafkaSASL{} // the in-process broker is plaintext
	if cfg.Worker.ProgressInterval == 0 {
		cfg.Worker.ProgressInterval = time.Second
	}
	log.Info("embedded broker up", "brokers", cfg.Kafka.Brokers, "source", cfg.Embedded.Source)
	src := sink.NewKafka(sink.WriterConfig{
		Brokers: cfg.Kafka.Brokers, Topic: cfg.Topics.Feedback, ClientID: "adaptrec-embedded-source",
		BatchTimeout: cfg.Sink.BatchTimeout, BatchSize: cfg.Sink.BatchSize, WriteTimeout: cfg.Sink.WriteTimeout,
		MaxAttempts: cfg.Sink.MaxAttempts,
	})
	srcCtx, stopSrc := context.WithCancel(ctx)
	run := func() error {
		gen := synth.New(synth.Config{
			Users: cfg.Embedded.Users, Items: cfg.Embedded.Items,
			MalformedFraction: cfg.Embedded.MalformedFraction, Seed: cfg.Embedded.Seed,
		})
		return synth.Run(srcCtx, src, gen, cfg.Embedded.Rate, nil)
	}
	what := "embedded source stopped"
	if cfg.Embedded.Source != "synth" {
		pop, c := &rollingSim{}, *cfg
		*population = pop
		run = func() error { return runPopulation(srcCtx, c, src, log, pop) }
		what = "simulated population stopped"
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer src.Close()
		if err := run(); err != nil {
			log.Error(what, "err", err)
		}
	}()
	return func() { stopSrc(); broker.Close() }, nil
}

// instrument sets up the worker's tracing, metrics (with the sessions rec
// closes, if it counts them) and health endpoints; stop flushes and shuts
// them down.
func (a *app) instrument(ctx context.Context, cfg configs.Config, log *slog.Logger, w *pipeline.Worker, rec model.Recommender) (stop func(), err error) {
	tr, err := a.tracing(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	stops := []func(){func() { flush(tr, log) }}
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	var metrics *telemetry.Metrics
	health := &telemetry.Health{} // the worker's health checks keep it current
	if cfg.Metrics.Addr != "" {
		if metrics, err = newMetrics(cfg); err != nil {
			stop()
			return nil, err
		}
		status := telemetry.NewStatus()
		srv, err := telemetry.Serve(cfg.Metrics.Addr, metrics, health, log, telemetry.WithStatus(status))
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, func() { srv.Close(context.Background()) }, func() { metrics.Shutdown(context.Background()) })
		w.ShowStatus(status)
		log.Info(servingMsg, "addr", srv.Addr())
		fmt.Fprintf(a.stdout, "status page: %s\n", srv.URL())
	}
	if tr.Enabled {
		log.Info("exporting traces", "endpoint", cfg.Tracing.Endpoint)
	}
	w.Instrument(tr, metrics, health)
	if err := countSessions(metrics, rec); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// countSessions exports the sessions rec closes, the users it forgets and
// the items it expires, if it counts them (m may be nil: no metrics).
func countSessions(m *telemetry.Metrics, rec model.Recommender) error {
	if c, ok := rec.(model.SessionCounter); ok {
		if err := m.CountClosedSessions(c.SessionsClosed); err != nil {
			return err
		}
	}
	if e, ok := rec.(model.UserEvicter); ok {
		if err := m.CountEvictedUsers(e.UsersEvicted); err != nil {
			return err
		}
	}
	if e, ok := rec.(model.ItemExpirer); ok {
		return m.CountExpiredItems(e.ItemsExpired)
	}
	return nil
}

// rollingSim holds the simulated population's figures over its last 30
// reporting seconds, for the progress line: reward per list shown, and
// reward and length of the sessions that ended.
type rollingSim struct {
	mu      sync.Mutex
	windows []sim.Window
}

func (r *rollingSim) add(w sim.Window) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows = append(r.windows, w)
	if len(r.windows) > 30 {
		r.windows = r.windows[1:]
	}
}

// String is the progress line's part about the population ("" if none).
func (r *rollingSim) String() string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var t sim.Window
	for _, w := range r.windows {
		t.Merge(w)
	}
	if t.Sessions == 0 {
		return ""
	}
	return fmt.Sprintf("  sim (30s): reward/list %.2f  reward/session %.2f  session length %.2f",
		t.ListReward/float64(max(t.Shown, 1)), t.Reward/float64(t.Sessions), float64(t.Steps)/float64(t.Sessions))
}

// runPopulation runs the simulated population against the worker through
// the embedded broker until ctx ends.
func runPopulation(ctx context.Context, cfg configs.Config, out sink.Sink, log *slog.Logger, r *rollingSim) error {
	scfg := sim.FromConfig(cfg.Sim)
	scfg.Sessions = 1 << 30 // until stopped
	pop, err := sim.New(scfg)
	if err != nil {
		return err
	}
	policy, err := sim.NewKafkaPolicy(ctx, kafkaconn.Plain(cfg.Kafka.Brokers), cfg.Topics.Recommendations,
		&sim.KafkaPolicy{Out: out, Topic: cfg.Topics.Feedback, Log: log, Malformed: cfg.Embedded.MalformedFraction})
	if err != nil {
		return err
	}
	defer policy.Close()
	return sim.Live(ctx, pop, policy, nil, nil, time.Second, func(w, _ sim.Window) { r.add(w) })
}

// newMetrics creates the worker's metrics under the service name its
// traces use: OTEL_SERVICE_NAME, else tracing.service_name.
func newMetrics(cfg configs.Config) (*telemetry.Metrics, error) {
	t, err := telemetry.Resolve(cfg.Tracing, os.Getenv)
	if err != nil {
		return nil, err
	}
	return telemetry.NewMetrics(cfg.Metrics.QualityWindow, telemetry.WithService(t.ServiceName, version()))
}
