package pipeline

import (
	"errors"
	"testing"
)

// Run's error keeps both what stopped a stage and the shutdown deadline
// when both happened, so a caller can tell a deleted topic (ErrTopicGone)
// from a slow drain with errors.Is.
func TestStoppedKeepsBothCauses(t *testing.T) {
	err := stopped(ErrTopicGone, ErrShutdownDeadline)
	if !errors.Is(err, ErrTopicGone) || !errors.Is(err, ErrShutdownDeadline) {
		t.Fatalf("stopped(ErrTopicGone, ErrShutdownDeadline) = %v: want both in its chain", err)
	}
	if err := stopped(nil, nil); err != nil {
		t.Fatalf("a clean drain returned %v", err)
	}
	if err := stopped(nil, ErrShutdownDeadline); !errors.Is(err, ErrShutdownDeadline) {
		t.Fatalf("a snapshot cut off by the deadline returned %v", err)
	}
}
