package snapstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

// snapshotBlob is a model snapshot of a small DQN that learned events
// clicks: with 3000, larger than one chunk.
func snapshotBlob(t *testing.T, events int, meta model.SnapshotMeta) []byte {
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
	if meta.Version == "" {
		meta.Version = "test"
	}
	if _, err := d.WriteSnapshot(&buf, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// newTopic creates a compacted snapshot topic of partitions on target and
// returns a store of group on it, closed when the test ends.
func newTopic(t *testing.T, target kafkatest.Target, partitions int, group string) (*snapstore.Store, string) {
	t.Helper()
	topic := kafkatest.Name(t, "snapshots")
	err := pipeline.EnsureTopics(context.Background(), kafkatest.Client(target.Brokers),
		[]pipeline.TopicSpec{{Name: topic, Partitions: partitions, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact"}}},
		true, kafkatest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return store(t, target, topic, group), topic
}

func store(t *testing.T, target kafkatest.Target, topic, group string) *snapstore.Store {
	s := snapstore.New(kafkaconn.Plain(target.Brokers).WithClientID("test"), topic, group, snapstore.Chunk, kafkatest.Logger(t))
	t.Cleanup(func() { s.Close() })
	return s
}

// snapshot.chunk_bytes sets the chunk size: every chunk but the last has
// exactly that many bytes, each names the chunk count, and they join back
// into the blob; 0 means Chunk.
func TestMessagesChunkBytes(t *testing.T) {
	blob := make([]byte, 2500)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	msgs := snapstore.Messages("g", "0001", "", blob, 1024)
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
	if n := len(snapstore.Messages("g", "0002", "", make([]byte, snapstore.Chunk+1), 0)); n != 2 {
		t.Fatalf("chunk 0: %d chunks of Chunk+1 bytes, want 2", n)
	}
}

// Snapshots larger than a Kafka message travel in chunks on a compacted
// topic. The newest complete, verified snapshot is loaded; one whose
// publication was cut short (a crash) or whose bytes were damaged is
// reported and skipped for the one before it.
func TestSnapshotTopic(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			ctx := context.Background()
			var logged strings.Builder
			s, topic := newTopic(t, target, 1, "g")
			good := snapshotBlob(t, 3000, model.SnapshotMeta{})
			if len(good) <= snapstore.Chunk {
				t.Fatalf("the snapshot (%d bytes) fits in one chunk: the test would not exercise chunking", len(good))
			}
			publish := func(msgs []kafka.Message) {
				if err := s.WriteRaw(ctx, msgs...); err != nil {
					t.Fatal(err)
				}
			}
			publish(snapstore.Messages("g", "0001", "", good, snapstore.Chunk))
			publish(snapstore.Messages("other", "0002", "", snapshotBlob(t, 100, model.SnapshotMeta{}), 0))
			cut := snapstore.Messages("g", "0003", "", good, snapstore.Chunk)
			publish(cut[:len(cut)-1]) // killed during publication
			damaged := snapstore.Messages("g", "0004", "", good, snapstore.Chunk)
			v := bytes.Clone(damaged[1].Value)
			v[rand.IntN(len(v))] ^= 0x40
			damaged[1].Value = v
			publish(damaged)

			all, _, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 3 || !all[0].Complete || all[1].Complete || all[2].Complete || all[0].Chunks < 2 {
				t.Fatalf("listed %+v", all)
			}
			logging := snapstore.New(kafkaconn.Plain(target.Brokers), topic, "g", 0, kafkatest.LoggerTo(&logged))
			snap, from := logging.NewestValid(all)
			if snap == nil || from.ID != "0001" {
				t.Fatalf("loaded %+v", from)
			}
			for _, id := range []string{"0003", "0004"} {
				if !strings.Contains(logged.String(), "snapshot="+id) {
					t.Errorf("skipping snapshot %s was not logged:\n%s", id, logged.String())
				}
			}
			if !bytes.Equal(all[0].Blob, good) {
				t.Fatal("reassembled snapshot differs from the one published")
			}
		})
	}
}

// Chunks read in any order are put back in the order of their index; a
// snapshot that misses a chunk says how many it has.
func TestListReassemblesChunksInAnyOrder(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := newTopic(t, target, 1, "g")
			blob := snapshotBlob(t, 100, model.SnapshotMeta{})
			msgs := snapstore.Messages("g", "0001", "r", blob, 1024)
			slices.Reverse(msgs)
			missing := snapstore.Messages("g", "0002", "r", blob, 1024)
			missing = append(missing[:1], missing[2:]...)
			if err := s.WriteRaw(ctx, append(msgs, missing...)...); err != nil {
				t.Fatal(err)
			}
			all, _, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 2 || !all[0].Complete || !bytes.Equal(all[0].Blob, blob) || all[0].Replica != "r" {
				t.Fatalf("reversed chunks: listed %+v", all)
			}
			if all[1].Complete || all[1].Have != len(msgs)-1 || all[1].Chunks != len(msgs) || all[1].Problem == "" {
				t.Fatalf("a chunk missing: listed %+v", all[1])
			}
		})
	}
}

// What Publish writes, List reads back; Find picks by id, the newest
// complete one for "" and "latest", and says which snapshot is missing;
// Retire takes snapshots off the topic.
func TestPublishFindRetire(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			ctx := context.Background()
			s, topic := newTopic(t, target, 1, "g") // oldest first is by offset
			var pub []snapstore.Stored
			for i := range 3 {
				st, err := s.Publish(ctx, fmt.Sprint("r", i), snapshotBlob(t, 50*(i+1), model.SnapshotMeta{Steps: int64(i)}))
				if err != nil {
					t.Fatal(err)
				}
				pub = append(pub, st)
			}
			if err := store(t, target, topic, "").WriteRaw(ctx, snapstore.Messages("g", "9999999999999999999", "r", []byte("cut"), 1)[:1]...); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"", "latest", pub[2].ID} {
				got, err := s.Find(ctx, id)
				if err != nil || got.ID != pub[2].ID || !bytes.Equal(got.Blob, pub[2].Blob) || got.Replica != "r2" {
					t.Fatalf("find %q: %s, %v; want %s", id, got.ID, err, pub[2].ID)
				}
			}
			if got, err := s.Find(ctx, pub[0].ID); err != nil || got.ID != pub[0].ID {
				t.Fatalf("find %s: %s, %v", pub[0].ID, got.ID, err)
			}
			if _, err := s.Find(ctx, "9999999999999999999"); err == nil || !strings.Contains(err.Error(), "1 of 3 chunks") {
				t.Fatalf("find a cut snapshot: %v, want its problem", err)
			}
			var missing *snapstore.NotFoundError
			if _, err := s.Find(ctx, "0000"); !errors.As(err, &missing) || missing.ID != "0000" || !strings.Contains(err.Error(), `no snapshot "0000"`) {
				t.Fatalf("find a snapshot that is not there: %v", err)
			}
			if err := s.Retire(ctx, pub[1:]...); err != nil {
				t.Fatal(err)
			}
			all, _, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, st := range all {
				ids = append(ids, st.ID)
			}
			if want := []string{pub[0].ID, "9999999999999999999"}; !slices.Equal(ids, want) {
				t.Fatalf("after retiring 2 of 3: %v, want %v", ids, want)
			}
			if got, err := s.Find(ctx, ""); err != nil || got.ID != pub[0].ID {
				t.Fatalf("newest after retiring: %s, %v", got.ID, err)
			}
		})
	}
}

// Follow hands over, from where List stopped, the snapshots other
// replicas publish, reassembled; the follower's own are left out, and
// those before the offsets it starts from are not read again.
func TestFollow(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			s, topic := newTopic(t, target, 3, "g")
			if _, err := s.Publish(ctx, "b", snapshotBlob(t, 20, model.SnapshotMeta{})); err != nil {
				t.Fatal(err)
			}
			_, ends, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan snapstore.Stored, 10)
			done := make(chan error, 1)
			go func() {
				done <- store(t, target, topic, "g").Follow(ctx, ends, "self", func(st snapstore.Stored) { got <- st })
			}()
			if _, err := s.Publish(ctx, "self", snapshotBlob(t, 30, model.SnapshotMeta{})); err != nil {
				t.Fatal(err)
			}
			blob := snapshotBlob(t, 3000, model.SnapshotMeta{})
			want, err := s.Publish(ctx, "c", blob)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case st := <-got:
				if st.ID != want.ID || st.Replica != "c" || !st.Complete || !bytes.Equal(st.Blob, blob) {
					t.Fatalf("followed %s of %q (complete %v), want %s of c", st.ID, st.Replica, st.Complete, want.ID)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("c's snapshot was not followed within 60s")
			}
			stop := errors.New("test over")
			cancel(stop)
			if err := <-done; !errors.Is(err, stop) {
				t.Fatalf("follow returned %v, want the ctx's cause", err)
			}
			if len(got) != 0 {
				st := <-got
				t.Fatalf("followed %s of %q too", st.ID, st.Replica)
			}
		})
	}
}

// A Publish whose ctx ends returns with the ctx's cause: a broker that
// accepts the connection and never answers does not hold it, and an
// already cancelled ctx writes nothing.
func TestPublishStopsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	defer func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	}()
	s := snapstore.New(kafkaconn.Plain([]string{ln.Addr().String()}), "snaps", "g", 0, kafkatest.Logger(t))
	defer s.Close()

	stop := errors.New("shutdown deadline")
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		c := <-accepted // the publication is under way
		accepted <- c
		cancel(stop)
	}()
	if _, err := s.Publish(ctx, "r", []byte("blob")); !errors.Is(err, stop) {
		t.Fatalf("publishing to a broker that never answers: %v, want the ctx's cause", err)
	}

	done, cancelDone := context.WithCancelCause(context.Background())
	cancelDone(stop)
	if _, err := s.Publish(done, "r", []byte("blob")); !errors.Is(err, stop) {
		t.Fatalf("publishing with an ended ctx: %v, want the ctx's cause", err)
	}
	if err := s.Retire(done, snapstore.Stored{ID: "1", Group: "g", Chunks: 1}); !errors.Is(err, stop) {
		t.Fatalf("retiring with an ended ctx: %v, want the ctx's cause", err)
	}
}
