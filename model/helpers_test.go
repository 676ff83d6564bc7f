package model

import "testing"

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
