package snapstore

import (
	"context"
	"fmt"

	"github.com/adaptrec/adaptrec/model"
)

// NotFoundError reports that the group has no snapshot of the id asked
// for (ID "": no complete snapshot at all).
type NotFoundError struct {
	ID, Group, Topic string
}

// Error says which snapshot of which group is not on the topic.
func (e *NotFoundError) Error() string {
	if e.ID == "" {
		return fmt.Sprintf("group %q has no complete snapshot on %s", e.Group, e.Topic)
	}
	return fmt.Sprintf("no snapshot %q of group %q on %s", e.ID, e.Group, e.Topic)
}

// Find lists the group's snapshots and returns the one Select picks.
func (s *Store) Find(ctx context.Context, id string) (Stored, error) {
	all, _, err := s.List(ctx)
	if err != nil {
		return Stored{}, err
	}
	return s.Select(all, id)
}

// Select returns snapshot id among all, the group's snapshots oldest
// first; id "" or "latest" means the newest complete one. A snapshot that
// is there but not complete is returned with an error naming its
// problem; one that is not there, with a *NotFoundError.
func (s *Store) Select(all []Stored, id string) (Stored, error) {
	newest := id == "" || id == "latest"
	for i := len(all) - 1; i >= 0; i-- {
		st := all[i]
		if newest && st.Complete || st.ID == id {
			if !st.Complete {
				return st, fmt.Errorf("snapshot %s cannot be used: %s", id, st.Problem)
			}
			return st, nil
		}
	}
	if newest {
		id = ""
	}
	return Stored{}, &NotFoundError{ID: id, Group: s.group, Topic: s.topic}
}

// NewestValid returns the newest of the listed snapshots that is complete
// and decodes and verifies; each newer one that does not is logged with
// the reason and skipped. nil, nil if none is valid.
func (s *Store) NewestValid(all []Stored) (*model.Snapshot, *Stored) {
	for i := len(all) - 1; i >= 0; i-- {
		st := &all[i]
		if !st.Complete {
			s.log.Warn("skipping snapshot", "topic", s.topic, "offset", st.Offset, "snapshot", st.ID, "reason", st.Problem)
			continue
		}
		snap, err := st.Snapshot()
		if err != nil {
			s.log.Warn("skipping snapshot", "topic", s.topic, "offset", st.Offset, "snapshot", st.ID, "reason", err)
			continue
		}
		return snap, st
	}
	return nil, nil
}
