package model

// slab holds nodes in one slice, linked by index into a list from the
// newest to the oldest, with a free list of unused nodes (linked by older):
// a node costs its fields and two int32 links, and holds no pointer of
// its own for the collector to follow. LRU and the compact users keep
// their entries in one.
type slab[T any, P interface {
	*T
	links() *link
}] struct {
	nodes                []T
	newest, oldest, free int32 // -1: none
}

// link places a node among its neighbours (-1: none).
type link struct{ newer, older int32 }

func newSlab[T any, P interface {
	*T
	links() *link
}]() slab[T, P] {
	return slab[T, P]{newest: -1, oldest: -1, free: -1}
}

func (s *slab[T, P]) at(i int32) *link { return P(&s.nodes[i]).links() }

// alloc returns an unused node, zero but for its links.
func (s *slab[T, P]) alloc() int32 {
	if i := s.free; i >= 0 {
		s.free = s.at(i).older
		return i
	}
	var zero T
	s.nodes = append(s.nodes, zero)
	return int32(len(s.nodes) - 1)
}

// release zeroes node i, which is not linked, and frees it.
func (s *slab[T, P]) release(i int32) {
	var zero T
	s.nodes[i] = zero
	s.at(i).older, s.free = s.free, i
}

// unlink takes node i out of the list.
func (s *slab[T, P]) unlink(i int32) {
	n := s.at(i)
	if n.newer >= 0 {
		s.at(n.newer).older = n.older
	} else {
		s.newest = n.older
	}
	if n.older >= 0 {
		s.at(n.older).newer = n.newer
	} else {
		s.oldest = n.newer
	}
}

// insert links node i between newer and older, neighbours in the list
// (-1: that end).
func (s *slab[T, P]) insert(i, newer, older int32) {
	n := s.at(i)
	n.newer, n.older = newer, older
	if older >= 0 {
		s.at(older).newer = i
	} else {
		s.oldest = i
	}
	if newer >= 0 {
		s.at(newer).older = i
	} else {
		s.newest = i
	}
}

// LRU is a map bounded to a number of entries; adding past the bound evicts
// the least recently used entry. Its entries live in a slab. Not safe for
// concurrent use.
type LRU[K comparable, V any] struct {
	cap   int
	index map[K]int32
	slab[lruNode[K, V], *lruNode[K, V]]
	OnEvict func(K, V)
}

type lruNode[K comparable, V any] struct {
	key K
	val V
	link
}

func (n *lruNode[K, V]) links() *link { return &n.link }

// NewLRU returns an LRU holding at most capacity entries (at least 1).
func NewLRU[K comparable, V any](capacity int) *LRU[K, V] {
	return &LRU[K, V]{cap: max(capacity, 1), index: map[K]int32{}, slab: newSlab[lruNode[K, V]]()}
}

// Get returns the value of k and marks it most recently used.
func (c *LRU[K, V]) Get(k K) (V, bool) {
	if i, ok := c.index[k]; ok {
		c.unlink(i)
		c.insert(i, -1, c.newest)
		return c.nodes[i].val, true
	}
	var zero V
	return zero, false
}

// Peek returns the value of k without marking it used.
func (c *LRU[K, V]) Peek(k K) (V, bool) {
	if i, ok := c.index[k]; ok {
		return c.nodes[i].val, true
	}
	var zero V
	return zero, false
}

// Put sets k to v, marks it most recently used, and evicts past capacity.
func (c *LRU[K, V]) Put(k K, v V) {
	if i, ok := c.index[k]; ok {
		c.nodes[i].val = v
		c.unlink(i)
		c.insert(i, -1, c.newest)
		return
	}
	i := c.alloc()
	c.nodes[i].key, c.nodes[i].val = k, v
	c.index[k] = i
	c.insert(i, -1, c.newest)
	for len(c.index) > c.cap {
		c.remove(c.oldest, true)
	}
}

// Oldest returns the least recently used entry.
func (c *LRU[K, V]) Oldest() (K, V, bool) {
	if c.oldest < 0 {
		var k K
		var v V
		return k, v, false
	}
	n := &c.nodes[c.oldest]
	return n.key, n.val, true
}

// Remove deletes k, calling OnEvict.
func (c *LRU[K, V]) Remove(k K) {
	if i, ok := c.index[k]; ok {
		c.remove(i, true)
	}
}

// Take deletes k without calling OnEvict and returns its value.
func (c *LRU[K, V]) Take(k K) (V, bool) {
	i, ok := c.index[k]
	if !ok {
		var zero V
		return zero, false
	}
	v := c.nodes[i].val
	c.remove(i, false)
	return v, true
}

func (c *LRU[K, V]) remove(i int32, evict bool) {
	k, v := c.nodes[i].key, c.nodes[i].val
	c.unlink(i)
	delete(c.index, k)
	c.release(i) // drops the references
	if evict && c.OnEvict != nil {
		c.OnEvict(k, v)
	}
}

// Each calls f for every entry, least recently used first.
func (c *LRU[K, V]) Each(f func(K, V)) {
	for i := c.oldest; i >= 0; i = c.nodes[i].newer {
		f(c.nodes[i].key, c.nodes[i].val)
	}
}

// Len is the number of entries.
func (c *LRU[K, V]) Len() int { return len(c.index) }
