package model

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Replicas of one group learn on their own partitions and merge each
// other's snapshots. What they learn adds up the way a single worker's
// learning would: the online network and the co-occurrence counts are
// sums over replicas of what each learned itself (a grow-only counter per
// replica). The network is
//
//	net = start + own + Σ_peers peer's own + legacy
//
// where own is the sum of this replica's own training steps, each peer's
// own is what its newest merged snapshot says it learned itself, and the
// legacy is what replicas that left cleanly learned (their final
// snapshots). Merging a newer snapshot of a peer adds the difference to
// what its previous one added, so merging the same snapshot twice changes
// nothing and no step is counted twice or halved. Averaging the networks
// instead (the usual federated average) halves every replica's steps
// between merges. The co-occurrence counts, the sequential rules and the
// recency popularity (each replica's normalised so that its newest event
// weighs 1) are kept the same way (tally.go); the mixture's hit rates are
// averaged, as the target network is.
//
// Every snapshot carries its replica's own learning and its legacy: a
// final snapshot, once merged, moves its replica's learning from the
// peers into the legacy, so it outlives the snapshot's retirement; a
// replica that restarts from its own final snapshot moves its own
// learning there and starts a new incarnation from zero. Legacies merge by
// inclusion: a replica takes a peer's legacy when it holds every final
// its own holds.

// legacyKey names a final snapshot in a legacy: its replica and creation
// time (UnixNano).
type legacyKey struct {
	replica string
	at      int64
}

// replicaSums is the DQN's book-keeping of what it and its peers learned.
type replicaSums struct {
	self string // this replica's name: a snapshot of another is inherited
	// own is what this replica's training steps added to the online
	// network (netTensors order); mark is the network when own was last
	// brought up to date: what changed since is own learning.
	own, mark [][]float32
	peerNet   map[string][][]float32 // each merged peer's own
	peerT     map[string]peerTally   // what each merged peer's tables added
	peerAt    map[string]int64       // each merged peer's snapshot's creation
	legacy    map[legacyKey]bool     // the finals in the legacy
	legacyNet [][]float32
	legacyT   tallies
}

// SetReplica names the replica the model learns for: a snapshot it
// restores or adopts from another replica is that replica's learning, not
// its own.
func (d *DQN) SetReplica(name string) { d.sums.self = name }

// syncOwn adds what the network learned since the mark to own.
func (d *DQN) syncOwn() {
	ts := d.netTensors()
	if !sameShapes(d.sums.own, ts) {
		d.sums.own = zerosLike(ts)
	}
	if sameShapes(d.sums.mark, ts) {
		for i, t := range ts {
			for j := range t {
				d.sums.own[i][j] += t[j] - d.sums.mark[i][j]
			}
		}
	}
	d.markNet()
}

// sameShapes reports whether a has ts's tensor sizes.
func sameShapes(a, ts [][]float32) bool {
	if len(a) != len(ts) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(ts[i]) {
			return false
		}
	}
	return true
}

func zerosLike(ts [][]float32) [][]float32 {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		out[i] = make([]float32, len(t))
	}
	return out
}

// addTo adds sign × b to a.
func addTo(a, b [][]float32, sign float32) {
	for i := range a {
		for j := range a[i] {
			a[i][j] += sign * b[i][j]
		}
	}
}

// markNet sets the mark to the network as it is: changes from here on
// are own learning.
func (d *DQN) markNet() {
	ts := d.netTensors()
	if !sameShapes(d.sums.mark, ts) {
		d.sums.mark = zerosLike(ts)
	}
	for i, t := range ts {
		copy(d.sums.mark[i], t)
	}
}

// resetSums starts the network's sums afresh at the network as it is:
// after an architecture change, whose tensors have other shapes.
func (d *DQN) resetSums() {
	d.sums.own, d.sums.mark, d.sums.peerNet, d.sums.legacyNet = nil, nil, nil, nil
	d.syncOwn()
}

// snapSums are a snapshot's network sums: the writer's own, its peers',
// its legacy.
type snapSums struct {
	own, legacyNet [][]float32
	peers          map[string][][]float32
	legacy         map[legacyKey]bool
}

// sumRows are the snapshot rows of the network's sums (own, each peer's,
// the legacy's) and the legacy's names.
func (d *DQN) sumRows() []row {
	d.syncOwn()
	var rows []row
	add := func(prefix string, ts [][]float32) {
		for i, t := range ts {
			rows = append(rows, row{name: prefix + strconv.Itoa(i), shape: []int64{int64(len(t))}, f32: t})
		}
	}
	add("replica.own.", d.sums.own)
	peers := slices.Sorted(maps.Keys(d.sums.peerNet))
	rows = append(rows, row{name: "replica.peers", shape: []int64{int64(len(peers))}, str: peers})
	for k, p := range peers {
		add("replica.peer."+strconv.Itoa(k)+".", d.sums.peerNet[p])
	}
	keys := slices.SortedFunc(maps.Keys(d.sums.legacy), func(a, b legacyKey) int {
		return cmp.Or(cmp.Compare(a.replica, b.replica), cmp.Compare(a.at, b.at))
	})
	names, ats := make([]string, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		names[i], ats[i] = k.replica, k.at
	}
	rows = append(rows, row{name: "replica.legacy", shape: []int64{int64(len(keys))}, str: names, i64: ats})
	if d.sums.legacyNet != nil {
		add("replica.legacy.net.", d.sums.legacyNet)
	}
	return append(rows, d.legacyRows()...)
}

// snapshotSums reads a snapshot's network sums, checked against net (the
// snapshot's network).
func snapshotSums(s *Snapshot, net *qnet) (snapSums, error) {
	var ts [][]float32
	for _, l := range net.layers() {
		ts = append(ts, l.W, l.B)
	}
	read := func(prefix string) ([][]float32, error) {
		var out [][]float32
		for i, t := range ts {
			r, ok := s.rows[prefix+strconv.Itoa(i)]
			if !ok || len(r.f32) != len(t) {
				return nil, fmt.Errorf("snapshot's %s%d does not match the model's network", prefix, i)
			}
			out = append(out, slices.Clone(r.f32))
		}
		return out, nil
	}
	var out snapSums
	var err error
	if out.own, err = read("replica.own."); err != nil {
		return out, err
	}
	out.peers = map[string][][]float32{}
	for k, p := range s.rows["replica.peers"].str {
		if out.peers[p], err = read("replica.peer." + strconv.Itoa(k) + "."); err != nil {
			return out, err
		}
	}
	if _, ok := s.rows["replica.legacy.net.0"]; ok {
		if out.legacyNet, err = read("replica.legacy.net."); err != nil {
			return out, err
		}
	}
	out.legacy, err = legacyKeys(s)
	return out, err
}

// legacyKeys reads the finals a snapshot's legacy holds.
func legacyKeys(s *Snapshot) (map[legacyKey]bool, error) {
	lg := s.rows["replica.legacy"]
	if len(lg.str) != len(lg.i64) {
		return nil, fmt.Errorf("snapshot's replica.legacy names %d replicas at %d times", len(lg.str), len(lg.i64))
	}
	keys := map[legacyKey]bool{}
	for i, r := range lg.str {
		keys[legacyKey{r, lg.i64[i]}] = true
	}
	return keys, nil
}

// inheritSums sets the network's sums after taking the networks of s (a
// restore or an adoption): its own learning is ours when s is our own
// snapshot; otherwise it is its writer's, and what s knew of us is ours.
func (d *DQN) inheritSums(s *Snapshot, n snapSums) {
	own, peers, writer := n.own, n.peers, s.Meta.Replica
	if writer == d.sums.self {
		d.sums.own, d.sums.peerNet = own, peers
	} else {
		d.sums.own = peers[d.sums.self] // nil: nothing, syncOwn sizes it
		delete(peers, d.sums.self)
		peers[writer] = own
		d.sums.peerNet = peers
	}
	if len(d.sums.peerNet) == 0 {
		d.sums.peerNet = nil
	}
	d.sums.legacyNet = n.legacyNet
	d.sums.mark = nil
	d.syncOwn()
}

// restoreSums sets the counts' book-keeping after a restore of s, whose
// own counts are own (in our indices) and whose legacy is in the model's
// tables: an own final snapshot starts a new incarnation; another
// replica's snapshot is that replica's learning (folded into the legacy
// if it was its last).
func (d *DQN) restoreSums(s *Snapshot, n snapSums, own peerTally) {
	m := s.Meta
	d.sums.legacy = n.legacy
	d.sums.peerT, d.sums.peerAt = nil, nil
	at := m.Created.UnixNano()
	if m.Replica == d.sums.self {
		if m.Final {
			d.foldOwn(at)
		}
		return
	}
	d.sums.peerT = map[string]peerTally{m.Replica: own}
	d.sums.peerAt = map[string]int64{m.Replica: at}
	if m.Final {
		d.fold(m.Replica, at)
	}
}

// folded reports whether the legacy holds the learning of s's writer up to
// s: s is then stale, and merging it would count it twice.
func (d *DQN) folded(s *Snapshot) bool {
	at := s.Meta.Created.UnixNano()
	for k := range d.sums.legacy {
		if k.replica == s.Meta.Replica && k.at >= at {
			return true
		}
	}
	return false
}

// fold moves a peer's learning, up to its final snapshot of at, from the
// peers into the legacy. The model does not change.
func (d *DQN) fold(replica string, at int64) {
	if p, ok := d.sums.peerT[replica]; ok {
		d.sums.legacyT.apply(p, 1)
	}
	if n := d.sums.peerNet[replica]; n != nil && sameShapes(n, d.netTensors()) {
		if d.sums.legacyNet == nil {
			d.sums.legacyNet = zerosLike(n)
		}
		addTo(d.sums.legacyNet, n, 1)
	}
	delete(d.sums.peerT, replica)
	delete(d.sums.peerNet, replica)
	delete(d.sums.peerAt, replica)
	if d.sums.legacy == nil {
		d.sums.legacy = map[legacyKey]bool{}
	}
	d.sums.legacy[legacyKey{replica, at}] = true
}

// foldOwn moves this replica's own learning, up to its final snapshot of
// at, into the legacy: it starts a new incarnation. The model does not
// change.
func (d *DQN) foldOwn(at int64) {
	d.syncOwn()
	co, sr, pop := d.ownTables()
	d.sums.legacyT.apply(peerTally{co: co.table(), sr: sr.table(), pop: pop}, 1)
	if d.sums.legacyNet == nil {
		d.sums.legacyNet = zerosLike(d.sums.own)
	}
	addTo(d.sums.legacyNet, d.sums.own, 1)
	d.sums.own = zerosLike(d.sums.own)
	if d.sums.legacy == nil {
		d.sums.legacy = map[legacyKey]bool{}
	}
	d.sums.legacy[legacyKey{d.sums.self, at}] = true
}

// mergeLegacy merges a peer snapshot's legacy (its counts t, in our item
// indices, and its sums n): when it holds every final ours holds, it
// replaces ours, and the peers it folded are no longer counted as peers;
// otherwise the finals it holds that we hold as peers at the same
// snapshot are folded into ours.
func (d *DQN) mergeLegacy(t peerTally, n snapSums) {
	var extra []legacyKey
	for k := range n.legacy {
		if !d.sums.legacy[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return
	}
	for k := range d.sums.legacy {
		if !n.legacy[k] { // incomparable: fold what we can
			for _, k := range extra {
				if at, ok := d.sums.peerAt[k.replica]; ok && at == k.at {
					d.fold(k.replica, k.at)
				}
			}
			return
		}
	}
	d.syncOwn()
	ts := d.netTensors()
	for _, k := range extra {
		if at, ok := d.sums.peerAt[k.replica]; ok && at <= k.at {
			// Up to its final, which the legacy holds.
			if old, ok := d.sums.peerT[k.replica]; ok {
				d.apply(old, -1)
			}
			if old := d.sums.peerNet[k.replica]; old != nil && sameShapes(old, ts) {
				addTo(ts, old, -1)
			}
			delete(d.sums.peerT, k.replica)
			delete(d.sums.peerNet, k.replica)
			delete(d.sums.peerAt, k.replica)
		}
	}
	d.apply(d.sums.legacyT.peer(), -1)
	d.apply(t, 1)
	d.sums.legacyT = tallies{}
	d.sums.legacyT.apply(t, 1)
	if sameShapes(n.legacyNet, ts) {
		if d.sums.legacyNet != nil {
			addTo(ts, d.sums.legacyNet, -1)
		}
		addTo(ts, n.legacyNet, 1)
		d.sums.legacyNet = n.legacyNet
	}
	d.sums.legacy = maps.Clone(n.legacy)
	d.markNet()
}

// mergeNet adds what peer s's writer learned since its snapshot we merged
// last to the online network.
func (d *DQN) mergeNet(s *Snapshot, own [][]float32) {
	d.syncOwn()
	old := d.sums.peerNet[s.Meta.Replica]
	for i, t := range d.netTensors() {
		for j := range t {
			if old != nil {
				t[j] += own[i][j] - old[i][j]
			} else {
				t[j] += own[i][j]
			}
		}
	}
	if d.sums.peerNet == nil {
		d.sums.peerNet = map[string][][]float32{}
	}
	d.sums.peerNet[s.Meta.Replica] = own
	d.markNet()
}

// mergeTally replaces what the previous snapshot of s's writer added to
// the model's tables by p.
func (d *DQN) mergeTally(s *Snapshot, p peerTally) {
	replica := s.Meta.Replica
	if d.sums.peerT == nil {
		d.sums.peerT = map[string]peerTally{}
		d.sums.peerAt = map[string]int64{}
	}
	if old, ok := d.sums.peerT[replica]; ok {
		d.apply(old, -1)
	}
	d.apply(p, 1)
	d.sums.peerT[replica] = p
	d.sums.peerAt[replica] = s.Meta.Created.UnixNano()
}

// CoocTotals sums the co-occurrence table: the interactions counted and
// the pair counts.
func (d *DQN) CoocTotals() (interactions, pairs float64) {
	for x, c := range d.co.count {
		interactions += c
		for _, n := range d.co.nbrs[x].count {
			pairs += n
		}
	}
	return interactions, pairs
}
