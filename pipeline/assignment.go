package pipeline

import (
	"reflect"
	"slices"
	"strings"
	"sync"
)

// assignment follows the partitions of the feedback topic that the
// consumer group assigned to this worker. kafka-go's Reader (v0.4.51) has
// no assignment callback; its logger says "Joined group ..." when the
// worker joins a new generation and then, once the generation's
// partitions are assigned and being read, "subscribed to topics and
// partitions: %+v" with them (a map keyed by topic and partition).
// note reads both. It is safe for concurrent use: the reader's goroutines
// note, followOrder reads.
type assignment struct {
	topic   string
	mu      sync.Mutex
	joins   int          // generations joined
	of      int          // the join the partitions belong to
	parts   map[int]bool // nil: the log line could not be read
	changed chan struct{}
}

// newAssignment returns the assignment of topic's partitions, not known
// until the worker has joined the group.
func newAssignment(topic string) *assignment {
	return &assignment{topic: topic, changed: make(chan struct{})}
}

// note takes one kafka-go log line (its format and arguments).
func (a *assignment) note(format string, args []any) {
	switch {
	case strings.HasPrefix(format, "Joined group "):
		a.mu.Lock()
		defer a.mu.Unlock()
		a.joins++
	case strings.HasPrefix(format, "subscribed to topics and partitions") && len(args) == 1:
		parts := subscribedPartitions(a.topic, args[0])
		a.mu.Lock()
		defer a.mu.Unlock()
		a.of, a.parts = a.joins, parts
	default:
		return
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// current returns the partitions assigned in the generation the worker
// last joined; known is false until they are (before the first join, and
// between a join and its assignment). If kafka-go's log line could not be
// read, the worker holds no partitions as far as it knows. changed is
// closed at the next change.
func (a *assignment) current() (parts []int, known bool, changed <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.joins == 0 || a.of != a.joins {
		return nil, false, a.changed
	}
	for p := range a.parts {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	return parts, true, a.changed
}

// subscribedPartitions reads the partitions of topic from the argument of
// kafka-go's "subscribed to topics and partitions" line, a
// map[topicPartition]int64 whose key has the fields topic and partition;
// nil if it is not that.
func subscribedPartitions(topic string, arg any) map[int]bool {
	v := reflect.ValueOf(arg)
	if v.Kind() != reflect.Map {
		return nil
	}
	parts := map[int]bool{}
	for _, k := range v.MapKeys() {
		if k.Kind() != reflect.Struct {
			return nil
		}
		t, p := k.FieldByName("topic"), k.FieldByName("partition")
		if t.Kind() != reflect.String || !p.IsValid() || !p.CanInt() {
			return nil
		}
		if t.String() == topic {
			parts[int(p.Int())] = true
		}
	}
	return parts
}
