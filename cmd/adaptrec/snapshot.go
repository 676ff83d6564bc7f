package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

func (a *app) snapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot ls|inspect|export",
		Short: "List, inspect and export the model snapshots on the snapshot topic",
		Long: `Workers publish their model to the compacted snapshot topic (snapshot.topic)
as an Arrow IPC stream in chunks. snapshot ls lists the group's snapshots
(--all: every group's), inspect prints one's metadata (default: the newest
valid one), export writes one to a file, a plain Arrow IPC stream.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.snapshotLsCmd(), a.snapshotInspectCmd(), a.snapshotExportCmd())
	return cmd
}

// openStore loads the config, connects and returns the config, the
// connection and the snapshot store of the group (every group's if
// allGroups), whose clients send storeClientID ("": kafka.client_id). The
// caller closes the store.
func (a *app) openStore(ctx context.Context, storeClientID string, allGroups bool) (configs.Config, *kafkaconn.Conn, *snapstore.Store, error) {
	cfg, err := a.load()
	if err != nil {
		return cfg, nil, nil, err
	}
	conn, err := connect(ctx, cfg, "")
	if err != nil {
		return cfg, nil, nil, err
	}
	group := cfg.Kafka.Group
	if allGroups {
		group = ""
	}
	storeConn := conn
	if storeClientID != "" {
		storeConn = conn.WithClientID(storeClientID)
	}
	return cfg, conn, snapstore.New(storeConn, cfg.Snapshot.Topic, group, cfg.Snapshot.ChunkBytes, a.logger(cfg)), nil
}

// findSnapshot finds snapshot id of the group ("": the newest complete).
func (a *app) findSnapshot(ctx context.Context, id string) (snapstore.Stored, error) {
	_, _, store, err := a.openStore(ctx, "", false)
	if err != nil {
		return snapstore.Stored{}, err
	}
	defer store.Close()
	return store.Find(ctx, id)
}

func (a *app) snapshotLsCmd() *cobra.Command {
	var all bool
	ls := &cobra.Command{
		Use:   "ls [--all]",
		Short: "List snapshots, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _, store, err := a.openStore(cmd.Context(), "", all)
			if err != nil {
				return err
			}
			defer store.Close()
			list, _, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			return a.printSnapshots(list)
		},
	}
	ls.Flags().BoolVar(&all, "all", false, "every group's snapshots")
	return ls
}

// printSnapshots prints snapshot ls's table.
func (a *app) printSnapshots(list []snapstore.Stored) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tGROUP\tREPLICA\tOFFSET\tBYTES\tCHUNKS\tSTATE\tCREATED\tMODEL\tWIDTHS\tITEMS")
	for _, s := range list {
		state, created, mdl, widths, items := "ok", "-", "-", "-", "-"
		if !s.Complete {
			state = "unusable: " + s.Problem
		} else if snap, err := s.Snapshot(); err != nil {
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
}

func (a *app) snapshotInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect [ID]",
		Short: "Print a snapshot's metadata as JSON (default: the newest valid one)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.findSnapshot(cmd.Context(), first(args))
			if err != nil {
				return err
			}
			snap, err := s.Snapshot()
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
}

func (a *app) snapshotExportCmd() *cobra.Command {
	var out string
	export := &cobra.Command{
		Use:   "export [ID] --out FILE",
		Short: "Write a snapshot (default: the newest valid one) to FILE as an Arrow IPC stream",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			s, err := a.findSnapshot(cmd.Context(), first(args))
			if err != nil {
				return err
			}
			if _, err := s.Snapshot(); err != nil {
				return fmt.Errorf("snapshot %s: %w", s.ID, err)
			}
			if err := os.WriteFile(out, s.Blob, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "snapshot %s: %d bytes written to %s\n", s.ID, s.Size, out)
			return nil
		},
	}
	export.Flags().StringVar(&out, "out", "", "file to write")
	return export
}

func first(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return ""
}
