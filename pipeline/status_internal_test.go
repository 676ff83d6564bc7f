package pipeline

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// TestStatusShowsTheReplicas checks what the status page lists: this
// worker first, with the role mergePeers settled (a live replica with a
// smaller name decides), then every other replica whose snapshot it holds,
// live or not, with the time its newest snapshot was written.
func TestStatusShowsTheReplicas(t *testing.T) {
	d, err := model.NewDQN(model.DefaultDQN())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	now := time.Now().UTC()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := NewPeers(testStore(), "z-self", log)
	// What the follower keeps of each: the merge of these bare snapshots
	// fails (logged), the roles do not depend on it.
	p.newest["b"] = &peer{id: "0000000000000000005", snap: &model.Snapshot{Meta: model.SnapshotMeta{Replica: "b", Created: now.Add(-10 * time.Second), Decider: true}}}
	p.newest["e"] = &peer{id: "0000000000000000006", snap: &model.Snapshot{Meta: model.SnapshotMeta{Replica: "e", Created: now.Add(-time.Hour)}}} // gone for an hour
	status := telemetry.NewStatus()
	w := &Worker{log: log, peers: p, replica: "z-self", decider: true, status: status, stats: &Stats{}}
	w.cfg.Snapshot.PeerTimeout = time.Minute
	w.statusSelf()
	if r := status.Report(now).Replicas[0]; r.Name != "z-self" || !r.Decider {
		t.Fatalf("this worker before merging: %+v, want z-self, the decider", r)
	}
	w.mergePeers(d) // b is live and its name is smaller: b decides
	r := status.Report(now).Replicas
	type row struct {
		name               string
		self, decide, live bool
		age                float64
	}
	var got []row
	for _, x := range r {
		age := -1.0
		if x.SnapshotAge != nil {
			age = *x.SnapshotAge
		}
		got = append(got, row{x.Name, x.Self, x.Decider, x.Live, age})
	}
	want := []row{{"z-self", true, false, true, -1}, {"b", false, true, true, 10}, {"e", false, false, false, 3600}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replicas %v, want %v", got, want)
	}
}
