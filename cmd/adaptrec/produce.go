package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/adaptrec/adaptrec/pipeline"
)

func (a *app) produceCmd() *cobra.Command {
	var file, topic string
	var rate float64
	cmd := &cobra.Command{
		Use:   "produce --file EVENTS.jsonl [--rate N]",
		Short: "Publish feedback events, one JSON object per line, keyed by user",
		Long: `produce publishes each line of a JSONL file (- for stdin) as one message on
the feedback topic, keyed by its user_id and partitioned by murmur2 of it
(the Java client's default; other producers of the topic must partition
the same way, e.g. kcat -X partitioner=murmur2_random, or users' sessions
split between workers), and waits for every ack. Lines are
sent verbatim, malformed ones included, so the worker's DLQ handling can be
exercised; blank lines are skipped. A write that fails because a broker is
down or leadership is moving is retried against the new leaders until
sink.write_timeout, keeping each user's events in order; the summary says
how many messages were retried. The message timestamp is the time of
sending, which replay --to-datetime seeks by. With tracing on (tracing.enabled
or OTEL_EXPORTER_OTLP_ENDPOINT), each message gets a send span whose W3C
traceparent goes into its headers, so the worker's spans join its trace.`,
		Example: `  adaptrec produce --brokers 127.0.0.1:9092 --file events.jsonl --rate 2000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("--file is required (use - for stdin)")
			}
			if rate < 0 {
				return fmt.Errorf("--rate must not be negative, got %g", rate)
			}
			return a.produce(cmd.Context(), file, topic, rate)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "JSONL file of events, - for stdin")
	cmd.Flags().Float64Var(&rate, "rate", 0, "events per second (0: as fast as acks allow)")
	cmd.Flags().StringVar(&topic, "topic", "", "topic to publish to (default topics.feedback)")
	return cmd
}

// produce publishes the events of file (- for stdin) on topic ("":
// topics.feedback) at rate (0: as fast as acks allow).
func (a *app) produce(ctx context.Context, file, topic string, rate float64) error {
	cfg, err := a.load()
	if err != nil {
		return err
	}
	if topic == "" {
		topic = cfg.Topics.Feedback
	}
	var in io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	conn, err := connect(ctx, cfg, "-produce")
	if err != nil {
		return err
	}
	out := kafkaWriter(cfg, conn, topic, "-produce", a.logger(cfg))
	defer out.Close()
	tr, err := a.tracing(ctx, cfg, a.logger(cfg))
	if err != nil {
		return err
	}
	defer flush(tr, a.logger(cfg))
	last := time.Now()
	res, err := pipeline.Produce(ctx, out, in, pipeline.ProduceOptions{
		Rate: rate, Tracer: tracer(tr), Topic: topic,
		Progress: func(sent int) {
			if time.Since(last) >= time.Second {
				last = time.Now()
				fmt.Fprintf(a.stderr, "produce: %d sent\n", sent)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("%s: %w (%d sent before the error)", file, err, res.Sent)
	}
	fmt.Fprintf(a.stdout, "produced %d events to %s in %s (%.0f/s); %d without a user_id key; %d retried\n",
		res.Sent, topic, res.Duration.Round(time.Millisecond), float64(res.Sent)/max(res.Duration.Seconds(), 1e-9), res.Unkeyed, res.Retried)
	return nil
}
