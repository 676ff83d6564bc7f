package model

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/pipeline/feedback"
)

// replicaEvents are clicks of 20 users over 60 items; users split the
// stream between replicas the way partitions do.
func replicaEvents() []feedback.Located {
	var evs []feedback.Located
	for i := range 1200 {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%20), SessionID: "s",
			ItemID: fmt.Sprint("i", (i*7+i/20)%60), Type: feedback.Click, TS: time.Unix(int64(i), 0)}})
	}
	return evs
}

func learnAll(t *testing.T, d *DQN, evs []feedback.Located) {
	t.Helper()
	for lo := 0; lo < len(evs); lo += 100 {
		b := feedback.BatchOf(evs[lo:min(lo+100, len(evs))]...)
		if _, err := d.Learn(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
}

func snapshotOf(t *testing.T, d *DQN, replica string) *Snapshot {
	t.Helper()
	var buf bytes.Buffer
	if _, err := d.WriteSnapshot(&buf, SnapshotMeta{Replica: replica}); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func replica(t *testing.T, cfg DQNConfig, name string) *DQN {
	t.Helper()
	d, err := NewDQN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	d.SetReplica(name)
	return d
}

// coocByID is d's co-occurrence table keyed by item ids.
func coocByID(d *DQN) (counts map[string]float64, pairs map[[2]string]float64) {
	counts, pairs = map[string]float64{}, map[[2]string]float64{}
	for x, id := range d.items.ids {
		if c := d.co.count[x]; c != 0 {
			counts[id] = c
		}
		nb := d.co.nbrs[x]
		for j, y := range nb.item {
			if nb.count[j] != 0 {
				pairs[[2]string{id, d.items.ids[y]}] = nb.count[j]
			}
		}
	}
	return counts, pairs
}

func sameCooc(t *testing.T, what string, a, b *DQN) {
	t.Helper()
	ca, pa := coocByID(a)
	cb, pb := coocByID(b)
	if fmt.Sprint(ca) != fmt.Sprint(cb) || fmt.Sprint(pa) != fmt.Sprint(pb) {
		t.Fatalf("%s: co-occurrence tables differ: %d items and %d pairs against %d and %d", what, len(ca), len(pa), len(cb), len(pb))
	}
}

// maxNetDiff is the largest difference between a's and b's online weights.
func maxNetDiff(a, b *DQN) float64 {
	m := 0.0
	bt := b.netTensors()
	for i, t := range a.netTensors() {
		for j := range t {
			m = max(m, math.Abs(float64(t[j]-bt[i][j])))
		}
	}
	return m
}

// Two replicas that learn disjoint users and exchange snapshots end with
// the co-occurrence table one learner of all the events has, exactly, and
// with one online network: the start plus both replicas' own steps. A
// replica that restarts from its own snapshot and merges its peer's again
// is where it was; a new replica that restores another's snapshot takes
// its learning as that replica's, not as its own.
func TestReplicasAddUpLikeOneLearner(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	evs := replicaEvents()
	var ea, eb []feedback.Located
	for _, e := range evs {
		if n := e.UserID[len(e.UserID)-1]; n%2 == 0 {
			ea = append(ea, e)
		} else {
			eb = append(eb, e)
		}
	}
	one := replica(t, cfg, "one")
	learnAll(t, one, evs)
	a, b := replica(t, cfg, "a"), replica(t, cfg, "b")
	learnAll(t, a, ea[:300])
	learnAll(t, b, eb[:300])
	// A first exchange part way, then the rest and a final exchange.
	if err := b.Merge(snapshotOf(t, a, "a"), 0.5); err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(snapshotOf(t, b, "b"), 0.5); err != nil {
		t.Fatal(err)
	}
	learnAll(t, a, ea[300:])
	learnAll(t, b, eb[300:])
	sa := snapshotOf(t, a, "a")
	if err := b.Merge(sa, 0.5); err != nil {
		t.Fatal(err)
	}
	sb := snapshotOf(t, b, "b")
	if err := a.Merge(sb, 0.5); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "replica a against one learner", a, one)
	sameCooc(t, "replica b against one learner", b, one)
	if d := maxNetDiff(a, b); d > 1e-5 {
		t.Fatalf("after the exchange the replicas' networks differ by up to %g", d)
	}
	// Each snapshot carries its writer's own counts only.
	if got, want := len(sa.rows["cooc.items"].i32), 0; got == want {
		t.Fatal("replica a's snapshot carries no pairs")
	}
	ownA := replica(t, cfg, "a-alone")
	learnAll(t, ownA, ea)
	ca, _ := coocByID(ownA)
	if n := len(sb.rows["cooc.count"].f32); n == 0 {
		t.Fatal("replica b's snapshot carries no counts")
	}
	total := 0.0
	for _, c := range sa.rows["cooc.count"].f32 {
		total += float64(c)
	}
	want := 0.0
	for _, c := range ca {
		want += c
	}
	if total != want {
		t.Fatalf("replica a's snapshot counts %v interactions, want its own %v", total, want)
	}

	// Restart from its own snapshot, then merge the peer again.
	again := replica(t, cfg, "a")
	if err := again.Restore(snapshotOf(t, a, "a")); err != nil {
		t.Fatal(err)
	}
	if err := again.Merge(sb, 0.5); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "restarted replica a", again, a)
	if d := maxNetDiff(again, a); d != 0 {
		t.Fatalf("restarted replica a's network differs by up to %g: the peer counted twice?", d)
	}

	// A new replica that restores b's snapshot learned nothing itself.
	c := replica(t, cfg, "c")
	if err := c.Restore(sb); err != nil {
		t.Fatal(err)
	}
	sc := snapshotOf(t, c, "c")
	if n := len(sc.rows["cooc.items"].i32); n != 0 {
		t.Fatalf("replica c's snapshot carries %d pairs as its own", n)
	}
	for i := range c.netTensors() {
		for _, v := range sc.rows[fmt.Sprint("replica.own.", i)].f32 {
			if v != 0 {
				t.Fatal("replica c's snapshot carries network steps as its own")
			}
		}
	}
	before := c.netTensors()[0][0]
	if err := c.Merge(sa, 0.5); err != nil { // b had merged it
		t.Fatal(err)
	}
	if err := c.Merge(sb, 0.5); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "new replica c", c, one)
	if c.netTensors()[0][0] != before {
		t.Fatal("replica c counted steps b had merged again")
	}

	// A departed replica's snapshot gives only what adds up: a restarted
	// replica a that merges b's this way has the counts of all the events,
	// and its target network and item tables are its own.
	alone := replica(t, cfg, "a")
	if err := alone.Restore(sa); err != nil {
		t.Fatal(err)
	}
	target, eout := slices.Clone(alone.target.hidden[0].W), slices.Clone(alone.eout)
	if err := alone.MergeSums(sb); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "replica a after MergeSums", alone, one)
	if !slices.Equal(alone.target.hidden[0].W, target) || !slices.Equal(alone.eout[:len(eout)], eout) {
		t.Fatal("MergeSums averaged the target network or the item tables")
	}
}
