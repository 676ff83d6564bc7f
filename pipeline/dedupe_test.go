package pipeline

import (
	"slices"
	"testing"

	"github.com/adaptrec/adaptrec/model/feedback"
)

func TestDedupeWindow(t *testing.T) {
	d := NewDedupe(3)
	for _, k := range []uint64{1, 2, 3} {
		if d.Seen(k) {
			t.Fatalf("%d seen before it was added", k)
		}
	}
	if !d.Seen(2) || d.Len() != 3 {
		t.Fatalf("2 not recognised within the window (len %d)", d.Len())
	}
	d.Seen(4) // 1 leaves the window
	if got := d.Keys(); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("keys %v, want [2 3 4]", got)
	}
	if d.Seen(1) {
		t.Fatal("1 still remembered past the window")
	}
	// A set loaded from a snapshot behaves as the one it was taken from.
	r := NewDedupe(2)
	r.Load([]uint64{2, 3, 4, 1})
	if got := r.Keys(); !slices.Equal(got, []uint64{4, 1}) || !r.Seen(4) || r.Seen(3) {
		t.Fatalf("loaded keys %v, want the newest two [4 1]", got)
	}
	var off *Dedupe = NewDedupe(0)
	if off.Seen(1) || off.Seen(1) || off.Keys() != nil {
		t.Fatal("window 0 must turn de-duplication off")
	}
}

func TestEventKey(t *testing.T) {
	a := feedback.Event{EventID: "e-1", UserID: "u"}
	b := feedback.Event{EventID: "e-1", UserID: "v"}
	if EventKey(a, []byte("x")) != EventKey(b, []byte("y")) {
		t.Fatal("the same event_id must give the same key whatever the message")
	}
	if EventKey(feedback.Event{EventID: "e-2"}, nil) == EventKey(a, nil) {
		t.Fatal("different event_ids share a key")
	}
	noID := feedback.Event{UserID: "u"}
	if EventKey(noID, []byte(`{"a":1}`)) != EventKey(noID, []byte(`{"a":1}`)) || EventKey(noID, []byte(`{"a":1}`)) == EventKey(noID, []byte(`{"a":2}`)) {
		t.Fatal("without event_id the key must be the message's bytes")
	}
	if EventKey(feedback.Event{EventID: "x"}, nil) == EventKey(noID, []byte("x")) {
		t.Fatal("an event_id and a message value of the same bytes share a key")
	}
}
