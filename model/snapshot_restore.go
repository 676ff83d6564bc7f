package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Restore replaces the DQN's state with the snapshot's: the architecture,
// both networks, the optimiser state, the item tables, the vocabulary, the
// co-occurrence table, the random generator, the replay buffer and the
// users' session state, so that the restored model continues exactly as
// the original would have (with the mixture's hit rates and sequential
// rules, which a snapshot from before them leaves empty). A snapshot of another input or embedding width
// is refused.
func (d *DQN) Restore(s *Snapshot) error {
	m := s.Meta
	nets, err := d.loadNets(s, "loaded into")
	if err != nil {
		return err
	}
	if ids, ok := s.rows["items.ids"]; !ok || len(ids.str) != m.Items {
		return fmt.Errorf("snapshot's vocabulary does not hold its %d items", m.Items)
	}
	it, err := s.items(d.cfg.Dim, d.cfg.Tied, d.tierWidths())
	if err != nil {
		return err
	}
	n := len(it.ids)
	mix, rules, err := readMix(s, n)
	if err != nil {
		return err
	}
	if err := d.restoreState(s); err != nil {
		return err
	}
	// All checked: replace the state.
	d.restoreWidths(s)
	d.refMoved = nil // rows of the items before: no pending tier decision survives
	d.mix.quality, d.mix.gain, d.mix.checks, d.mix.seen, d.rules, d.pop = mix.quality, mix.gain, mix.checks, mix.seen, rules, readPop(s)
	d.trend = readRecency(s, "mix.trend.bits")
	if err := d.setNets(nets, m.AdamT); err != nil {
		return err
	}
	d.items = NewVocab()
	for _, id := range it.ids {
		d.items.Add(id)
	}
	// The model owns its state: one snapshot can restore several.
	d.ein, d.eout, d.bias = slices.Clone(it.ein), slices.Clone(it.eout), slices.Clone(it.bias)
	d.tie()
	if d.tab != nil {
		if len(m.TierAt) == len(d.cfg.TierAt) { // absent before the controller scaled them
			d.tierAt = slices.Clone(m.TierAt)
		}
		d.tab, _ = newTiers(d.tab.widths)
		for k, tr := range it.tier {
			d.tab.add(tr, it.eout[k*d.cfg.Dim:k*d.cfg.Dim+d.tab.widths[tr]])
		}
		d.ein, d.eout = nil, nil
	}
	d.fresh, d.merged = make([]float32, n), nil
	d.seen = nil
	if seen := s.rows["items.seen"].i64; len(seen) == n {
		d.seen = slices.Clone(seen)
	}
	d.growSeen()
	// The tables are the snapshot's own plus its legacy.
	d.co, d.sums.legacyT, d.sums.peerT = cooc{}, tallies{}, nil
	d.co.grow(int32(n) - 1)
	own, legacy := d.peer(it.own, identity(n)), d.peer(it.legacy, identity(n))
	d.co.apply(own.co, 1) // the own rules and popularity are restored exactly above
	d.apply(legacy, 1)
	d.sums.legacyT.apply(legacy, 1)
	d.inheritSums(s, nets.sums)
	d.restoreSums(s, nets.sums, own)
	d.steps, d.batches = m.Steps, m.Batches
	return nil
}

// floats returns a copy of the snapshot's tensor name, which must have n
// values (the model owns its state: one snapshot can restore several).
func (s *Snapshot) floats(name string, n int) ([]float32, error) {
	r, ok := s.rows[name]
	if !ok {
		return nil, fmt.Errorf("snapshot lacks %s", name)
	}
	if len(r.f32) != n {
		return nil, fmt.Errorf("snapshot's %s has %d values, the architecture needs %d", name, len(r.f32), n)
	}
	return slices.Clone(r.f32), nil
}

// snapNets are the networks of a snapshot: online, target, and the Adam
// moments of each layer's weights and biases.
type snapNets struct {
	net, target *qnet
	mom         []struct{ mW, vW, mB, vB []float32 }
	sums        snapSums
}

// loadNets reads the snapshot's networks at its architecture; a snapshot
// of another input or embedding width cannot be used (how: "loaded into",
// "adopted by").
func (d *DQN) loadNets(s *Snapshot, how string) (snapNets, error) {
	if m := s.Meta; m.Dim != d.cfg.Dim || m.In != d.in {
		return snapNets{}, fmt.Errorf("snapshot of a DQN with dim %d (input %d) cannot be %s one with dim %d (input %d)", m.Dim, m.In, how, d.cfg.Dim, d.in)
	}
	net := newQNet(d.in, d.cfg.Dim, s.Meta.Widths, rand.New(rand.NewPCG(0, 0))) // every weight is overwritten
	net.skip = d.net.skip
	out := snapNets{net: net, target: net.clone()}
	names := layerNames(net)
	out.mom = make([]struct{ mW, vW, mB, vB []float32 }, len(names))
	for i, l := range net.layers() {
		tl, mom := out.target.layers()[i], &out.mom[i]
		var err error
		load := func(dst *[]float32, name string, n int) {
			if err == nil {
				var v []float32
				if v, err = s.floats(name, n); err == nil {
					*dst = v
				}
			}
		}
		load(&l.W, "net."+names[i]+".W", len(l.W))
		load(&l.B, "net."+names[i]+".B", len(l.B))
		load(&tl.W, "target."+names[i]+".W", len(tl.W))
		load(&tl.B, "target."+names[i]+".B", len(tl.B))
		load(&mom.mW, "adam.m."+names[i]+".W", len(l.W))
		load(&mom.vW, "adam.v."+names[i]+".W", len(l.W))
		load(&mom.mB, "adam.m."+names[i]+".B", len(l.B))
		load(&mom.vB, "adam.v."+names[i]+".B", len(l.B))
		if err != nil {
			return snapNets{}, err
		}
	}
	var err error
	if out.sums, err = snapshotSums(s, net); err != nil {
		return snapNets{}, err
	}
	return out, nil
}

// setNets makes n the model's networks and optimiser state (at Adam step
// t) and rebuilds the training graph.
func (d *DQN) setNets(n snapNets, t int) error {
	d.net, d.target = n.net, n.target
	if err := d.rebuild(); err != nil {
		return err
	}
	for i, m := range n.mom {
		d.opts[2*i].m, d.opts[2*i].v, d.opts[2*i].t = m.mW, m.vW, t
		d.opts[2*i+1].m, d.opts[2*i+1].v, d.opts[2*i+1].t = m.mB, m.vB, t
	}
	return nil
}

// Adopt takes the snapshot's networks (online, target, Adam moments) in
// place of the model's own, at the snapshot's architecture: how a replica
// applies an architecture change of the group's decider before it merges
// with it. The item tables, the vocabulary, the co-occurrence table, the
// replay buffer and the users stay the model's own.
func (d *DQN) Adopt(s *Snapshot) error {
	m := s.Meta
	nets, err := d.loadNets(s, "adopted by")
	if err != nil {
		return err
	}
	if err := d.setNets(nets, m.AdamT); err != nil {
		return err
	}
	d.inheritSums(s, nets.sums)
	// The decider's tier thresholds too: the architecture covers the tables.
	if d.tab != nil && len(m.TierAt) == len(d.tierAt) && !slices.Equal(m.TierAt, d.tierAt) {
		d.setTierAt(m.TierAt)
	}
	return nil
}

// snapItems are a snapshot's item tables and co-occurrence counts, checked
// against its vocabulary; not copies (a snapshot may be read again).
type snapItems struct {
	ids                    []string
	ein, eout, bias, fresh []float32 // ein is eout when tied
	tier                   []int     // with tiers: each item's tier (eout padded to dim)
	own, legacy            snapTally
}

// items reads the item tables of s, whose embeddings have dim values and
// are tied (one table, no items.ein row) or not, and in tiers of the
// widths tiers (items.width) or not (tiers nil), as the model's are.
func (s *Snapshot) items(dim int, tied bool, tiers []int) (snapItems, error) {
	ein, untied := s.rows["items.ein"]
	if untied == tied {
		return snapItems{}, fmt.Errorf("snapshot's item embeddings are %s, recommender.dqn.tied is %v", map[bool]string{true: "two tables (untied)", false: "one table (tied)"}[untied], tied)
	}
	it := snapItems{
		ids: s.rows["items.ids"].str, ein: ein.f32, eout: s.rows["items.eout"].f32,
		bias: s.rows["items.bias"].f32, fresh: s.rows["items.fresh"].f32,
	}
	if tied {
		it.ein = it.eout
	}
	n := len(it.ids)
	if len(it.ein) != n*dim || len(it.eout) != n*dim || len(it.bias) != n || len(it.fresh) != n {
		return snapItems{}, fmt.Errorf("snapshot's item tables do not match its vocabulary")
	}
	widths, tiered := s.rows["items.width"]
	if tiered != (tiers != nil) {
		return snapItems{}, fmt.Errorf("snapshot's item embeddings are %s, recommender.dqn.tiers is %v", map[bool]string{true: "in tiers of width", false: "all one width"}[tiered], tiers[:max(len(tiers)-1, 0)])
	}
	if tiered {
		if len(widths.i64) != n {
			return snapItems{}, fmt.Errorf("snapshot's items.width holds %d widths for %d items", len(widths.i64), n)
		}
		it.tier = make([]int, n)
		for k, w := range widths.i64 {
			if it.tier[k] = slices.Index(tiers, int(w)); it.tier[k] < 0 {
				return snapItems{}, fmt.Errorf("snapshot's item %q is %d wide, not one of the widths %v (recommender.dqn.tiers and dim)", it.ids[k], w, tiers)
			}
		}
	}
	var err error
	if it.own, err = readTally(s, false, n); err != nil {
		return snapItems{}, err
	}
	if it.legacy, err = readTally(s, true, n); err != nil {
		return snapItems{}, err
	}
	return it, nil
}
