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
		msgs := SnapshotMessages(group, id, b, 1024)
		for i := range msgs {
			msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: hdrReplica, Value: []byte(replica)})
		}
		return msgs
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
}
