package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/adaptrec/adaptrec/pipeline"
)

func (a *app) replayCmd() *cobra.Command {
	var toTime, toOffset, snapshot string
	var fresh bool
	cmd := &cobra.Command{
		Use:   "replay (--to-datetime RFC3339 | --to-offset earliest|latest|N|P:N,... [--fresh-model] | --snapshot ID)",
		Short: "Rewind the group's committed offsets on the feedback topic",
		Long: `replay rewinds the consumer group's committed offset on the feedback topic:
to the first message produced at or after a time, to the earliest or latest
offset, to one offset on every partition (--to-offset 1200), to offsets of
the partitions named (--to-offset 0:1200,3:800; the others keep their
committed offsets), or to where one of the group's snapshots stopped
learning. An offset past a partition's end or before its first offset is
refused, not clamped. The group must have no live members (stop its
workers first); otherwise replay refuses and changes nothing. Workers
started afterwards reprocess from there.

The next worker restores the group's newest snapshot. If a snapshot has
learned past the point of --to-datetime or --to-offset, replay restores the
newest snapshot that stops at or before it on every partition instead: it
rewinds to where that snapshot stopped (earlier than asked: the events in
between are replayed too), publishes it again as the group's newest and
retires the snapshots that learned past it, saying which. If there is no
such snapshot it refuses, unless --fresh-model is given: then every
snapshot of the group is retired and the next worker starts from an empty
model (snapshot export keeps a copy of one first).

With --snapshot, the snapshot is also published again as the group's newest,
so the next worker restores that model and learns the same events again: a
single worker reaches the same weights, bit for bit (README: Replay). The
snapshots that learned past it are retired.`,
		Example: `  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --to-datetime 2026-11-28T10:00:00Z
  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --to-offset earliest --fresh-model
  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --to-offset 0:1200,3:800
  adaptrec replay --brokers 127.0.0.1:9092 --group adaptrec --snapshot 1795910000000000000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.replay(cmd, toTime, toOffset, snapshot, fresh)
		},
	}
	cmd.Flags().StringVar(&toTime, "to-datetime", "", "rewind to the first message produced at or after this RFC 3339 time")
	cmd.Flags().StringVar(&toOffset, "to-offset", "", "rewind to earliest, latest, one offset for every partition (N) or offsets of the partitions named (P:N,...)")
	cmd.Flags().BoolVar(&fresh, "fresh-model", false, "retire every snapshot of the group so the next worker starts from an empty model (required when every snapshot learned past the point)")
	cmd.Flags().StringVar(&snapshot, "snapshot", "", "rewind to where this snapshot of the group stopped and make it the newest (adaptrec snapshot ls)")
	return cmd
}

// replayClientID is the client id of replay's snapshot writes.
const replayClientID = "adaptrec-replay"

// replay runs replay with its flags' values.
func (a *app) replay(cmd *cobra.Command, toTime, toOffset, snapshot string, fresh bool) error {
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
	case snapshot != "" && fresh:
		return fmt.Errorf("--fresh-model goes with --to-datetime or --to-offset, not --snapshot (which restores that snapshot)")
	case snapshot != "":
		return a.replaySnapshot(cmd, snapshot)
	case toOffset != "":
		t, err := pipeline.ParseOffsetTarget(toOffset)
		if err != nil {
			return fmt.Errorf("--to-offset: %w", err)
		}
		target = t
	default:
		t, err := time.Parse(time.RFC3339Nano, toTime)
		if err != nil {
			return fmt.Errorf("--to-datetime: %q is not an RFC 3339 time (e.g. 2026-11-28T10:00:00Z)", toTime)
		}
		target.Time = t
	}
	cfg, conn, store, err := a.openStore(cmd.Context(), replayClientID, false)
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := pipeline.ReplayTo(cmd.Context(), conn.Client(), cfg.Kafka.Group, cfg.Topics.Feedback, target,
		pipeline.ReplayOptions{Store: store, FreshModel: fresh})
	if err != nil {
		return fmt.Errorf("replay to %s: %w", target, err)
	}
	printRewound(a, cfg.Kafka.Group, cfg.Topics.Feedback, target.String(), r, fresh)
	return nil
}

// replaySnapshot is replay --snapshot ID.
func (a *app) replaySnapshot(cmd *cobra.Command, snapshot string) error {
	cfg, conn, store, err := a.openStore(cmd.Context(), replayClientID, false)
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := pipeline.ReplaySnapshot(cmd.Context(), conn.Client(), cfg.Topics.Feedback, snapshot, store)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "published snapshot %s again as %s, the group's newest\n", snapshot, r.Republished)
	fmt.Fprintf(a.stdout, "retired %d snapshot(s) that had learned past it%s\n", len(r.Retired), idList(r.Retired))
	printOffsets(a, cfg.Kafka.Group, cfg.Topics.Feedback, "snapshot "+snapshot, r.Offsets)
	return nil
}

// printRewound says where the group was rewound and which model the next
// worker starts from.
func printRewound(a *app, group, topic, to string, r pipeline.Rewound, fresh bool) {
	switch {
	case fresh:
		fmt.Fprintf(a.stdout, "retired %d snapshot(s) of group %q (--fresh-model)%s: the next worker starts from an empty model\n", len(r.Retired), group, idList(r.Retired))
	case r.Republished != "":
		fmt.Fprintf(a.stdout, "snapshot %s is the group's newest that stops at or before %s on every partition: rewinding to where it stopped, not to %s, so the events in between are replayed too\n", r.Restore, to, to)
		fmt.Fprintf(a.stdout, "published snapshot %s again as %s, the group's newest: the next worker restores it\n", r.Restore, r.Republished)
		fmt.Fprintf(a.stdout, "retired %d snapshot(s) that had learned past it%s\n", len(r.Retired), idList(r.Retired))
		to = "snapshot " + r.Restore
	case r.Restore != "":
		fmt.Fprintf(a.stdout, "no snapshot of group %q learned past %s: the next worker restores its newest, %s\n", group, to, r.Restore)
	default:
		fmt.Fprintf(a.stdout, "group %q has no snapshot: the next worker starts from an empty model\n", group)
	}
	printOffsets(a, group, topic, to, r.Offsets)
}

func idList(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return " (" + strings.Join(ids, ", ") + ")"
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
