package snapstore

import (
	"bytes"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestFollowerDeliversTheOtherReplicasSnapshots feeds the follower the
// chunks of snapshots as they come off the topic: it hands over every
// complete, verified snapshot of another replica of its group, in any
// chunk order, and skips its own, other groups', unnamed, damaged and
// retired ones, forgetting one cut short once a newer one of the same
// replica completes.
func TestFollowerDeliversTheOtherReplicasSnapshots(t *testing.T) {
	var got, skipped []Stored
	fo := &follower{group: "g", self: "self", assembling: map[string]*assembly{},
		deliver: func(s Stored) { got = append(got, s) }, skip: func(s Stored) { skipped = append(skipped, s) }}
	feed := func(msgs []kafka.Message) {
		for _, m := range msgs {
			fo.add(m)
		}
	}
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 31)
		}
		return b
	}
	chunks := func(group, id, replica string, b []byte) []kafka.Message {
		return Messages(group, id, replica, b, 1024)
	}
	cut := chunks("g", "0000000000000000001", "b", blob(5000))
	feed(cut[:len(cut)/2])                                         // b crashed while publishing
	feed(chunks("g", "0000000000000000002", "self", blob(3000)))   // our own
	feed(chunks("other", "0000000000000000003", "c", blob(3000)))  // another group's
	feed(chunks("g", "0000000000000000004", "", blob(3000)))       // a worker that does not name itself
	damaged := chunks("g", "0000000000000000005", "d", blob(3000)) // bytes flipped
	damaged[0].Value = bytes.Clone(damaged[0].Value)
	damaged[0].Value[100] ^= 0xff
	feed(damaged)
	retired := chunks("g", "0000000000000000006", "e", blob(3000))
	feed(retired[:1])
	feed(Tombstones(Stored{ID: "0000000000000000006", Group: "g", Chunks: len(retired)}))
	feed(retired[1:]) // the rest of a retired one never completes
	reversed := chunks("g", "0000000000000000007", "b", blob(5000))
	for i := len(reversed) - 1; i >= 0; i-- {
		fo.add(reversed[i])
	}

	if len(got) != 1 || got[0].ID != "0000000000000000007" || got[0].Replica != "b" || !bytes.Equal(got[0].Blob, blob(5000)) {
		t.Fatalf("delivered %v, want b's 0000000000000000007 only", ids(got))
	}
	if len(skipped) != 1 || skipped[0].ID != "0000000000000000005" {
		t.Fatalf("skipped %v, want the damaged one", ids(skipped))
	}
	if len(fo.assembling) != 1 || fo.assembling["0000000000000000006"] == nil {
		t.Fatalf("%d snapshots still being assembled, want the cut one forgotten and only the retired one's rest", len(fo.assembling))
	}
}

// ids lists snapshots as ID of replica.
func ids(all []Stored) []string {
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = s.ID + " of " + s.Replica
	}
	return out
}
