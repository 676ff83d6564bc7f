package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/adaptrec/adaptrec/pipeline"
)

func (a *app) replayCmd() *cobra.Command {
	var toTime, toOffset, snapshot string
	cmd := &cobra.Command{
		Use:   "replay (--to-datetime RFC3339 | --to-offset earliest|latest | --snapshot ID)",
		Short: "Rewind the group's committed offsets on the feedback topic",
		Long: `replay rewinds the consumer group's committed offset on every partition of
the feedback topic: to the first message produced at or after a time, to the
earliest or latest offset, or to where one of the group's snapshots stopped
learning. The group must have no live members (stop its workers first);
otherwise replay refuses and changes nothing. Workers started afterwards
reprocess from there.

With --snapshot, the snapshot is also published again as the group's newest,
so the next worker restores that model and learns the same events again: a
single worker reaches the same weights, bit for bit (README: Replay).`,
		Example: `  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --to-datetime 2026-11-28T10:00:00Z
  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --to-offset earliest
  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --snapshot 1795910000000000000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var target pipeline.ReplayTarget
			given := 0
			for _, f := range []string{toTime, toOffset, snapshot} {
				if f != "" {
					given++
				}
			}
			switch {
			case given != 1:
				return fmt.Errorf("give exactly one of --to-datetime, --to-offset and --snapshot")
			case snapshot != "":
				cfg, err := a.load()
				if err != nil {
					return err
				}
				conn, err := connect(cmd.Context(), cfg, "")
				if err != nil {
					return err
				}
				offsets, id, err := pipeline.ReplaySnapshot(cmd.Context(), conn, cfg.Kafka.Group, cfg.Topics.Feedback,
					cfg.Snapshot.Topic, snapshot, cfg.Snapshot.ChunkBytes)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "published snapshot %s again as %s, the group's newest\n", snapshot, id)
				printOffsets(a, cfg.Kafka.Group, cfg.Topics.Feedback, "snapshot "+snapshot, offsets)
				return nil
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
			conn, err := connect(cmd.Context(), cfg, "")
			if err != nil {
				return err
			}
			offsets, err := pipeline.Replay(cmd.Context(), conn.Client(), cfg.Kafka.Group, cfg.Topics.Feedback, target)
			if err != nil {
				return err
			}
			printOffsets(a, cfg.Kafka.Group, cfg.Topics.Feedback, target.String(), offsets)
			return nil
		},
	}
	cmd.Flags().StringVar(&toTime, "to-datetime", "", "rewind to the first message produced at or after this RFC 3339 time")
	cmd.Flags().StringVar(&toOffset, "to-offset", "", "rewind to earliest or latest")
	cmd.Flags().StringVar(&snapshot, "snapshot", "", "rewind to where this snapshot of the group stopped and make it the newest (adaptrec snapshot ls)")
	return cmd
}

func printOffsets(a *app, group, topic, to string, offsets map[int]int64) {
	parts := make([]int, 0, len(offsets))
	for p := range offsets {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	fmt.Fprintf(a.stdout, "rewound group %q on %s to %s:\n", group, topic, to)
	for _, p := range parts {
		fmt.Fprintf(a.stdout, "  partition %d -> offset %d\n", p, offsets[p])
	}
}
