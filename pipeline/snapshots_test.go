package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

func snapshotBlob(t *testing.T, events int) []byte {
	t.Helper()
	cfg := model.DefaultDQN()
	cfg.Rows = 32
	d, err := model.NewDQN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var evs []feedback.Located
	for i := range events {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%17), ItemID: fmt.Sprint("i", (i*13)%4000),
			Type: feedback.Click, TS: time.Unix(int64(i), 0)}})
	}
	b := feedback.BatchOf(evs...)
	defer b.Release()
	if _, err := d.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := d.WriteSnapshot(&buf, model.SnapshotMeta{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshot.chunk_bytes sets the chunk size: every chunk but the last has
// exactly that many bytes, each names the chunk count, and they join back
// into the blob; 0 means SnapshotChunk.
func TestSnapshotMessagesChunkBytes(t *testing.T) {
	blob := make([]byte, 2500)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	msgs := pipeline.SnapshotMessages("g", "0001", "", blob, 1024)
	if len(msgs) != 3 || len(msgs[0].Value) != 1024 || len(msgs[1].Value) != 1024 || len(msgs[2].Value) != 452 {
		t.Fatalf("%d chunks", len(msgs))
	}
	var joined []byte
	for i, m := range msgs {
		if want := fmt.Sprintf("g/0001/%06d", i); string(m.Key) != want {
			t.Fatalf("chunk %d has key %q, want %q", i, m.Key, want)
		}
		for _, h := range m.Headers {
			if h.Key == "adaptrec-snapshot-chunks" && string(h.Value) != "3" {
				t.Fatalf("chunk %d says %s chunks", i, h.Value)
			}
		}
		joined = append(joined, m.Value...)
	}
	if !bytes.Equal(joined, blob) {
		t.Fatal("the chunks do not join back into the blob")
	}
	if n := len(pipeline.SnapshotMessages("g", "0002", "", make([]byte, pipeline.SnapshotChunk+1), 0)); n != 2 {
		t.Fatalf("chunk 0: %d chunks of SnapshotChunk+1 bytes, want 2", n)
	}
}

// Snapshots larger than a Kafka message travel in chunks on a compacted
// topic. The newest complete, verified snapshot is loaded; one whose
// publication was cut short (a crash) or whose bytes were damaged is
// reported and skipped for the one before it.
func TestSnapshotTopic(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			topic := kafkatest.Name(t, "snapshots")
			ctx := context.Background()
			err := pipeline.EnsureTopics(ctx, kafkatest.Client(cfg.Kafka.Brokers),
				[]pipeline.TopicSpec{{Name: topic, Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact"}}},
				true, kafkatest.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			w := pipeline.SnapshotWriter(kafkaconn.Plain(cfg.Kafka.Brokers).WithClientID("test"), topic, pipeline.SnapshotChunk)
			defer w.Close()
			good := snapshotBlob(t, 3000)
			if len(good) <= pipeline.SnapshotChunk {
				t.Fatalf("the snapshot (%d bytes) fits in one chunk: the test would not exercise chunking", len(good))
			}
			publish := func(msgs []kafka.Message) {
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					t.Fatal(err)
				}
			}
			publish(pipeline.SnapshotMessages("g", "0001", "", good, pipeline.SnapshotChunk))
			publish(pipeline.SnapshotMessages("other", "0002", "", snapshotBlob(t, 100), 0))
			cut := pipeline.SnapshotMessages("g", "0003", "", good, pipeline.SnapshotChunk)
			publish(cut[:len(cut)-1]) // killed during publication
			damaged := pipeline.SnapshotMessages("g", "0004", "", good, pipeline.SnapshotChunk)
			v := bytes.Clone(damaged[1].Value)
			v[rand.IntN(len(v))] ^= 0x40
			damaged[1].Value = v
			publish(damaged)

			all, err := pipeline.ListSnapshots(ctx, kafkaconn.Plain(cfg.Kafka.Brokers), topic, "g")
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 3 || !all[0].Complete || all[1].Complete || all[2].Complete || all[0].Chunks < 2 {
				t.Fatalf("listed %+v", all)
			}
			var logged strings.Builder
			snap, from, err := pipeline.LoadNewestSnapshot(ctx, kafkaconn.Plain(cfg.Kafka.Brokers), topic, "g", kafkatest.LoggerTo(&logged))
			if err != nil {
				t.Fatal(err)
			}
			if snap == nil || from.ID != "0001" {
				t.Fatalf("loaded %+v", from)
			}
			for _, id := range []string{"0003", "0004"} {
				if !strings.Contains(logged.String(), "snapshot="+id) {
					t.Errorf("skipping snapshot %s was not logged:\n%s", id, logged.String())
				}
			}
			if !bytes.Equal(all[0].Blob(), good) {
				t.Fatal("reassembled snapshot differs from the one published")
			}
		})
	}
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
			run := func() (*model.DQN, *pipeline.Worker) {
				rec, err := model.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				w := pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, kafkatest.Outputs(t, cfg))
				health := &telemetry.Health{}
				w.Instrument(nil, nil, health)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- w.Run(ctx) }()
				// Joined implies restored: the snapshot is loaded before
				// the reader joins the group.
				for deadline := time.Now().Add(60 * time.Second); health.Check(ctx)["group"] != nil; time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the worker did not join its group in 60s")
					}
				}
				kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 120*time.Second)
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				return rec.(*model.DQN), w
			}
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
	all, err := pipeline.ListSnapshots(context.Background(), kafkaconn.Plain(cfg.Kafka.Brokers), cfg.Snapshot.Topic, cfg.Kafka.Group)
	if err != nil {
		t.Fatal(err)
	}
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
			cfg := smallDQN(t, target)
			cfg.Batch.Size = 50
			cfg.Snapshot.EveryBatches = 4
			cfg.Snapshot.Keep = 100 // the test picks one part way through
			kafkatest.CreateTopics(t, cfg)
			lines, _ := kafkatest.Events(1500, 0, 150, 21)
			produce(t, cfg, lines)
			first, _ := runReplicas(t, cfg, "worker")
			want := first[0].(*model.DQN).Checksum()

			ctx := context.Background()
			all, err := pipeline.ListSnapshots(ctx, kafkaconn.Plain(cfg.Kafka.Brokers), cfg.Snapshot.Topic, cfg.Kafka.Group)
			if err != nil {
				t.Fatal(err)
			}
			var mid *pipeline.StoredSnapshot
			var from map[int32]int64
			learned := func(offsets map[int32]int64) (n int64) {
				for _, o := range offsets {
					n += o
				}
				return n
			}
			for i := range all {
				s, err := model.ReadSnapshot(bytes.NewReader(all[i].Blob()))
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
			r, err := pipeline.ReplaySnapshot(ctx, kafkaconn.Plain(cfg.Kafka.Brokers), cfg.Kafka.Group,
				cfg.Topics.Feedback, cfg.Snapshot.Topic, mid.ID, cfg.Snapshot.ChunkBytes)
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
