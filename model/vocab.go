package model

import "strings"

// Vocab maps string IDs to dense indices 0, 1, 2, ... in order of first
// appearance. It only grows; tables indexed by it grow with it.
type Vocab struct {
	index map[string]int32
	ids   []string
}

// NewVocab returns an empty vocabulary.
func NewVocab() *Vocab { return &Vocab{index: map[string]int32{}} }

// Add returns id's index, adding it if new. id may alias a transient buffer:
// Add copies it before keeping it.
func (v *Vocab) Add(id string) int32 {
	if i, ok := v.index[id]; ok {
		return i
	}
	id = strings.Clone(id)
	i := int32(len(v.ids))
	v.index[id] = i
	v.ids = append(v.ids, id)
	return i
}

// Lookup returns id's index and whether it is known.
func (v *Vocab) Lookup(id string) (int32, bool) {
	i, ok := v.index[id]
	return i, ok
}

// ID returns the string ID of index i.
func (v *Vocab) ID(i int32) string { return v.ids[i] }

// Len is the number of IDs.
func (v *Vocab) Len() int { return len(v.ids) }
