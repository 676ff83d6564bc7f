package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

// snapStore returns the snapshot store of cfg's group, closed when the
// test ends.
func snapStore(t *testing.T, cfg configs.Config) *snapstore.Store {
	t.Helper()
	s := snapstore.New(kafkaconn.Plain(cfg.Kafka.Brokers), cfg.Snapshot.Topic, cfg.Kafka.Group, cfg.Snapshot.ChunkBytes, kafkatest.Logger(t))
	t.Cleanup(func() { s.Close() })
	return s
}

// listSnapshots lists cfg's group's snapshots, oldest first.
func listSnapshots(t *testing.T, cfg configs.Config) []snapstore.Stored {
	t.Helper()
	all, _, err := snapStore(t, cfg).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// smallDQN is a test worker's configuration with a small DQN, snapshots
// taken only at shutdown (or every_batches, where a test sets it).
func smallDQN(t *testing.T, target kafkatest.Target) configs.Config {
	cfg := kafkatest.Config(t, target)
	cfg.Recommender.Model = "dqn"
	cfg.Recommender.DQN.Hidden = []int{16}
	cfg.Recommender.DQN.Rows = 32
	cfg.Snapshot.Interval = 0
	return cfg
}

// A worker stopped gracefully publishes its model; the next worker of the
// group starts from that model, exactly, and from the committed offsets,
// which are the ones the snapshot learned up to: nothing is learned twice.
func TestWorkerRestartRestoresTheModel(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := smallDQN(t, target)
			kafkatest.CreateTopics(t, cfg)
			lines, _ := kafkatest.Events(1500, 0, 200, 9)
			produce(t, cfg, lines)
			run := func() (*model.DQN, *pipeline.Worker) { return runDQNToCommitted(t, cfg, cfg, 120*time.Second) }
			first, w1 := run()
			if w1.Restored().Checksum != "" {
				t.Fatal("the first worker restored a snapshot from an empty topic")
			}
			if w1.Stats().Snapshots.Load() == 0 {
				t.Fatal("no snapshot published at shutdown")
			}
			second, w2 := run() // no new events: it learns nothing
			meta := w2.Restored()
			if meta.Checksum == "" {
				t.Fatal("the second worker did not restore a snapshot")
			}
			if second.Checksum() != first.Checksum() || !equalInts(second.Widths(), first.Widths()) {
				t.Fatal("the restored model differs from the one that was stopped")
			}
			ends, err := pipeline.EndOffsets(context.Background(), kafkatest.Client(cfg.Kafka.Brokers), cfg.Topics.Feedback)
			if err != nil {
				t.Fatal(err)
			}
			for p, end := range ends {
				if end > 0 && meta.Offsets[int32(p)] != end {
					t.Fatalf("partition %d: the snapshot learned up to %d, the group committed %d", p, meta.Offsets[int32(p)], end)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Old snapshots are retired: the topic holds at most snapshot.keep of the
// group's snapshots, the newest.
func TestWorkerRetiresOldSnapshots(t *testing.T) {
	targets := kafkatest.Targets(t)
	cfg := smallDQN(t, targets[len(targets)-1])
	cfg.Snapshot.EveryBatches, cfg.Snapshot.Keep = 1, 2
	kafkatest.CreateTopics(t, cfg)
	lines, _ := kafkatest.Events(1200, 0, 100, 3)
	produce(t, cfg, lines)
	_, ws := runReplicas(t, cfg, "worker")
	published := ws[0].Stats().Snapshots.Load()
	all := listSnapshots(t, cfg)
	if published <= 2 || len(all) != 2 || !all[0].Complete || !all[1].Complete {
		t.Fatalf("%d snapshots published, %d left on the topic: %+v", published, len(all), all)
	}
}

// TestSessionStateRebuiltAfterRestart stops a worker that keeps no
// snapshot and restarts it: the restarted worker re-reads the partition's
// earlier events, so a user's next list still leaves out what the user
// consumed before the restart. With session.rebuild_events 0 it does not.
func TestSessionStateRebuiltAfterRestart(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		for _, rebuild := range []int{10_000, 0} {
			t.Run(fmt.Sprintf("%s/rebuild=%d", target.Name, rebuild), func(t *testing.T) {
				cfg := smallDQN(t, target)
				cfg.Snapshot.Restore = false // the model starts afresh: only the rebuild keeps the users
				cfg.Session.RebuildEvents = rebuild
				kafkatest.CreateTopics(t, cfg)
				at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
				ev := func(user string, item int) []byte {
					at = at.Add(time.Second)
					return feedback.Encode(feedback.Event{UserID: user, ItemID: fmt.Sprint("i", item), Type: feedback.Click, TS: at})
				}
				var before [][]byte
				for i := range 12 {
					before = append(before, ev("other", i))
				}
				for i := range 8 {
					before = append(before, ev("u1", i))
				}
				produce(t, cfg, before)
				runReplicas(t, cfg, "worker")
				// The fresh model meets every item again through another user
				// of u1's partition, so it learns them before u1's event.
				parts := make([]int, cfg.Topics.Partitions)
				for i := range parts {
					parts[i] = i
				}
				partition := func(user string) int {
					return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(user)}, parts...)
				}
				another := "another"
				for k := 0; partition(another) != partition("u1"); k++ {
					another = fmt.Sprint("another", k)
				}
				var after [][]byte
				for i := range 12 {
					after = append(after, ev(another, i))
				}
				produce(t, cfg, append(after, ev("u1", 8)))
				_, ws := runReplicas(t, cfg, "worker")
				if got := ws[0].Stats().Rebuilt.Load(); (got > 0) != (rebuild > 0) {
					t.Fatalf("rebuilt %d events with session.rebuild_events %d", got, rebuild)
				}
				var last model.Recommendation
				for _, m := range kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Recommendations) {
					var r model.Recommendation
					if err := json.Unmarshal(m.Value, &r); err != nil {
						t.Fatal(err)
					}
					if r.UserID == "u1" && r.Offset >= last.Offset {
						last = r
					}
				}
				stale := 0
				for _, it := range last.Items {
					var n int
					if _, err := fmt.Sscanf(it.ItemID, "i%d", &n); err == nil && n < 8 {
						stale++
					}
				}
				t.Logf("u1's list after the restart: %d items, %d consumed before it", len(last.Items), stale)
				if rebuild > 0 && stale > 0 {
					t.Fatalf("the list after the restart offers %d items u1 consumed before it: %+v", stale, last.Items)
				}
				if rebuild == 0 && stale == 0 {
					t.Fatalf("without the rebuild the list left out u1's earlier items anyway: the test shows nothing (%+v)", last.Items)
				}
			})
		}
	}
}

// TestReplayFromSnapshotIsBitForBit runs a DQN worker over 6 partitions,
// then replays the group from one of its snapshots taken part way
// (adaptrec replay --snapshot) with another batch size: the worker that
// restores it follows the recorded order of the events and reaches the
// same weights, bit for bit.
func TestReplayFromSnapshotIsBitForBit(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg, _, want := snapshottedRun(t, target)

			ctx := context.Background()
			all := listSnapshots(t, cfg)
			var mid *snapstore.Stored
			var from map[int32]int64
			learned := func(offsets map[int32]int64) (n int64) {
				for _, o := range offsets {
					n += o
				}
				return n
			}
			for i := range all {
				s, err := model.ReadSnapshot(bytes.NewReader(all[i].Blob))
				if err != nil || !all[i].Complete {
					continue
				}
				if n := learned(s.Meta.Offsets); n > 300 && n < 1200 {
					mid, from = &all[i], s.Meta.Offsets
				}
			}
			if mid == nil {
				t.Fatalf("no snapshot part way through among %d", len(all))
			}
			r, err := pipeline.ReplaySnapshot(ctx, kafkatest.Client(cfg.Kafka.Brokers), cfg.Topics.Feedback, mid.ID, snapStore(t, cfg))
			if err != nil {
				t.Fatal(err)
			}
			for p, off := range r.Offsets {
				if off != from[int32(p)] || r.Republished == "" {
					t.Fatalf("rewound to %v (snapshot %q), want %v", r.Offsets, r.Republished, from)
				}
			}
			again := cfg
			again.Batch.Size = 37 // other batch boundaries: the weights must not care
			second, ws := runReplicas(t, again, "worker")
			if got := ws[0].Restored().Offsets; learned(got) != learned(from) {
				t.Fatalf("the replaying worker restored a snapshot at %v, want the one at %v", got, from)
			}
			if got := second[0].(*model.DQN).Checksum(); got != want {
				t.Fatalf("replayed from %v: weights %x, the original run reached %x", from, got, want)
			}
			t.Logf("replayed %d of %d events from snapshot %s: same weights (%x)", 1500-learned(from), 1500, mid.ID, want)
		})
	}
}
