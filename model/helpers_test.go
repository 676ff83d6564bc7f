package model

import (
	"fmt"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// newDQN returns a DQN of cfg, closed when the test ends.
func newDQN(t testing.TB, cfg DQNConfig) *DQN {
	t.Helper()
	d, err := NewDQN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// restoredDQN returns a DQN of cfg that has restored s, closed when the
// test ends.
func restoredDQN(t testing.TB, cfg DQNConfig, s *Snapshot) *DQN {
	t.Helper()
	r := newDQN(t, cfg)
	if err := r.Restore(s); err != nil {
		t.Fatal(err)
	}
	return r
}

// clicks returns n clicks from the from-th on, one a second: click i is
// user i%users's, in session "s", on item item(i).
func clicks(from, n, users int, item func(int) int) []feedback.Located {
	evs := make([]feedback.Located, 0, n)
	for i := from; i < from+n; i++ {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%users), SessionID: "s", ItemID: fmt.Sprint("i", item(i)), Type: feedback.Click, TS: time.Unix(int64(i), 0)}})
	}
	return evs
}
