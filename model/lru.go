package model

// LRU is a map bounded to a number of entries; adding past the bound evicts
// the least recently used entry. Its entries live in one slice, linked by
// index, so that an entry costs its key and value, two int32 links and a
// map slot, and holds no pointer of its own for the collector to follow.
// Not safe for concurrent use.
type LRU[K comparable, V any] struct {
	cap   int
	index map[K]int32
	nodes []lruNode[K, V]
	// newest and oldest are the ends of the recency list (-1: empty);
	// free heads the list of unused nodes, linked by older.
	newest, oldest, free int32
	OnEvict              func(K, V)
}

type lruNode[K comparable, V any] struct {
	key          K
	val          V
	newer, older int32
}

// NewLRU returns an LRU holding at most capacity entries (at least 1).
func NewLRU[K comparable, V any](capacity int) *LRU[K, V] {
	return &LRU[K, V]{cap: max(capacity, 1), index: map[K]int32{}, newest: -1, oldest: -1, free: -1}
}

// Get returns the value of k and marks it most recently used.
func (c *LRU[K, V]) Get(k K) (V, bool) {
	if i, ok := c.index[k]; ok {
		c.unlink(i)
		c.pushNewest(i)
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
		c.pushNewest(i)
		return
	}
	i := c.free
	if i >= 0 {
		c.free = c.nodes[i].older
	} else {
		i = int32(len(c.nodes))
		c.nodes = append(c.nodes, lruNode[K, V]{})
	}
	c.nodes[i].key, c.nodes[i].val = k, v
	c.index[k] = i
	c.pushNewest(i)
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
	n := &c.nodes[i]
	k, v := n.key, n.val
	c.unlink(i)
	delete(c.index, k)
	*n = lruNode[K, V]{older: c.free} // drop the references
	c.free = i
	if evict && c.OnEvict != nil {
		c.OnEvict(k, v)
	}
}

func (c *LRU[K, V]) unlink(i int32) {
	n := &c.nodes[i]
	if n.newer >= 0 {
		c.nodes[n.newer].older = n.older
	} else {
		c.newest = n.older
	}
	if n.older >= 0 {
		c.nodes[n.older].newer = n.newer
	} else {
		c.oldest = n.newer
	}
}

func (c *LRU[K, V]) pushNewest(i int32) {
	n := &c.nodes[i]
	n.newer, n.older = -1, c.newest
	if c.newest >= 0 {
		c.nodes[c.newest].newer = i
	} else {
		c.oldest = i
	}
	c.newest = i
}

// Each calls f for every entry, least recently used first.
func (c *LRU[K, V]) Each(f func(K, V)) {
	for i := c.oldest; i >= 0; i = c.nodes[i].newer {
		f(c.nodes[i].key, c.nodes[i].val)
	}
}

// Len is the number of entries.
func (c *LRU[K, V]) Len() int { return len(c.index) }
