package pipeline

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
)

// kafkaGoKey has the shape of kafka-go's topicPartition, the key of the
// map its reader logs when it subscribes to a generation's partitions.
type kafkaGoKey struct {
	topic     string
	partition int32
}

// join notes a new generation on a, and its partitions of topic
// "feedback" unless parts is nil.
func join(a *assignment, parts []int) {
	a.note("Joined group %s as member %s in generation %d", []any{"g", "m", int32(1)})
	if parts == nil {
		return
	}
	sub := map[kafkaGoKey]int64{{"other", 0}: 0}
	for _, p := range parts {
		sub[kafkaGoKey{"feedback", int32(p)}] = 0
	}
	a.note("subscribed to topics and partitions: %+v", []any{sub})
}

// assignedTo is the assignment of a worker that holds parts of "feedback".
func assignedTo(parts ...int) *assignment {
	a := newAssignment("feedback")
	join(a, parts)
	return a
}

func TestAssignmentFollowsTheReadersLog(t *testing.T) {
	a := newAssignment("feedback")
	if _, known, _ := a.current(); known {
		t.Fatal("known before the worker joined")
	}
	_, _, changed := a.current()
	join(a, []int{3, 1})
	select {
	case <-changed:
	default:
		t.Fatal("no change signalled")
	}
	if parts, known, _ := a.current(); !known || !slices.Equal(parts, []int{1, 3}) {
		t.Fatalf("partitions %v (known %v), want [1 3] of the topic", parts, known)
	}
	join(a, nil)
	if _, known, _ := a.current(); known {
		t.Fatal("a new generation's partitions known before its subscription")
	}
	a.note("subscribed to topics and partitions: %+v", []any{"not a map"})
	if parts, known, _ := a.current(); !known || len(parts) != 0 {
		t.Fatalf("an unreadable line gives partitions %v (known %v), want none", parts, known)
	}
}

// TestFollowOrderOnlyWhenAssignedEveryPartition checks that a worker
// that does not hold every partition of the feedback topic passes its
// messages on as they come, without holding any back: at once when the
// assignment is known, as soon as it is known when the messages come
// first, as soon as a new generation takes a partition away, and also
// when the order waits on a partition of its own that has nothing new.
func TestFollowOrderOnlyWhenAssignedEveryPartition(t *testing.T) {
	w := NewWorker(configs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil, Outputs{})
	msg := func(p int, off int64) fetched { return fetched{msg: kafka.Message{Partition: p, Offset: off}} }
	for _, c := range []struct {
		name   string
		runs   []orderRun
		own    *assignment
		before []int // the assignment when the messages are in (nil: only joined)
		after  []int // the assignment noted next (nil: none)
	}{
		// The order waits for partition 1, another worker's.
		{"known", []orderRun{{1, 5, 1}, {0, 10, 2}}, assignedTo(0), []int{0, 2}, nil},
		{"known after the messages", []orderRun{{1, 5, 1}, {0, 10, 2}}, newAssignment("feedback"), nil, []int{0, 2}},
		{"lost in a new generation", []orderRun{{1, 5, 1}, {0, 10, 2}}, newAssignment("feedback"), []int{0, 1, 2}, []int{0, 2}},
		// The order waits for partition 2, this worker's, with nothing new.
		{"own partition idle", []orderRun{{2, 7, 1}, {0, 10, 2}}, assignedTo(0, 2), []int{0, 2}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			join(c.own, c.before)
			in, out := make(chan fetched, 2), make(chan fetched, 2)
			in <- msg(0, 10)
			in <- msg(0, 11)
			done := make(chan struct{})
			go func() {
				defer close(done)
				w.followOrder(context.Background(), in, out, c.runs, []int{0, 1, 2}, c.own, time.Hour)
			}()
			if c.after != nil {
				for len(in) > 0 { // both held back
					runtime.Gosched()
				}
				join(c.own, c.after)
			}
			for _, want := range []int64{10, 11} {
				select {
				case f := <-out:
					if f.msg.Partition != 0 || f.msg.Offset != want {
						t.Fatalf("passed on %d@%d, want 0@%d", f.msg.Partition, f.msg.Offset, want)
					}
				case <-time.After(time.Minute): // a guard, not a measure: the order waits an hour
					t.Fatal("partition 0 held back for the order by a worker that does not hold every partition")
				}
			}
			close(in)
			<-done
			if r := w.Order(); r.Followed != 0 || !slices.Equal(r.Unassigned, []int{1}) {
				t.Fatalf("report %+v, want none followed and partition 1 unassigned", r)
			}
		})
	}
}
