package model

import "fmt"

// Besides the network, three things the DQN learns add up over replicas
// (see replicaSums): the co-occurrence counts, the sequential rules and
// the recency popularity. The model's tables hold the sum; what a replica
// learned itself is the sum less the merged peers' and the legacy's, and
// that is what its snapshots carry.

// peerTally is what one peer (or the legacy) added to the model's tables:
// its co-occurrence counts and sequential rules as its snapshot carried
// them (local maps them to our items; sr is nil for a snapshot from
// before the rules), and its recency popularity in our items, in the
// model's recency scale (d.pop.w) at the time it was added.
type peerTally struct {
	co, sr *coocTable
	pop    []float64
}

// tallies are peer tallies added up, in our items: the legacy.
type tallies struct {
	co, sr cooc
	pop    []float64
}

// apply adds sign × p to the model's tables.
func (d *DQN) apply(p peerTally, sign float64) {
	d.co.apply(p.co, sign)
	if p.sr != nil {
		d.rules.apply(p.sr, sign)
	}
	d.pop.grow(len(p.pop))
	for x, v := range p.pop {
		d.pop.score[x] += sign * v
	}
}

// apply adds sign × p to the legacy.
func (l *tallies) apply(p peerTally, sign float64) {
	l.co.apply(p.co, sign)
	if p.sr != nil {
		l.sr.apply(p.sr, sign)
	}
	l.pop = addVec(l.pop, p.pop, sign)
}

// peer is the legacy as one peer tally.
func (l *tallies) peer() peerTally {
	return peerTally{co: l.co.table(), sr: l.sr.table(), pop: l.pop}
}

// addVec adds sign × b to a, growing a to b's length.
func addVec(a, b []float64, sign float64) []float64 {
	for len(a) < len(b) {
		a = append(a, 0)
	}
	for i, v := range b {
		a[i] += sign * v
	}
	return a
}

// scaled is a snapshot's recency popularity pop (normalised: its newest
// event weighs 1; in its items, local maps them to ours) in our items and
// the model's recency scale.
func (d *DQN) scaled(pop []float64, local []int32) []float64 {
	w := max(d.pop.w, 1)
	out := make([]float64, len(d.bias))
	for k, v := range pop {
		out[local[k]] = v * w
	}
	return out
}

// rescalePop divides every popularity in the model's recency scale by f:
// after the recency expert rebased its weights.
func (d *DQN) rescalePop(f float64) {
	scale := func(v []float64) {
		for i := range v {
			v[i] /= f
		}
	}
	for _, p := range d.sums.peerT {
		scale(p.pop)
	}
	scale(d.sums.legacyT.pop)
}

// csr64 is a count table in CSR form with float64 values, in our items.
type csr64 struct {
	count   []float64
	offsets []int32
	nbr     []int32
	counts  []float64
}

// table is t with float32 values, as snapshots carry it.
func (t csr64) table() *coocTable {
	out := &coocTable{count: make([]float32, len(t.count)), offsets: t.offsets, nbr: t.nbr, counts: make([]float32, len(t.counts))}
	for i, v := range t.count {
		out.count[i] = float32(v)
	}
	for i, v := range t.counts {
		out.counts[i] = float32(v)
	}
	out.local = identity(len(t.count))
	return out
}

// ownTable is c less the peers' tables and the legacy: what this replica
// counted itself. Pairs only others counted are left out.
func ownTable(c *cooc, peers []*coocTable, legacy *cooc) csr64 {
	t := csr64{count: make([]float64, len(c.count)), offsets: make([]int32, 1, len(c.count)+1)}
	copy(t.count, c.count)
	for _, nb := range c.nbrs {
		t.nbr = append(t.nbr, nb.item...)
		t.counts = append(t.counts, nb.count...)
		t.offsets = append(t.offsets, int32(len(t.nbr)))
	}
	if len(peers) == 0 && len(legacy.count) == 0 {
		return t
	}
	for _, p := range peers {
		for k := range p.count {
			x := p.local[k]
			if x < 0 { // expired: the model lost it too (expire.go)
				continue
			}
			t.count[x] -= float64(p.count[k])
			nb := &c.nbrs[x]
			for j := p.offsets[k]; j < p.offsets[k+1]; j++ {
				if y := p.local[p.nbr[j]]; y >= 0 {
					t.counts[t.offsets[x]+place(nb, y)] -= float64(p.counts[j])
				}
			}
		}
	}
	for x, n := range legacy.count {
		t.count[x] -= n
		nb, ours := legacy.nbrs[x], &c.nbrs[x]
		for j, y := range nb.item {
			t.counts[t.offsets[x]+place(ours, y)] -= nb.count[j]
		}
	}
	n := 0
	for x := range len(t.offsets) - 1 {
		lo, hi := t.offsets[x], t.offsets[x+1]
		t.offsets[x] = int32(n)
		for j := lo; j < hi; j++ {
			if t.counts[j] != 0 {
				t.nbr[n], t.counts[n] = t.nbr[j], t.counts[j]
				n++
			}
		}
	}
	t.offsets[len(t.offsets)-1] = int32(n)
	t.nbr, t.counts = t.nbr[:n], t.counts[:n]
	return t
}

// ownTables are the co-occurrence counts, the sequential rules and the
// recency popularity (in the model's scale) this replica learned itself.
func (d *DQN) ownTables() (co, sr csr64, pop []float64) {
	var peerCo, peerSR []*coocTable
	pop = append([]float64(nil), d.pop.score...)
	for _, p := range d.sums.peerT {
		peerCo = append(peerCo, p.co)
		if p.sr != nil {
			peerSR = append(peerSR, p.sr)
		}
		pop = addVec(pop, p.pop, -1)
	}
	pop = addVec(pop, d.sums.legacyT.pop, -1)
	return ownTable(&d.co, peerCo, &d.sums.legacyT.co), ownTable(&d.rules, peerSR, &d.sums.legacyT.sr), pop
}

// ownCooc is what this replica counted itself of the co-occurrences.
func (d *DQN) ownCooc() *coocTable {
	co, _, _ := d.ownTables()
	return co.table()
}

// snapTally is what a snapshot carries of its writer's own learning, and
// of its legacy, besides the network: tables in the snapshot's items.
type snapTally struct {
	co, sr *coocTable
	pop    []float64 // normalised: the writer's newest event weighs 1
}

// readTally reads a snapshot's own (prefixes cooc and sr, popularity
// mix.pop.bits) or legacy tables (legacy.cooc, legacy.sr, legacy.pop),
// for n items. A snapshot from before the rules or the popularity has
// none of them.
func readTally(s *Snapshot, legacy bool, n int) (t snapTally, err error) {
	co, sr := "cooc", "sr"
	if legacy {
		co, sr = "legacy.cooc", "legacy.sr"
	}
	if t.co, err = readTable(s, co, n); err != nil {
		return t, err
	}
	if _, ok := s.rows[sr+".count"]; ok {
		if t.sr, err = readTable(s, sr, n); err != nil {
			return t, err
		}
	}
	if legacy {
		p := s.rows["legacy.pop"].f32
		if len(p) > n {
			return t, fmt.Errorf("snapshot's legacy.pop holds %d values, want at most %d", len(p), n)
		}
		for _, v := range p {
			t.pop = append(t.pop, float64(v))
		}
		return t, nil
	}
	if p := readPop(s); p.w > 0 {
		t.pop = make([]float64, len(p.score))
		for i, v := range p.score {
			t.pop[i] = v / p.w
		}
	}
	return t, nil
}

// peer is t in our items (local) and the model's recency scale.
func (d *DQN) peer(t snapTally, local []int32) peerTally {
	p := peerTally{co: t.co, sr: t.sr, pop: d.scaled(t.pop, local)}
	p.co.local = local
	if p.sr != nil {
		p.sr.local = local
	}
	return p
}

// legacyRows are the legacy's snapshot rows: its tables and its
// popularity, normalised.
func (d *DQN) legacyRows() []row {
	l := &d.sums.legacyT
	pop := make([]float32, len(l.pop))
	w := max(d.pop.w, 1)
	for i, v := range l.pop {
		pop[i] = float32(v / w)
	}
	rows := append(l.co.table().rows("legacy.cooc"), l.sr.table().rows("legacy.sr")...)
	return append(rows, row{name: "legacy.pop", shape: []int64{int64(len(pop))}, f32: pop})
}

// place is y's place in row nb; every pair a peer or the legacy counted
// is in it (merged before), and, as an index map's zero value did, 0 if
// not.
func place(nb *neighbours, y int32) int32 {
	p, _ := nb.at(y)
	return p
}
