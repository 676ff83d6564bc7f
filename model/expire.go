package model

import (
	"cmp"
	"slices"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// Item expiry (recommender.max_items). A model holds at most cfg.MaxItems
// items: once a batch leaves it with more, it expires the least recently
// seen (by event time; ties: the older index) down to nine tenths of the
// bound, so that a sweep comes at most once every tenth of it. An expired
// item leaves everything: its embedding row, bias and counters, its
// co-occurrence and rule entries in every other item's, the histories and
// consumed sets of the users, the replay buffer's transitions that chose
// it (and its place in the others' states), the replicas' tallies. The
// items that stay keep their order and everything about them, under new
// indices; an expired item seen again is a new item. Memory for items and
// their co-occurrence entries is then bounded, however the catalogue
// churns.

// seenItem records that item x had an event at ts (event time).
func (d *DQN) seenItem(x int32, ts int64) {
	d.seen[x] = max(d.seen[x], ts)
}

// growSeen gives the items added since the last call the user clock's
// time as their last seen; every path that adds items calls it (addItem,
// mergeItems, Restore).
func (d *DQN) growSeen() {
	for len(d.seen) < len(d.bias) {
		d.seen = append(d.seen, d.users.Clock())
	}
}

// boundItems expires the least recently seen items past cfg.MaxItems.
func (d *DQN) boundItems() {
	n := len(d.bias)
	if d.cfg.MaxItems <= 0 || n <= d.cfg.MaxItems {
		return
	}
	keep := max(d.cfg.MaxItems-d.cfg.MaxItems/10, 1)
	byAge := make([]int32, n)
	for x := range byAge {
		byAge[x] = int32(x)
	}
	slices.SortFunc(byAge, func(a, b int32) int { return cmp.Or(cmp.Compare(d.seen[a], d.seen[b]), cmp.Compare(a, b)) })
	m := make([]int32, n)
	for _, x := range byAge[:n-keep] {
		m[x] = -1
	}
	next := int32(0)
	for x := range m {
		if m[x] == 0 {
			m[x], next = next, next+1
		}
	}
	d.remapItems(m, keep)
	d.expired.Add(int64(n - keep))
}

// ItemsExpired implements ItemExpirer: the number of items expired so
// far.
func (d *DQN) ItemsExpired() int64 { return d.expired.Load() }

// remapItems moves every item x to m[x] (-1: expired), m keeping the order
// of the n items that stay, through all of the model's state.
func (d *DQN) remapItems(m []int32, n int) {
	d.items.remap(m, n)
	if d.tab != nil {
		d.tab.remap(m, n)
	} else {
		d.eout = remapRows(d.eout, m, n, d.cfg.Dim)
		if !d.cfg.Tied {
			d.ein = remapRows(d.ein, m, n, d.cfg.Dim)
		}
		d.tie()
	}
	d.bias = remapRows(d.bias, m, n, 1)
	d.fresh = remapRows(d.fresh, m, n, 1)
	if d.merged != nil {
		d.merged = remapRows(d.merged, m, n, 1)
	}
	d.seen = remapRows(d.seen, m, n, 1)
	d.pop.grow(len(m))
	d.pop.score = remapRows(d.pop.score, m, n, 1)
	d.trend.grow(len(m))
	d.trend.score = remapRows(d.trend.score, m, n, 1)
	d.co.remap(m, n)
	d.rules.remap(m, n)
	l := &d.sums.legacyT
	l.co.remap(m, n)
	l.sr.remap(m, n)
	l.pop = remapVec(l.pop, m, n)
	for name, p := range d.sums.peerT {
		for _, t := range []*coocTable{p.co, p.sr} {
			if t == nil {
				continue
			}
			for k, x := range t.local {
				if x >= 0 {
					t.local[k] = m[x]
				}
			}
		}
		p.pop = remapVec(p.pop, m, n)
		d.sums.peerT[name] = p
	}
	d.users.remapItems(m)
	d.replay = remapRing(d.replay, d.replayNext, m)
	d.replayNext = 0
	d.pending = remapTransitions(d.pending, m)
	d.ready = remapTransitions(d.ready, m)
	for u, h := range d.held {
		d.held[u] = remapTransitions(h, m)
	}
	moved := d.refMoved[:0]
	for _, r := range d.refMoved {
		if r.x = m[r.x]; r.x >= 0 {
			moved = append(moved, r)
		}
	}
	d.refMoved = moved
}

// remapRows moves row x of s (w values each) to row m[x] (m ascending on
// the rows that stay, so in place), keeping n rows.
func remapRows[T any](s []T, m []int32, n, w int) []T {
	for x, y := range m {
		if y >= 0 && int(y) != x {
			copy(s[int(y)*w:int(y+1)*w], s[x*w:(x+1)*w])
		}
	}
	clear(s[n*w:])
	return s[:n*w]
}

// remapVec is remapRows for a vector that may be shorter than m (the rest
// being zero).
func remapVec(s []float64, m []int32, n int) []float64 {
	s = addVec(s, make([]float64, len(m)), 1)
	return remapRows(s, m, n, 1)
}

// remap moves the IDs as remapItems does.
func (v *Vocab) remap(m []int32, n int) {
	for x, id := range v.ids {
		if m[x] < 0 {
			delete(v.index, id)
			continue
		}
		v.ids[m[x]] = id
		v.index[id] = m[x]
	}
	clear(v.ids[n:])
	v.ids = v.ids[:n]
}

// remap moves the rows as remapItems does.
func (t *tiers) remap(m []int32, n int) {
	for x, y := range m {
		if y < 0 {
			t.remove(int32(x))
		}
	}
	for tr := range t.items {
		for s, x := range t.items[tr] {
			t.items[tr][s] = m[x]
		}
	}
	t.tier = remapRows(t.tier, m, n, 1)
	t.slot = remapRows(t.slot, m, n, 1)
}

// remap moves the items and their entries as remapItems does: an expired
// item's row and its entries in the others' rows go.
func (c *cooc) remap(m []int32, n int) {
	if len(c.count) == 0 {
		return
	}
	c.pairs = 0
	kept := 0
	for x, y := range m[:len(c.count)] {
		if y < 0 {
			continue
		}
		nb := c.nbrs[x]
		w := 0
		for j, it := range nb.item {
			if z := m[it]; z >= 0 {
				nb.item[w], nb.count[w] = z, nb.count[j]
				w++
			}
		}
		nb.item, nb.count = nb.item[:w], nb.count[:w]
		nb.reindex()
		c.pairs += int64(w)
		c.count[y], c.nbrs[y] = c.count[x], nb
		kept = int(y) + 1
	}
	clear(c.nbrs[kept:])
	c.count, c.nbrs = c.count[:kept], c.nbrs[:kept]
}

// remapItems moves the users' items as remapItems does: expired items
// leave their histories and consumed sets.
func (s *UserStore) remapItems(m []int32) {
	s.lru.Each(func(_ string, u *UserState) {
		w := remapHistory(u.Recent, u.RecentTypes, m)
		u.Recent, u.RecentTypes = u.Recent[:w], u.RecentTypes[:w]
		consumed := make(map[int32]struct{}, len(u.Consumed))
		for it := range u.Consumed {
			if z := m[it]; z >= 0 {
				consumed[z] = struct{}{}
			}
		}
		u.Consumed = consumed
	})
	if s.lite == nil {
		return
	}
	for i := s.lite.oldest; i >= 0; i = s.lite.nodes[i].newer {
		l := &s.lite.nodes[i]
		if l.item < 0 {
			continue
		}
		if l.item = m[l.item]; l.item < 0 {
			l.flags &^= liteRecent
			l.typ = 0
		}
	}
}

// remapHistory moves the items of a history (and their feedback types
// beside them) as remapItems does, in place, dropping the expired ones;
// it returns how many are left.
func remapHistory(items []int32, types []feedback.Type, m []int32) int {
	w := 0
	for k, it := range items {
		if z := m[it]; z >= 0 {
			items[w], types[w] = z, types[k]
			w++
		}
	}
	return w
}

// remapTransitions drops the transitions that chose an expired item and
// takes expired items out of the others' states, in place.
func remapTransitions(trs []transition, m []int32) []transition {
	out := trs[:0]
	for _, tr := range trs {
		if tr.pos = m[tr.pos]; tr.pos < 0 {
			continue
		}
		tr.n = uint8(remapHistory(tr.recent[:tr.n], tr.types[:tr.n], m))
		out = append(out, tr)
	}
	clear(trs[len(out):])
	return out
}

// remapRing is remapTransitions for the replay ring whose oldest entry is
// at next (once full): the result is oldest first, its next at 0.
func remapRing(ring []transition, next int, m []int32) []transition {
	rotated := append(slices.Clone(ring[next:]), ring[:next]...)
	out := remapTransitions(rotated, m)
	copy(ring, out)
	clear(ring[len(out):])
	return ring[:len(out)]
}
