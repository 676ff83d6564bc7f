package model

import (
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
//	net = start + own + Σ_peers peer's own
//
// where own is the sum of this replica's own training steps and each
// peer's own is what its newest merged snapshot says it learned itself.
// Merging a newer snapshot of a peer adds the difference to what its
// previous one added, so merging the same snapshot twice changes nothing
// and no step is counted twice or halved. Averaging the networks instead
// (the usual federated average) halves every replica's steps between
// merges. The co-occurrence counts are kept the same way.

// replicaSums is the DQN's book-keeping of what it and its peers learned.
type replicaSums struct {
	self string // this replica's name: a snapshot of another is inherited
	// own is what this replica's training steps added to the online
	// network (netTensors order); mark is the network when own was last
	// brought up to date: what changed since is own learning.
	own, mark [][]float32
	peerNet   map[string][][]float32 // each merged peer's own
	peerCo    map[string]*coocTable  // each merged peer's own counts
}

// SetReplica names the replica the model learns for: a snapshot it
// restores or adopts from another replica is that replica's learning, not
// its own.
func (d *DQN) SetReplica(name string) { d.sums.self = name }

// syncOwn adds what the network learned since the mark to own.
func (d *DQN) syncOwn() {
	ts := d.netTensors()
	if !sameShapes(d.sums.own, ts) {
		d.sums.own = nil
		for _, t := range ts {
			d.sums.own = append(d.sums.own, make([]float32, len(t)))
		}
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

// markNet sets the mark to the network as it is: changes from here on
// are own learning.
func (d *DQN) markNet() {
	ts := d.netTensors()
	d.sums.mark = d.sums.mark[:0]
	for _, t := range ts {
		d.sums.mark = append(d.sums.mark, slices.Clone(t))
	}
}

// resetSums starts the network's sums afresh at the network as it is:
// after an architecture change, whose tensors have other shapes.
func (d *DQN) resetSums() {
	d.sums.own, d.sums.mark, d.sums.peerNet = nil, nil, nil
	d.syncOwn()
}

// sumRows are the snapshot rows of the network's sums: own, and each
// peer's (names in replica.peers).
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
	return rows
}

// snapshotSums reads a snapshot's network sums, the writer's own and its
// peers', checked against net (the snapshot's network).
func snapshotSums(s *Snapshot, net *qnet) (own [][]float32, peers map[string][][]float32, err error) {
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
	if own, err = read("replica.own."); err != nil {
		return nil, nil, err
	}
	peers = map[string][][]float32{}
	for k, p := range s.rows["replica.peers"].str {
		if peers[p], err = read("replica.peer." + strconv.Itoa(k) + "."); err != nil {
			return nil, nil, err
		}
	}
	return own, peers, nil
}

// inheritSums sets the network's sums after taking the networks of s (a
// restore or an adoption): its own learning is ours when s is our own
// snapshot; otherwise it is its writer's, and what s knew of us is ours.
func (d *DQN) inheritSums(s *Snapshot, n snapNets) {
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
	d.sums.mark = nil
	d.syncOwn()
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

// mergeCooc replaces what the previous snapshot of t's writer added to
// the co-occurrence counts by t.
func (d *DQN) mergeCooc(replica string, t *coocTable) {
	if d.sums.peerCo == nil {
		d.sums.peerCo = map[string]*coocTable{}
	}
	if old := d.sums.peerCo[replica]; old != nil {
		d.co.apply(old, -1)
	}
	d.co.apply(t, 1)
	d.sums.peerCo[replica] = t
}

// ownCooc takes the merged peers' counts out of the model's co-occurrence
// table (count, CSR offsets, nbr, nc: a copy), leaving what this replica
// counted itself, which is what its snapshots carry.
func (d *DQN) ownCooc(count []float32, offsets, nbr []int32, nc []float32) ([]float32, []int32, []int32, []float32) {
	if len(d.sums.peerCo) == 0 {
		return count, offsets, nbr, nc
	}
	for _, t := range d.sums.peerCo {
		for k, x := range t.local {
			count[x] -= t.count[k]
			pos := d.co.nbrs[x].pos
			for j := t.offsets[k]; j < t.offsets[k+1]; j++ {
				nc[offsets[x]+pos[t.local[t.nbr[j]]]] -= t.counts[j]
			}
		}
	}
	// Leave out the pairs only peers counted.
	n := 0
	for x := range len(offsets) - 1 {
		lo, hi := offsets[x], offsets[x+1]
		offsets[x] = int32(n)
		for j := lo; j < hi; j++ {
			if nc[j] != 0 {
				nbr[n], nc[n] = nbr[j], nc[j]
				n++
			}
		}
	}
	offsets[len(offsets)-1] = int32(n)
	return count, offsets, nbr[:n], nc[:n]
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
