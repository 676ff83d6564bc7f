package model

import "container/list"

// LRU is a map bounded to a number of entries; adding past the bound evicts
// the least recently used entry. Not safe for concurrent use.
type LRU[K comparable, V any] struct {
	cap     int
	ll      *list.List
	items   map[K]*list.Element
	OnEvict func(K, V)
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

// NewLRU returns an LRU holding at most capacity entries (at least 1).
func NewLRU[K comparable, V any](capacity int) *LRU[K, V] {
	return &LRU[K, V]{cap: max(capacity, 1), ll: list.New(), items: map[K]*list.Element{}}
}

// Get returns the value of k and marks it most recently used.
func (c *LRU[K, V]) Get(k K) (V, bool) {
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Peek returns the value of k without marking it used.
func (c *LRU[K, V]) Peek(k K) (V, bool) {
	if e, ok := c.items[k]; ok {
		return e.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Put sets k to v, marks it most recently used, and evicts past capacity.
func (c *LRU[K, V]) Put(k K, v V) {
	if e, ok := c.items[k]; ok {
		e.Value.(*lruEntry[K, V]).val = v
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&lruEntry[K, V]{k, v})
	for c.ll.Len() > c.cap {
		c.removeElement(c.ll.Back())
	}
}

// Oldest returns the least recently used entry.
func (c *LRU[K, V]) Oldest() (K, V, bool) {
	e := c.ll.Back()
	if e == nil {
		var k K
		var v V
		return k, v, false
	}
	en := e.Value.(*lruEntry[K, V])
	return en.key, en.val, true
}

// Remove deletes k.
func (c *LRU[K, V]) Remove(k K) {
	if e, ok := c.items[k]; ok {
		c.removeElement(e)
	}
}

func (c *LRU[K, V]) removeElement(e *list.Element) {
	en := c.ll.Remove(e).(*lruEntry[K, V])
	delete(c.items, en.key)
	if c.OnEvict != nil {
		c.OnEvict(en.key, en.val)
	}
}

// Each calls f for every entry, least recently used first.
func (c *LRU[K, V]) Each(f func(K, V)) {
	for e := c.ll.Back(); e != nil; e = e.Prev() {
		en := e.Value.(*lruEntry[K, V])
		f(en.key, en.val)
	}
}

// Len is the number of entries.
func (c *LRU[K, V]) Len() int { return c.ll.Len() }
