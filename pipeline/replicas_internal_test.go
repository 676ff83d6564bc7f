package pipeline

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
)

// TestPeersKeepTheNewestOfEachReplica feeds Peers the chunks of snapshots
// as they come off the topic: it keeps the newest complete snapshot of
// every other replica of its group, skips its own, other groups', and
// damaged ones, and forgets a snapshot cut short once a newer one of the
// same replica completes.
func TestPeersKeepTheNewestOfEachReplica(t *testing.T) {
	d, err := model.NewDQN(model.DefaultDQN())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	blob := func(replica string, created time.Time) []byte {
		var buf bytes.Buffer
		if _, err := d.WriteSnapshot(&buf, model.SnapshotMeta{Replica: replica, Created: created}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	chunks := func(group, id, replica string, b []byte) []kafka.Message {
		return SnapshotMessages(group, id, replica, b, 1024)
	}
	now := time.Now().UTC()
	p := NewPeers(nil, "snaps", "g", "self", slog.New(slog.NewTextHandler(io.Discard, nil)))
	feed := func(msgs []kafka.Message) {
		for _, m := range msgs {
			p.add(m)
		}
	}
	cut := chunks("g", "0000000000000000001", "b", blob("b", now))
	feed(cut[:len(cut)/2])                                              // b crashed while publishing
	feed(chunks("g", "0000000000000000002", "self", blob("self", now))) // our own
	feed(chunks("other", "0000000000000000003", "c", blob("c", now)))   // another group's
	damaged := chunks("g", "0000000000000000004", "d", blob("d", now))
	damaged[0].Value[100] ^= 0xff
	feed(damaged)
	feed(chunks("g", "0000000000000000005", "b", blob("b", now)))
	feed(chunks("g", "0000000000000000006", "e", blob("e", now.Add(-time.Hour)))) // gone for an hour

	if got := p.Live(now, time.Minute); len(got) != 1 || got[0] != "b" {
		t.Fatalf("live replicas %v, want [b]", got)
	}
	if n := len(p.assembling); n != 0 {
		t.Fatalf("%d snapshots still being assembled, want the cut one forgotten", n)
	}
	taken := p.Take(now, time.Minute)
	if len(taken) != 1 || taken[0].Meta.Replica != "b" {
		t.Fatalf("took %d snapshots", len(taken))
	}
	if again := p.Take(now, time.Minute); len(again) != 0 || p.Pending(now, time.Minute) != 0 {
		t.Fatal("a snapshot was taken twice")
	}
	// A replica gone for longer than the timeout is taken only as stale
	// (a restored worker adds back its counts).
	stale := p.TakeStale(now, time.Minute)
	if len(stale) != 1 || stale[0].Meta.Replica != "e" {
		t.Fatalf("took %d stale snapshots, want e's", len(stale))
	}
	if again := p.TakeStale(now, time.Minute); len(again) != 0 {
		t.Fatal("a stale snapshot was taken twice")
	}
}

// TestPeersSeededFromTheListing checks that Peers starts from what restore
// read: the newest complete snapshot of each other replica, the restored
// one already merged, its own left out.
func TestPeersSeededFromTheListing(t *testing.T) {
	d, err := model.NewDQN(model.DefaultDQN())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now().UTC()
	stored := func(id, replica string, complete bool) StoredSnapshot {
		var buf bytes.Buffer
		if _, err := d.WriteSnapshot(&buf, model.SnapshotMeta{Replica: replica, Created: now}); err != nil {
			t.Fatal(err)
		}
		return StoredSnapshot{ID: id, Replica: replica, Complete: complete, blob: buf.Bytes()}
	}
	all := []StoredSnapshot{
		stored("01", "b", true), stored("02", "b", true), stored("03", "b", false), // b's newest complete: 02
		stored("04", "c", true), // the one restored
		stored("05", "self", true),
	}
	restored, err := model.ReadSnapshot(bytes.NewReader(all[3].blob))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPeers(nil, "snaps", "g", "self", slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.Seed(all, "04", restored)
	if got := p.Live(now, time.Minute); len(got) != 2 || got[0] != "b" || got[1] != "c" {
		t.Fatalf("live replicas %v, want [b c]", got)
	}
	if p.newest["b"].id != "02" {
		t.Fatalf("b's snapshot %s, want its newest complete one, 02", p.newest["b"].id)
	}
	if taken := p.Take(now, time.Minute); len(taken) != 1 || taken[0].Meta.Replica != "b" {
		t.Fatalf("took %d snapshots, want b's only (c's was restored)", len(taken))
	}
}
