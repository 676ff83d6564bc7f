package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/sim"
)

func (a *app) simulateCmd() *cobra.Command {
	var duration, every time.Duration
	cmd := &cobra.Command{
		Use:   "simulate --brokers HOST:PORT [--users N --items M --duration D --seed S]",
		Short: "Run the simulated population against a live worker through Kafka",
		Long: `simulate runs the simulated users (sim.* keys) against a running worker:
their feedback goes to the feedback topic (keyed by user, with trace context
when tracing is on) and they react to the lists the worker publishes on the
recommendations topic. A control population of the same size and seed is
served random lists in process, tick for tick. Every --every it prints, for
both: sessions ended, mean session length (lists shown), clicks per session
and reward per session. It stops after --duration, when sim.sessions have
run, or on SIGINT.`,
		Example: `  adaptrec worker --brokers 127.0.0.1:9092 &
  adaptrec simulate --brokers 127.0.0.1:9092 --users 2000 --duration 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.simulate(cmd.Context(), duration, every)
		},
	}
	f := cmd.Flags()
	f.Int("users", 0, "simulated users (sim.users)")
	a.bind("sim.users", f.Lookup("users"))
	f.Int("items", 0, "items (sim.items)")
	a.bind("sim.items", f.Lookup("items"))
	f.Uint64("seed", 0, "seed of the population (sim.seed)")
	a.bind("sim.seed", f.Lookup("seed"))
	f.DurationVar(&duration, "duration", 0, "stop after this long (0: after sim.sessions sessions)")
	f.DurationVar(&every, "every", time.Minute, "reporting period")
	return cmd
}

// simulate runs the simulated population against the live worker for
// duration (0: sim.sessions sessions), reporting every every.
func (a *app) simulate(ctx context.Context, duration, every time.Duration) error {
	cfg, err := a.load()
	if err != nil {
		return err
	}
	if duration < 0 || every <= 0 {
		return fmt.Errorf("--duration must not be negative and --every must be positive")
	}
	log := a.logger(cfg)
	scfg := sim.FromConfig(cfg.Sim)
	if duration > 0 {
		scfg.Sessions = 1 << 30 // the duration ends the run
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	live, err := sim.New(scfg)
	if err != nil {
		return err
	}
	control, _ := sim.New(scfg)
	conn, err := connect(ctx, cfg, "-simulate")
	if err != nil {
		return err
	}
	specs := []pipeline.TopicSpec{
		{Name: cfg.Topics.Feedback, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
		{Name: cfg.Topics.Recommendations, Partitions: cfg.Topics.Partitions, ReplicationFactor: cfg.Topics.ReplicationFactor},
	}
	if err := pipeline.EnsureTopics(ctx, conn.Client(), specs, cfg.Topics.Create, log); err != nil {
		return err
	}
	tr, err := a.tracing(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer flush(tr, log)
	out := kafkaWriter(cfg, conn, cfg.Topics.Feedback, "-simulate", nil)
	defer out.Close()
	policy, err := sim.NewKafkaPolicy(ctx, conn, cfg.Topics.Recommendations,
		&sim.KafkaPolicy{Out: out, Topic: cfg.Topics.Feedback, Tracer: tracer(tr), Log: log})
	if err != nil {
		return err
	}
	defer policy.Close()
	start := time.Now()
	var total, ctotal sim.Window
	err = sim.Live(ctx, live, policy, control, sim.NewRandom(cfg.Recommender.TopN, scfg.Seed), every, func(w, cw sim.Window) {
		total.Merge(w)
		ctotal.Merge(cw)
		at := time.Since(start).Round(time.Second)
		fmt.Fprintf(a.stdout, "%-8s worker: %s\n%-8s random: %s\n", at, w, "", cw)
	})
	fmt.Fprintf(a.stdout, "total    worker: %s\n         random: %s\n", total, ctotal)
	return err
}
