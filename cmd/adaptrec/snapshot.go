package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
)

func (a *app) snapshotCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "snapshot ls|inspect|export",
		Short: "List, inspect and export the model snapshots on the snapshot topic",
		Long: `Workers publish their model to the compacted snapshot topic (snapshot.topic)
as an Arrow IPC stream in chunks. snapshot ls lists the group's snapshots
(--all: every group's), inspect prints one's metadata (default: the newest
valid one), export writes one to a file, a plain Arrow IPC stream.`,
		Args: cobra.NoArgs,
	}
	find := func(ctx context.Context, id string) (*pipeline.StoredSnapshot, error) {
		cfg, err := a.load()
		if err != nil {
			return nil, err
		}
		conn, err := connect(ctx, cfg, "")
		if err != nil {
			return nil, err
		}
		list, err := pipeline.ListSnapshots(ctx, conn, cfg.Snapshot.Topic, cfg.Kafka.Group)
		if err != nil {
			return nil, err
		}
		for i := len(list) - 1; i >= 0; i-- {
			s := list[i]
			if (id == "" && s.Complete) || s.ID == id {
				if !s.Complete {
					return nil, fmt.Errorf("snapshot %s is not usable: %s", id, s.Problem)
				}
				return &s, nil
			}
		}
		if id == "" {
			return nil, fmt.Errorf("group %q has no complete snapshot on %s", cfg.Kafka.Group, cfg.Snapshot.Topic)
		}
		return nil, fmt.Errorf("no snapshot %q of group %q on %s", id, cfg.Kafka.Group, cfg.Snapshot.Topic)
	}
	ls := &cobra.Command{
		Use:   "ls [--all]",
		Short: "List snapshots, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			group := cfg.Kafka.Group
			if all {
				group = ""
			}
			conn, err := connect(cmd.Context(), cfg, "")
			if err != nil {
				return err
			}
			list, err := pipeline.ListSnapshots(cmd.Context(), conn, cfg.Snapshot.Topic, group)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tGROUP\tREPLICA\tOFFSET\tBYTES\tCHUNKS\tSTATE\tCREATED\tMODEL\tWIDTHS\tITEMS")
			for _, s := range list {
				state, created, mdl, widths, items := "ok", "-", "-", "-", "-"
				if !s.Complete {
					state = "unusable: " + s.Problem
				} else if snap, err := model.ReadSnapshot(bytes.NewReader(s.Blob())); err != nil {
					state = "unusable: " + err.Error()
				} else {
					m := snap.Meta
					created, mdl, widths, items = m.Created.Format("2006-01-02T15:04:05Z"), m.Model, fmt.Sprint(m.Widths), fmt.Sprint(m.Items)
				}
				replica := s.Replica
				if replica == "" {
					replica = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d/%d\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Group, replica, s.Offset, s.Size, s.Have, s.Chunks, state, created, mdl, widths, items)
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&all, "all", false, "every group's snapshots")
	inspect := &cobra.Command{
		Use:   "inspect [ID]",
		Short: "Print a snapshot's metadata as JSON (default: the newest valid one)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := find(cmd.Context(), first(args))
			if err != nil {
				return err
			}
			snap, err := model.ReadSnapshot(bytes.NewReader(s.Blob()))
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", s.ID, err)
			}
			out, _ := json.MarshalIndent(struct {
				ID     string `json:"id"`
				Group  string `json:"group"`
				Offset int64  `json:"topic_offset"`
				Bytes  int    `json:"bytes"`
				Chunks int    `json:"chunks"`
				model.SnapshotMeta
			}{s.ID, s.Group, s.Offset, s.Size, s.Chunks, snap.Meta}, "", "  ")
			_, err = fmt.Fprintln(a.stdout, string(out))
			return err
		},
	}
	var out string
	export := &cobra.Command{
		Use:   "export [ID] --out FILE",
		Short: "Write a snapshot (default: the newest valid one) to FILE as an Arrow IPC stream",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			s, err := find(cmd.Context(), first(args))
			if err != nil {
				return err
			}
			if _, err := model.ReadSnapshot(bytes.NewReader(s.Blob())); err != nil {
				return fmt.Errorf("snapshot %s: %w", s.ID, err)
			}
			if err := os.WriteFile(out, s.Blob(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "snapshot %s: %d bytes written to %s\n", s.ID, s.Size, out)
			return nil
		},
	}
	export.Flags().StringVar(&out, "out", "", "file to write")
	cmd.AddCommand(ls, inspect, export)
	return cmd
}

func first(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return ""
}
