package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/adaptrec/adaptrec/pipeline"
)

func (a *app) replayCmd() *cobra.Command {
	var toTime, toOffset string
	cmd := &cobra.Command{
		Use:   "replay (--to-datetime RFC3339 | --to-offset earliest|latest)",
		Short: "Rewind the group's committed offsets on the feedback topic",
		Long: `replay rewinds the consumer group's committed offset on every partition of
the feedback topic: to the first message produced at or after a time, or to
the earliest or latest offset. The group must have no live members (stop its
workers first); otherwise replay refuses and changes nothing. Workers started
afterwards reprocess from there.`,
		Example: `  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --to-datetime 2026-11-28T10:00:00Z
  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --to-offset earliest`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var target pipeline.ReplayTarget
			switch {
			case (toTime == "") == (toOffset == ""):
				return fmt.Errorf("give exactly one of --to-datetime and --to-offset")
			case toOffset == "earliest":
				target.Earliest = true
			case toOffset == "latest":
				target.Latest = true
			case toOffset != "":
				return fmt.Errorf("--to-offset: want earliest or latest, got %q", toOffset)
			default:
				t, err := time.Parse(time.RFC3339Nano, toTime)
				if err != nil {
					return fmt.Errorf("--to-datetime: %q is not an RFC 3339 time (e.g. 2026-11-28T10:00:00Z)", toTime)
				}
				target.Time = t
			}
			cfg, err := a.load()
			if err != nil {
				return err
			}
			client := &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Timeout: cfg.Kafka.RequestTimeout}
			offsets, err := pipeline.Replay(cmd.Context(), client, cfg.Kafka.Group, cfg.Topics.Feedback, target)
			if err != nil {
				return err
			}
			parts := make([]int, 0, len(offsets))
			for p := range offsets {
				parts = append(parts, p)
			}
			slices.Sort(parts)
			fmt.Fprintf(a.stdout, "rewound group %q on %s to %s:\n", cfg.Kafka.Group, cfg.Topics.Feedback, target)
			for _, p := range parts {
				fmt.Fprintf(a.stdout, "  partition %d -> offset %d\n", p, offsets[p])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&toTime, "to-datetime", "", "rewind to the first message produced at or after this RFC 3339 time")
	cmd.Flags().StringVar(&toOffset, "to-offset", "", "rewind to earliest or latest")
	return cmd
}
