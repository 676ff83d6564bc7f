package model

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
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

// byUser splits events into k streams by user, as partitions do.
func byUser(evs []feedback.Located, k int) [][]feedback.Located {
	out := make([][]feedback.Located, k)
	for _, e := range evs {
		n := int(e.UserID[len(e.UserID)-1] - '0')
		out[n%k] = append(out[n%k], e)
	}
	return out
}

// twoReplicas returns a small DQN configuration, the events, their split
// between two replicas by user, and one learner of all of them.
func twoReplicas(t *testing.T) (cfg DQNConfig, evs, ea, eb []feedback.Located, one *DQN) {
	t.Helper()
	cfg = DefaultDQN()
	cfg.Rows = 32
	evs = replicaEvents()
	halves := byUser(evs, 2)
	one = replica(t, cfg, "one")
	learnAll(t, one, evs)
	return cfg, evs, halves[0], halves[1], one
}

func learnAll(t *testing.T, d *DQN, evs []feedback.Located) {
	t.Helper()
	learnBatches(t, d, evs, 100)
}

// snapshotOf is d's snapshot as replica writes it, read back.
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
	d := newDQN(t, cfg)
	d.SetReplica(name)
	return d
}

// coocByID is d's co-occurrence table keyed by item ids.
func coocByID(d *DQN) (counts map[string]float64, pairs map[[2]string]float64) {
	return tableByID(d, &d.co)
}

// tableByID is c, one of d's count tables, keyed by item ids.
func tableByID(d *DQN, c *cooc) (counts map[string]float64, pairs map[[2]string]float64) {
	counts, pairs = map[string]float64{}, map[[2]string]float64{}
	for x, id := range d.items.ids {
		if x >= len(c.count) {
			break
		}
		if n := c.count[x]; n != 0 {
			counts[id] = n
		}
		nb := c.nbrs[x]
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
	// The sequential rules' weights (sums of 1/g) pass through float32 in
	// snapshots: equal within float32's precision.
	ra, qa := tableByID(a, &a.rules)
	rb, qb := tableByID(b, &b.rules)
	if len(qa) == 0 {
		t.Fatalf("%s: no sequential rules", what)
	}
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-5*math.Max(1, math.Abs(y)) }
	for _, c := range [][2]map[string]float64{{ra, rb}} {
		if len(c[0]) != len(c[1]) {
			t.Fatalf("%s: sequential rules count %d items against %d", what, len(c[0]), len(c[1]))
		}
		for k, v := range c[0] {
			if !near(v, c[1][k]) {
				t.Fatalf("%s: sequential rules count item %s %g times against %g", what, k, v, c[1][k])
			}
		}
	}
	if len(qa) != len(qb) {
		t.Fatalf("%s: %d sequential rules against %d", what, len(qa), len(qb))
	}
	for k, v := range qa {
		if !near(v, qb[k]) {
			t.Fatalf("%s: rule %s → %s weighs %g against %g", what, k[0], k[1], v, qb[k])
		}
	}
}

// popByID is d's recency popularity normalised so that its largest score
// is 1, keyed by item ids.
func popByID(d *DQN) map[string]float64 {
	top := slices.Max(d.pop.score)
	out := map[string]float64{}
	for x, v := range d.pop.score {
		out[d.items.ids[x]] = v / top
	}
	return out
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
	cfg, _, ea, eb, one := twoReplicas(t)
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
	// Each replica's popularity is its own plus the other's, each
	// normalised to its newest event: the same on both.
	pa, pb := popByID(a), popByID(b)
	for id, v := range pa {
		if math.Abs(v-pb[id]) > 1e-6 {
			t.Fatalf("item %s's recency popularity is %g on replica a and %g on b", id, v, pb[id])
		}
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

func finalOf(t *testing.T, d *DQN, replica string, at time.Time) *Snapshot {
	t.Helper()
	var buf bytes.Buffer
	if _, err := d.WriteSnapshot(&buf, SnapshotMeta{Replica: replica, Created: at, Final: true}); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// What a replica learned outlives it: a final snapshot, once merged, moves
// into the legacy that every later snapshot carries, so generations of
// replicas with new names hold the counts of all their predecessors; a
// replica that comes back under its old name starts a new incarnation,
// and nothing is counted twice.
func TestDepartedReplicasLiveOnInTheLegacy(t *testing.T) {
	cfg, evs, ea, eb, one := twoReplicas(t)
	a, b := replica(t, cfg, "a"), replica(t, cfg, "b")
	learnAll(t, a, ea)
	learnAll(t, b, eb)
	t0 := time.Unix(1_000_000, 0)
	sbFinal := finalOf(t, b, "b", t0)
	if err := a.Merge(sbFinal, 0.5); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "a after b left", a, one)
	if len(a.sums.peerT) != 0 || !a.sums.legacy[legacyKey{"b", t0.UnixNano()}] {
		t.Fatalf("b's final snapshot was not folded into a's legacy: peers %d, legacy %v", len(a.sums.peerT), a.sums.legacy)
	}
	// A second generation: c, a new name, restores a's snapshot; then a
	// leaves and c merges its final.
	c := replica(t, cfg, "c")
	if err := c.Restore(snapshotOf(t, a, "a")); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "c restored from a", c, one)
	saFinal := finalOf(t, a, "a", t0.Add(time.Second))
	if err := c.Merge(saFinal, 0.5); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "c after a left", c, one)
	w0 := slices.Clone(c.net.hidden[0].W)
	if err := c.Merge(sbFinal, 0.5); err != nil { // stale: in the legacy
		t.Fatal(err)
	}
	sameCooc(t, "c after merging b's final again", c, one)
	if !slices.Equal(c.net.hidden[0].W, w0) {
		t.Fatal("merging a folded final changed the network")
	}
	// A third generation restores c's snapshot, with no predecessor's
	// snapshot left to merge: it holds everything.
	e := replica(t, cfg, "e")
	if err := e.Restore(snapshotOf(t, c, "c")); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "third generation", e, one)

	// b comes back under its name from its final snapshot, a new
	// incarnation: it learns more, and e merges it.
	var more []feedback.Located
	for i, ev := range evs[:200] {
		ev.UserID = fmt.Sprint("new", i%7)
		ev.TS = time.Unix(int64(5000+i), 0)
		more = append(more, ev)
	}
	learnAll(t, one, more)
	back := replica(t, cfg, "b")
	if err := back.Restore(sbFinal); err != nil {
		t.Fatal(err)
	}
	for _, u := range snapshotOf(t, back, "b").rows["replica.own.0"].f32 {
		if u != 0 {
			t.Fatal("b's new incarnation carries its old learning as its own")
		}
	}
	learnAll(t, back, more)
	if err := e.Merge(snapshotOf(t, back, "b"), 0.5); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "third generation after b came back", e, one)
}

// A replica that merges a peer's legacy holding a final it had merged
// only as an earlier snapshot of a live peer counts that peer once: the
// legacy's final replaces it.
func TestLegacyReplacesAPeerItHolds(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	evs := replicaEvents()
	parts := byUser(evs, 3)
	one := replica(t, cfg, "one")
	learnAll(t, one, evs)
	p, q, x := replica(t, cfg, "p"), replica(t, cfg, "q"), replica(t, cfg, "x")
	learnAll(t, p, parts[0])
	learnAll(t, q, parts[1])
	half := len(parts[2]) / 2
	learnAll(t, x, parts[2][:half])
	if err := q.Merge(snapshotOf(t, x, "x"), 0.5); err != nil { // x while it ran
		t.Fatal(err)
	}
	learnAll(t, x, parts[2][half:])
	if err := p.Merge(finalOf(t, x, "x", time.Now().Add(time.Hour)), 0.5); err != nil { // x left
		t.Fatal(err)
	}
	if err := q.Merge(snapshotOf(t, p, "p"), 0.5); err != nil {
		t.Fatal(err)
	}
	sameCooc(t, "q after merging p's legacy", q, one)
	if _, held := q.sums.peerT["x"]; held {
		t.Fatal("q still holds x as a peer beside the legacy that holds its final")
	}
}

// A replica may merge twice without a snapshot of its own between (at
// start after a restore, then at its first snapshot) and meet new items
// in between.
func TestMergeAgainAfterNewItems(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows = 32
	evs := replicaEvents()
	a, b := replica(t, cfg, "a"), replica(t, cfg, "b")
	learnAll(t, a, evs[:300])
	learnAll(t, b, evs[300:600])
	if err := a.Merge(snapshotOf(t, b, "b"), 0.5); err != nil {
		t.Fatal(err)
	}
	learnClick(t, a, "u1", "brand-new")
	learnAll(t, b, evs[600:900])
	if err := a.Merge(snapshotOf(t, b, "b"), 0.5); err != nil {
		t.Fatal(err)
	}
	x, _ := a.items.Lookup("brand-new")
	if a.fresh[x] != 1 || a.merged[x] != 1 {
		t.Fatalf("the new item's interactions: fresh %v, merged %v; want 1 and 1", a.fresh[x], a.merged[x])
	}
}

// Replicas trust the mixture's scorers by what all of them saw: a merge
// averages the hit rates with the snapshot's, weighed as the networks are.
func TestMergeAveragesTheMixtureHitRates(t *testing.T) {
	cfg, _, ea, eb, _ := twoReplicas(t)
	a, b := replica(t, cfg, "a"), replica(t, cfg, "b")
	learnAll(t, a, ea)
	learnAll(t, b, eb)
	for k := range a.mix.quality {
		for i := range a.mix.quality[k] {
			a.mix.quality[k][i], b.mix.quality[k][i] = 0.1*float64(i+1), 0.5
		}
		a.mix.seen[k], b.mix.seen[k] = 10, 20
	}
	if err := b.Merge(snapshotOf(t, a, "a"), 0.25); err != nil {
		t.Fatal(err)
	}
	for k := range b.mix.quality {
		for i, q := range b.mix.quality[k] {
			if want := 0.75*0.5 + 0.25*0.1*float64(i+1); math.Abs(q-want) > 1e-12 {
				t.Fatalf("after the merge hit rate [%d][%d] is %g, want %g", k, i, q, want)
			}
		}
		if b.mix.seen[k] != 20 {
			t.Fatalf("bucket %d counts %d checks after the merge, want the larger, 20", k, b.mix.seen[k])
		}
	}
}
