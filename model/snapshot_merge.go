package model

import (
	"fmt"
	"slices"
	"strings"
)

// Merge merges another replica's snapshot into the model. The online
// network, the co-occurrence counts, the sequential rules and the recency
// popularity add up (see replicaSums): what the other replica learned
// itself since its snapshot merged before is added. The target network,
// the Adam moments and the mixture's hit rates are averaged, the
// snapshot's with weight w in [0, 1]. The item tables are sparse (an item is learned by
// the replicas whose users meet it), so each item both know is weighed by
// the interactions each learned since its last snapshot: an item only the
// other learned takes its values, one both learned is averaged in
// proportion, one neither learned gets weight w. Items only the other
// knows are added with its values. Merging the same snapshot twice
// changes nothing. The two must have the same architecture (an
// architecture change is applied to every replica before they merge:
// Adopt). The replay buffer and the users stay the model's own: they
// describe the partitions this replica serves.
func (d *DQN) Merge(s *Snapshot, w float64) error { return d.merge(s, w, true) }

// MergeSums merges what adds up of the snapshot of a replica that left
// the group long ago: its own network steps (at the model's architecture)
// and co-occurrence counts, and the items only it knows. Nothing is
// averaged: its other tensors are stale. A worker that restarts from its
// own snapshot uses it to add back departed replicas' counts, which its
// snapshot does not carry.
func (d *DQN) MergeSums(s *Snapshot) error { return d.merge(s, 0, false) }

// merge is Merge, or MergeSums when average is false.
func (d *DQN) merge(s *Snapshot, w float64, average bool) error {
	m := s.Meta
	sameNet, err := d.mergeable(s, w, average)
	if err != nil || d.folded(s) {
		return err // folded: its learning is in the legacy already
	}
	var sums snapSums
	if sameNet {
		for _, t := range d.netTensors8() {
			if r, ok := s.rows[t.name]; !ok || len(r.f32) != len(t.data) {
				return fmt.Errorf("snapshot's %s does not match the model's", t.name)
			}
		}
		sums, err = snapshotSums(s, d.net)
	} else {
		sums.legacy, err = legacyKeys(s)
	}
	if err != nil {
		return err
	}
	it, err := s.items(d.cfg.Dim, d.cfg.Tied, d.tierWidths())
	if err != nil {
		return err
	}
	if average {
		d.averageTensors(s, w)
		d.mix.average(readQuality(s), w)
		if o := d.readWidths(s); o != nil {
			d.wp.average(o, w)
		}
	}
	if sameNet {
		d.mergeNet(s, sums.own)
	}
	local := d.mergeItems(it, w, average)
	// Co-occurrence counts, sequential rules and recency popularity add up
	// over replicas (a grow-only counter per replica): each snapshot
	// carries its replica's own, which replace what the previous one of
	// that replica added.
	d.mergeTally(s, d.peer(it.own, local))
	d.mergeLegacy(d.peer(it.legacy, local), sums)
	if m.Final {
		d.fold(m.Replica, m.Created.UnixNano())
	}
	return nil
}

// mergeable checks that s can be merged into the model with weight w, and
// says whether it has the model's architecture (averaging needs it).
func (d *DQN) mergeable(s *Snapshot, w float64, average bool) (sameNet bool, err error) {
	m := s.Meta
	if w < 0 || w > 1 {
		return false, fmt.Errorf("merge weight %g is not within [0, 1]", w)
	}
	if m.Dim != d.cfg.Dim || m.In != d.in {
		return false, fmt.Errorf("cannot merge a snapshot of dim %d (input %d) into a model of dim %d (input %d)", m.Dim, m.In, d.cfg.Dim, d.in)
	}
	sameNet = slices.Equal(m.Widths, d.net.widths())
	if average && !sameNet {
		return false, fmt.Errorf("cannot merge a snapshot of widths %v into a model of widths %v: apply the architecture change first", m.Widths, d.net.widths())
	}
	return sameNet, nil
}

// averageTensors averages the tensors that are not summed (all but the
// online network's: mergeNet) with the snapshot's, which weighs w.
func (d *DQN) averageTensors(s *Snapshot, w float64) {
	a, b := float32(1-w), float32(w)
	for _, t := range d.netTensors8() {
		if strings.HasPrefix(t.name, "net.") {
			continue
		}
		for j, v := range s.rows[t.name].f32 {
			t.data[j] = a*t.data[j] + b*v
		}
	}
}

// mergeItems adds the items of it the model does not know, with their
// values, and (if average) averages those it knows, each weighed by the
// interactions each side learned (see Merge). It returns the model's index
// of each of the snapshot's items.
func (d *DQN) mergeItems(it snapItems, w float64, average bool) []int32 {
	dim := d.cfg.Dim
	a, b := float32(1-w), float32(w)
	if d.merged == nil {
		d.merged = slices.Clone(d.fresh)
	}
	local := make([]int32, len(it.ids)) // the snapshot's item index -> ours
	for k, id := range it.ids {
		x, known := d.items.Lookup(id)
		local[k] = x
		if !known {
			x = d.items.Add(id)
			local[k] = x
			switch {
			case d.tab != nil:
				d.tab.add(it.tier[k], it.eout[k*dim:k*dim+d.tab.widths[it.tier[k]]])
			case !d.cfg.Tied:
				d.ein = append(d.ein, it.ein[k*dim:(k+1)*dim]...)
				fallthrough
			default:
				d.eout = append(d.eout, it.eout[k*dim:(k+1)*dim]...)
				d.tie()
			}
			d.bias = append(d.bias, it.bias[k])
			d.fresh = append(d.fresh, 0)
			d.merged = append(d.merged, it.fresh[k])
			d.co.grow(x)
			continue
		}
		if !average {
			continue
		}
		ia, ib := a, b
		if own, other := d.merged[x], it.fresh[k]; own+other > 0 {
			ib = other / (own + other)
			ia = 1 - ib
		}
		d.merged[x] += it.fresh[k]
		if d.tab != nil {
			// The wider row wins the width (exactly: the new values are 0);
			// the narrower one's missing values average in as 0.
			if it.tier[k] > int(d.tab.tier[x]) {
				d.tab.move(x, it.tier[k], 0, nil)
			}
			row := d.tab.row(x)
			for j := range row {
				row[j] = ia*row[j] + ib*it.eout[k*dim+j]
			}
			d.bias[x] = ia*d.bias[x] + ib*it.bias[k]
			continue
		}
		for j := range dim {
			if !d.cfg.Tied {
				d.ein[int(x)*dim+j] = ia*d.ein[int(x)*dim+j] + ib*it.ein[k*dim+j]
			}
			d.eout[int(x)*dim+j] = ia*d.eout[int(x)*dim+j] + ib*it.eout[k*dim+j]
		}
		d.bias[x] = ia*d.bias[x] + ib*it.bias[k]
	}
	d.growSeen() // a peer's new items count as seen now
	return local
}
