package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

// A worker stopped with SIGINT leaves a snapshot that snapshot ls lists,
// inspect describes and export writes as a readable Arrow IPC file.
func TestSnapshotCLI(t *testing.T) {
	target := kafkatest.Targets(t)[0]
	cfg := kafkatest.Config(t, target)
	kafkatest.CreateTopics(t, cfg)
	lines, _ := kafkatest.Events(400, 0, 40, 6)
	file := eventsFile(t, lines)
	if p := start(t, env(cfg, "producer"), "produce", "--file", file); p.wait(t, 60*time.Second) != nil {
		t.Fatalf("produce:\n%s", p.output())
	}
	dqn := append(env(cfg, "worker"), "ADAPTREC_RECOMMENDER_MODEL=dqn", "ADAPTREC_RECOMMENDER_DQN_HIDDEN=16", "ADAPTREC_RECOMMENDER_DQN_ROWS=32")
	w := start(t, dqn, "worker")
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 120*time.Second)
	_ = w.cmd.Process.Signal(syscall.SIGINT)
	if err := w.wait(t, 60*time.Second); err != nil {
		t.Fatalf("worker on SIGINT: %v\n%s", err, w.output())
	}
	ls := start(t, env(cfg, "cli"), "snapshot", "ls")
	if err := ls.wait(t, 30*time.Second); err != nil || !strings.Contains(ls.output(), cfg.Kafka.Group) || !strings.Contains(ls.output(), " ok ") {
		t.Fatalf("snapshot ls: %v\n%s", err, ls.output())
	}
	in := start(t, env(cfg, "cli"), "snapshot", "inspect")
	if err := in.wait(t, 30*time.Second); err != nil || !strings.Contains(in.output(), `"widths": [`) || !strings.Contains(in.output(), `"offsets"`) {
		t.Fatalf("snapshot inspect: %v\n%s", err, in.output())
	}
	out := filepath.Join(t.TempDir(), "model.arrow")
	ex := start(t, env(cfg, "cli"), "snapshot", "export", "--out", out)
	if err := ex.wait(t, 30*time.Second); err != nil {
		t.Fatalf("snapshot export: %v\n%s", err, ex.output())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	snap, err := model.ReadSnapshot(f)
	if err != nil || snap.Meta.Items == 0 || len(snap.Meta.Widths) != 1 || snap.Meta.Widths[0] != 16 {
		t.Fatalf("exported snapshot: %v %+v", err, snap)
	}
	bad := start(t, env(cfg, "cli"), "snapshot", "inspect", "0000")
	if err := bad.wait(t, 30*time.Second); err == nil || !strings.Contains(bad.output(), `no snapshot "0000"`) {
		t.Fatalf("inspect of a missing snapshot: %v\n%s", err, bad.output())
	}
}

// TestKillDuringSnapshotPublication kills a worker process with SIGKILL
// while it is publishing a snapshot chunk by chunk, so that the topic holds
// a snapshot cut short, newer than the last complete one. The next worker
// of the group skips the incomplete snapshot, saying why, and restores the
// last complete one (issue 7).
func TestKillDuringSnapshotPublication(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes for ~20s")
	}
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			began := time.Now()
			cfg := kafkatest.Config(t, target)
			kafkatest.CreateTopics(t, cfg)
			// A small DQN that snapshots every other batch in 2 KiB chunks:
			// a publication is tens to hundreds of synchronous produce
			// requests, and the worker is nearly always in the middle of one.
			worker := func(clientID string) []string {
				return append(env(cfg, clientID),
					"ADAPTREC_RECOMMENDER_MODEL=dqn", "ADAPTREC_RECOMMENDER_DQN_HIDDEN=16", "ADAPTREC_RECOMMENDER_DQN_ROWS=32",
					"ADAPTREC_SNAPSHOT_INTERVAL=0s", "ADAPTREC_SNAPSHOT_EVERY_BATCHES=2", "ADAPTREC_SNAPSHOT_CHUNK_BYTES=2048",
					"ADAPTREC_LOG_LEVEL=info", "ADAPTREC_LOG_FORMAT=json")
			}
			lines, _ := kafkatest.Events(100_000, 0, 2000, 11)
			file := eventsFile(t, lines)
			// Events keep coming (up to 50s at 2000/s) so that batches, and
			// with them snapshots, keep coming until the kill.
			prod := start(t, env(cfg, "producer"), "produce", "--file", file, "--rate", "2000")

			list := func() ([]snapstore.Stored, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				all, _, err := snapstore.New(kafkaconn.Plain(cfg.Kafka.Brokers), cfg.Snapshot.Topic, cfg.Kafka.Group, 0, kafkatest.Logger(t)).List(ctx)
				return all, err
			}
			// cut returns the newest complete snapshot and the newest
			// snapshot if it is incomplete and newer than that one.
			cut := func(all []snapstore.Stored) (complete, partial *snapstore.Stored) {
				for i := range all {
					if all[i].Complete {
						complete = &all[i]
					}
				}
				if n := len(all); complete != nil && !all[n-1].Complete && all[n-1].Offset > complete.Offset {
					partial = &all[n-1]
				}
				return complete, partial
			}

			// Kill the worker while a snapshot newer than a complete one is
			// partly on the topic, in the first half of its chunks so that
			// the rest outlasts the look that saw it. Listing the topic
			// reads all of it, and it only grows (nothing compacts it in a
			// test), so the look is at the tail: the last record, a chunk
			// whose key and headers say which of how many it is. The last
			// chunks may still be written between the look and the kill (a
			// busy machine): then the kill came too late, and a new worker
			// of the group is killed during its next publication.
			var complete, partial snapstore.Stored
			const attempts = 5
			for attempt := 1; ; attempt++ {
				clientID := fmt.Sprintf("worker-%d", attempt)
				w := start(t, worker(clientID), "worker")
				deadline := time.Now().Add(60 * time.Second)
				var base *snapstore.Stored
				var seen []snapstore.Stored
				for base == nil {
					all, err := list()
					if err == nil {
						seen = all
						base, _ = cut(all)
					}
					if time.Now().After(deadline) {
						t.Fatalf("attempt %d: no complete snapshot on the topic within 60s: %v; topic: %s\n%s", attempt, err, describe(seen), w.output())
					}
					time.Sleep(20 * time.Millisecond)
				}
				tail := newTail(cfg.Kafka.Brokers, cfg.Snapshot.Topic)
				var last tailChunk
				for {
					c, err := tail.last()
					if err == nil {
						last = c
						// IDs are zero-padded creation times: newer sorts later.
						if c.id > base.ID && c.chunk+1 <= c.chunks/2 {
							break
						}
					}
					if time.Now().After(deadline) {
						t.Fatalf("attempt %d: no snapshot newer than %s was seen in the first half of its publication within 60s: %v; last record: %+v\n%s",
							attempt, base.ID, err, last, w.output())
					}
					time.Sleep(2 * time.Millisecond)
				}
				if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = w.wait(t, 30*time.Second)
				tail.close()
				// A produce request in flight at the kill may still land:
				// judge the topic once it stops changing.
				all := settled(t, list)
				c, p := cut(all)
				if c != nil && p != nil && p.Have > 0 && p.Have < p.Chunks {
					complete, partial = *c, *p
					t.Logf("attempt %d: killed %s when chunk %d of %d of snapshot %s was the last written; on the topic: %d of %d chunks; the last complete snapshot is %s (%d chunks)",
						attempt, clientID, last.chunk+1, last.chunks, last.id, p.Have, p.Chunks, c.ID, c.Chunks)
					for _, l := range logLines(t, w.output(), "published snapshot") {
						if l["snapshot"] == p.ID {
							t.Fatalf("the killed worker logged snapshot %s as published, yet it is incomplete: %s", p.ID, describe(all))
						}
					}
					break
				}
				if attempt == attempts {
					t.Fatalf("%d kills came too late: the newest snapshot was complete each time, so nothing was tested; topic: %s", attempts, describe(all))
				}
				t.Logf("attempt %d: the kill came after the publication finished (topic: %s); again", attempt, describe(all))
			}

			_ = prod.cmd.Process.Kill()

			// The restarted worker restores the last complete snapshot and
			// says why it skipped the cut one.
			r := start(t, worker("worker-restarted"), "worker")
			deadline := time.Now().Add(60 * time.Second)
			var restored []map[string]any
			for len(restored) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the restarted worker logged no \"restored snapshot\" within 60s:\n%s", r.output())
				}
				if out := r.output(); strings.Contains(out, `"no snapshot to restore"`) || strings.Contains(out, `"snapshot not loaded"`) {
					t.Fatalf("the restarted worker restored no snapshot:\n%s", out)
				}
				select {
				case err := <-r.waited:
					r.waited <- err
					t.Fatalf("the restarted worker exited: %v\n%s", err, r.output())
				case <-time.After(50 * time.Millisecond):
				}
				restored = logLines(t, r.output(), "restored snapshot")
			}
			if got := restored[0]["snapshot"]; got != complete.ID {
				t.Fatalf("restored snapshot %v, want %s, the newest complete one; topic: %s", got, complete.ID, describe(settled(t, list)))
			}
			wantReason := fmt.Sprintf("%d of %d chunks", partial.Have, partial.Chunks)
			skipped := false
			for _, l := range logLines(t, r.output(), "skipping snapshot") {
				if l["snapshot"] == partial.ID {
					skipped = true
					if l["reason"] != wantReason {
						t.Fatalf("skipped snapshot %s because %q, want %q", partial.ID, l["reason"], wantReason)
					}
				}
			}
			if !skipped {
				t.Fatalf("the restarted worker did not log skipping snapshot %s:\n%s", partial.ID, r.output())
			}
			if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if err := r.wait(t, 60*time.Second); err != nil {
				t.Fatalf("the restarted worker on SIGINT: %v\n%s", err, r.output())
			}
			t.Logf("%s: restored %s, skipped %s (%s) in %v", target.Name, complete.ID, partial.ID, wantReason, time.Since(began).Round(time.Second))
		})
	}
}
