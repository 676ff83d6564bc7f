package model

import (
	"fmt"
	"math"
)

// ItemKNNConfig configures ItemKNN.
type ItemKNNConfig struct {
	// Window is how many of a user's last items co-occur with a new one and
	// score candidates (L).
	Window int
	// Decay weighs the user's k-th most recent item by Decay^k when scoring.
	Decay float64
	Shared
}

// ItemKNN is incremental item-to-item collaborative filtering: two items
// co-occur when one user consumes them within Window items of each other;
// their similarity is the cosine of their co-occurrence, count(x,y) /
// sqrt(count(x)·count(y)). A user's candidates are scored by the similarity
// to the user's recent items, the most recent weighing most; ties (such as
// a user with no history) fall back to popularity.
type ItemKNN struct {
	baseline
	cfg ItemKNNConfig
	co  cooc
}

// cooc is the incremental co-occurrence table behind ItemKNN, also an input
// of the DQN.
type cooc struct {
	count []float64 // interactions per item
	nbrs  []neighbours
	pairs int64
}

// grow makes room for item x.
func (c *cooc) grow(x int32) {
	for int(x) >= len(c.count) {
		c.count = append(c.count, 0)
		c.nbrs = append(c.nbrs, neighbours{})
	}
}

// add records an interaction with x after the recent items.
func (c *cooc) add(x int32, recent []int32) {
	c.grow(x)
	c.count[x]++
	for _, y := range recent {
		if y == x {
			continue
		}
		if c.nbrs[x].add(y) {
			c.pairs++
		}
		if c.nbrs[y].add(x) {
			c.pairs++
		}
	}
}

// norm is 1/√count of item x. An item can neighbour others before it is
// counted (a user's state rebuilt by Observe, or a merged replica's
// pairs), so it is counted as at least once.
func (c *cooc) norm(x int32) float64 { return 1 / math.Sqrt(max(c.count[x], 1)) }

// score fills out (one entry per item) with the decayed cosine similarity
// of every item to the recent items (oldest first).
func (c *cooc) score(recent []int32, decay float64, out []float64) {
	clear(out)
	w := 1.0
	for r := len(recent) - 1; r >= 0; r-- {
		y := recent[r]
		ny := c.nbrs[y]
		inv := w * c.norm(y)
		for j, it := range ny.item {
			out[it] += inv * ny.count[j] * c.norm(it)
		}
		w *= decay
	}
}

// scoreOf is score for one item.
func (c *cooc) scoreOf(recent []int32, decay float64, item int32) float64 {
	s, w := 0.0, 1.0
	for r := len(recent) - 1; r >= 0; r-- {
		y := recent[r]
		if p, ok := c.nbrs[y].at(item); ok {
			s += w * c.nbrs[y].count[p] * c.norm(y) * c.norm(item)
		}
		w *= decay
	}
	return s
}

// neighbours is one item's co-occurrence row: parallel slices for fast
// scans, and an index of each item's place in them for lookups.
type neighbours struct {
	item  []int32
	count []float64
	pos   posIndex
}

// at is the place of item in the row.
func (n *neighbours) at(item int32) (int32, bool) { return n.pos.get(item, n.item) }

func (n *neighbours) add(item int32) bool { return n.bump(item, 1) }

// bump adds by to the count of item, adding the item if it is new (which
// it reports).
func (n *neighbours) bump(item int32, by float64) bool {
	if p, ok := n.at(item); ok {
		n.count[p] += by
		return false
	}
	n.item = append(n.item, item)
	n.count = append(n.count, by)
	n.pos.put(n.item)
	return true
}

// reindex rebuilds the index after the row's items were rewritten.
func (n *neighbours) reindex() { n.pos.rebuild(n.item) }

// posIndex finds an item's place in a row of items (the row is passed
// in: the index keeps only places). A row of up to posScan items is
// scanned; a longer one has an open-addressing table of places plus one
// (0: empty), at most half full, probed linearly from a multiplicative
// hash of the item. It replaced a Go map, whose lookups took 16% of
// the default model's time learning ml-latest-small; a long row's table
// takes 8 to 16 bytes an entry, and a short row none.
type posIndex struct {
	slots []int32
	shift uint8
}

// posScan is the longest row found by scanning.
const posScan = 16

// hash is the first slot to probe for item.
func (x *posIndex) hash(item int32) int { return int(uint32(item) * 0x9E3779B1 >> x.shift) }

// get is the place of item in row.
func (x *posIndex) get(item int32, row []int32) (int32, bool) {
	if x.slots == nil {
		for p, it := range row {
			if it == item {
				return int32(p), true
			}
		}
		return 0, false
	}
	mask := len(x.slots) - 1
	for i := x.hash(item); ; i = (i + 1) & mask {
		p := x.slots[i]
		if p == 0 {
			return 0, false
		}
		if row[p-1] == item {
			return p - 1, true
		}
	}
}

// put indexes the last item of row, just appended (and not in it before).
func (x *posIndex) put(row []int32) {
	switch {
	case len(row) <= posScan:
		return
	case x.slots == nil || 2*len(row) > len(x.slots):
		x.rebuild(row)
		return
	}
	x.insert(row[len(row)-1], int32(len(row)))
}

// insert puts place p (plus one) of item in the first free slot.
func (x *posIndex) insert(item, p int32) {
	mask := len(x.slots) - 1
	i := x.hash(item)
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = p
}

// rebuild indexes every item of row afresh, in a table at most half full.
func (x *posIndex) rebuild(row []int32) {
	if len(row) <= posScan {
		x.slots = nil
		return
	}
	bits := uint8(5)
	for 1<<bits < 2*len(row) {
		bits++
	}
	if len(x.slots) == 1<<bits {
		clear(x.slots)
	} else {
		x.slots = make([]int32, 1<<bits)
	}
	x.shift = 32 - bits
	for p, it := range row {
		x.insert(it, int32(p+1))
	}
}

// coocTable is a co-occurrence table as a snapshot carries it (CSR over
// the snapshot's item order, rows for its first len(count) items), with
// the snapshot's items in our indices.
type coocTable struct {
	local   []int32 // the snapshot's item k is our local[k]
	count   []float32
	offsets []int32
	nbr     []int32 // the snapshot's item indices
	counts  []float32
}

// identity is the item mapping of a table in our own indices.
func identity(n int) []int32 {
	local := make([]int32, n)
	for i := range local {
		local[i] = int32(i)
	}
	return local
}

// table is c as a table, in c's indices.
func (c *cooc) table() *coocTable {
	t := &coocTable{count: make([]float32, len(c.count)), offsets: make([]int32, 0, len(c.nbrs)+1)}
	for i, n := range c.count {
		t.count[i] = float32(n)
	}
	t.offsets = append(t.offsets, 0)
	for _, nb := range c.nbrs {
		t.nbr = append(t.nbr, nb.item...)
		for _, n := range nb.count {
			t.counts = append(t.counts, float32(n))
		}
		t.offsets = append(t.offsets, int32(len(t.nbr)))
	}
	t.local = identity(len(c.count))
	return t
}

// rows are t's snapshot rows, named prefix.count, .offsets, .items and
// .counts.
func (t *coocTable) rows(prefix string) []row {
	return []row{
		{name: prefix + ".count", shape: []int64{int64(len(t.count))}, f32: t.count},
		{name: prefix + ".offsets", shape: []int64{int64(len(t.offsets))}, i32: t.offsets},
		{name: prefix + ".items", shape: []int64{int64(len(t.nbr))}, i32: t.nbr},
		{name: prefix + ".counts", shape: []int64{int64(len(t.counts))}, f32: t.counts},
	}
}

// readTable reads the table a snapshot of n items carries under prefix
// (rows for at most its n items, neighbours among them); local is not
// set.
func readTable(s *Snapshot, prefix string, n int) (*coocTable, error) {
	t := &coocTable{count: s.rows[prefix+".count"].f32, offsets: s.rows[prefix+".offsets"].i32, nbr: s.rows[prefix+".items"].i32, counts: s.rows[prefix+".counts"].f32}
	m := len(t.count)
	if m > n || len(t.offsets) != m+1 || len(t.nbr) != len(t.counts) || int(t.offsets[m]) != len(t.nbr) {
		return nil, fmt.Errorf("snapshot's %s table is inconsistent", prefix)
	}
	if t.offsets[0] != 0 {
		return nil, fmt.Errorf("snapshot's %s table is inconsistent", prefix)
	}
	for k := range m {
		if t.offsets[k] > t.offsets[k+1] {
			return nil, fmt.Errorf("snapshot's %s table is inconsistent", prefix)
		}
	}
	for _, y := range t.nbr {
		if y < 0 || int(y) >= n {
			return nil, fmt.Errorf("snapshot's %s table names item %d of %d", prefix, y, n)
		}
	}
	return t, nil
}

// apply adds sign × t to c.
func (c *cooc) apply(t *coocTable, sign float64) {
	for k := range t.count {
		x := t.local[k]
		if x < 0 { // expired since the table was read
			continue
		}
		c.grow(x)
		c.count[x] += sign * float64(t.count[k])
		for j := t.offsets[k]; j < t.offsets[k+1]; j++ {
			if y := t.local[t.nbr[j]]; y >= 0 && c.nbrs[x].bump(y, sign*float64(t.counts[j])) {
				c.pairs++
			}
		}
	}
}

// NewItemKNN returns an empty ItemKNN.
func NewItemKNN(cfg ItemKNNConfig) *ItemKNN {
	k := &ItemKNN{cfg: cfg}
	k.baseline = baseline{name: "itemknn", topN: cfg.TopN, s: k, items: NewVocab(),
		users: newUsers(cfg.Shared, cfg.Window, nil)}
	return k
}

// learn implements scorer.
func (k *ItemKNN) learn(x int32, u *UserState) { k.co.add(x, u.Recent) }

// score implements scorer.
func (k *ItemKNN) score(u *UserState, out []float64) { k.co.score(u.Recent, k.cfg.Decay, out) }

// params implements scorer: the co-occurrence counts kept (each pair is
// stored in both rows) plus the item counts.
func (k *ItemKNN) params() int { return int(k.co.pairs) + len(k.co.count) }
