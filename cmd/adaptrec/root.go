package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// app holds what every subcommand shares: its output streams and flags.
type app struct {
	stdout, stderr io.Writer
	configFile     string
	flags          map[string]*pflag.Flag // config key -> flag
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, flags: map[string]*pflag.Flag{}}
	root := &cobra.Command{
		Use:   "adaptrec",
		Short: "Online-learning recommender worker for Kafka",
		Long: `adaptrec reads click, view and rating events from Kafka as a consumer group,
batches them into Arrow records, learns from them and publishes refreshed
recommendation lists.

Configuration: defaults (configs/adaptrec.yaml, built in), then --config FILE,
then ADAPTREC_* environment variables (ADAPTREC_BATCH_SIZE=128), then flags.

Kafka TLS and SASL, for every command that talks to Kafka: the kafka.tls.*
and kafka.sasl.* keys. The SASL password is read from the environment variable
kafka.sasl.password_env names or from kafka.sasl.password_file, never from a
flag; a command that cannot connect with them exits 1 saying what failed
(README: Security).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&a.configFile, "config", "", "YAML config file (keys and defaults: configs/adaptrec.yaml)")
	pf.StringSlice("brokers", nil, "Kafka brokers HOST:PORT[,HOST:PORT] (kafka.brokers)")
	a.bind("kafka.brokers", pf.Lookup("brokers"))
	pf.String("group", "", "consumer group (kafka.group)")
	a.bind("kafka.group", pf.Lookup("group"))
	root.AddCommand(a.workerCmd(), a.replayCmd(), a.produceCmd(), a.simulateCmd(), a.snapshotCmd(), a.evalCmd(), a.configCmd())
	return root
}

func (a *app) bind(key string, f *pflag.Flag) { a.flags[key] = f }

func (a *app) load() (configs.Config, error) {
	return wire.Load(configs.LoadOptions{File: a.configFile, Environ: os.Environ(), Flags: a.flags})
}

func (a *app) logger(cfg configs.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by configs
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}

// tracing sets up span export from cfg and the standard OTEL_* variables;
// export errors (an unreachable collector) are logged as warnings.
func (a *app) tracing(ctx context.Context, cfg configs.Config, log *slog.Logger) (*telemetry.Tracing, error) {
	t, err := telemetry.Resolve(cfg.Tracing, os.Getenv)
	if err != nil {
		return nil, err
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("exporting traces", "endpoint", t.Endpoint, "err", err)
	}))
	return telemetry.NewTracing(ctx, t, version())
}

// flush flushes and stops span export within 5 seconds, logging failure.
func flush(tr *telemetry.Tracing, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		log.Warn("flushing spans", "err", err)
	}
}

// connect builds the Kafka connection of cfg (kafka.tls, kafka.sasl) with
// client id kafka.client_id plus suffix, and checks that the brokers accept
// it, so a wrong password or CA stops the command at once, saying so.
func connect(ctx context.Context, cfg configs.Config, suffix string) (*kafkaconn.Conn, error) {
	conn, err := kafkaconn.FromConfig(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	conn = conn.WithClientID(cfg.Kafka.ClientID + suffix)
	if err := conn.Check(ctx); err != nil {
		return nil, err
	}
	return conn, nil
}

// tracer is the tracer of the binary's own spans, nil when tracing is off.
func tracer(tr *telemetry.Tracing) trace.Tracer {
	if !tr.Enabled {
		return nil
	}
	return tr.Provider.Tracer("github.com/adaptrec/adaptrec/cmd/adaptrec")
}

// kafkaWriter is a writer to topic with the sink.* settings of cfg, over
// conn, with client id kafka.client_id plus suffix.
func kafkaWriter(cfg configs.Config, conn *kafkaconn.Conn, topic, suffix string, log *slog.Logger) *sink.Kafka {
	return sink.NewKafka(sink.WriterConfig{
		Brokers: cfg.Kafka.Brokers, Topic: topic, ClientID: cfg.Kafka.ClientID + suffix,
		BatchTimeout: cfg.Sink.BatchTimeout, BatchSize: cfg.Sink.BatchSize,
		WriteTimeout: cfg.Sink.WriteTimeout, MaxAttempts: cfg.Sink.MaxAttempts,
		Transport: conn.Transport(), Logger: log,
	})
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

func (a *app) configCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (defaults, file, environment, flags) as YAML",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			out, err := configs.Marshal(cfg)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(a.stdout, string(out))
			return err
		},
	}
}
