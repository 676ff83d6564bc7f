package pipeline

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

// TestPeersKeepTheNewestOfEachReplica feeds Peers the other replicas'
// snapshots as the store's Follow hands them over (it reassembles and
// verifies them, and leaves out the group's other replicas', damaged and
// cut ones: snapstore's TestFollowerDeliversTheOtherReplicasSnapshots):
// it keeps the newest of every replica, older ones and ones that do not
// decode left out.
func TestPeersKeepTheNewestOfEachReplica(t *testing.T) {
	d, err := model.NewDQN(model.DefaultDQN())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	stored := func(id, replica string, created time.Time) snapstore.Stored {
		var buf bytes.Buffer
		if _, err := d.WriteSnapshot(&buf, model.SnapshotMeta{Replica: replica, Created: created}); err != nil {
			t.Fatal(err)
		}
		return snapstore.Stored{ID: id, Group: "g", Replica: replica, Complete: true, Blob: buf.Bytes()}
	}
	now := time.Now().UTC()
	p := NewPeers(testStore(), "self", slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.add(stored("0000000000000000005", "b", now))
	p.add(stored("0000000000000000001", "b", now.Add(-time.Hour))) // older: left out
	p.add(snapstore.Stored{ID: "0000000000000000004", Group: "g", Replica: "d", Complete: true, Blob: []byte("not a snapshot")})
	p.add(stored("0000000000000000006", "e", now.Add(-time.Hour))) // gone for an hour

	if got := p.Live(now, time.Minute); len(got) != 1 || got[0] != "b" {
		t.Fatalf("live replicas %v, want [b]", got)
	}
	if p.received != 2 || p.decodeErr != 1 {
		t.Fatalf("received %d, %d did not decode; want 2, 1", p.received, p.decodeErr)
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

// testStore is a store that is never dialled: Peers' tests feed it.
func testStore() *snapstore.Store {
	return snapstore.New(nil, "snaps", "g", 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
	stored := func(id, replica string, complete bool) snapstore.Stored {
		var buf bytes.Buffer
		if _, err := d.WriteSnapshot(&buf, model.SnapshotMeta{Replica: replica, Created: now}); err != nil {
			t.Fatal(err)
		}
		return snapstore.Stored{ID: id, Replica: replica, Complete: complete, Blob: buf.Bytes()}
	}
	all := []snapstore.Stored{
		stored("01", "b", true), stored("02", "b", true), stored("03", "b", false), // b's newest complete: 02
		stored("04", "c", true), // the one restored
		stored("05", "self", true),
	}
	restored, err := model.ReadSnapshot(bytes.NewReader(all[3].Blob))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPeers(testStore(), "self", slog.New(slog.NewTextHandler(io.Discard, nil)))
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
