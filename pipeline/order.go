package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
)

// The order log. A worker reading several partitions learns their events
// in the order they happen to be fetched. It records that order, one
// message per batch on snapshot.order_topic, as runs of consecutive
// offsets of one partition; a worker that restores a snapshot (after
// adaptrec replay --snapshot) follows the recorded runs from where the
// snapshot stopped, so it learns the same events in the same order and
// reaches the same weights, bit for bit.

// orderRun is count events of partition from offset from, in that order.
type orderRun struct {
	Partition int   `json:"p"`
	From      int64 `json:"from"`
	Count     int64 `json:"n"`
}

type orderRecord struct {
	Group string     `json:"group"`
	Runs  []orderRun `json:"runs"`
}

// orderMessage records the order of a batch's messages.
func orderMessage(group string, items []fetched) (kafka.Message, error) {
	var runs []orderRun
	for _, it := range items {
		m := it.msg
		if n := len(runs); n > 0 && runs[n-1].Partition == m.Partition && runs[n-1].From+runs[n-1].Count == m.Offset {
			runs[n-1].Count++
			continue
		}
		runs = append(runs, orderRun{Partition: m.Partition, From: m.Offset, Count: 1})
	}
	b, err := json.Marshal(orderRecord{Group: group, Runs: runs})
	if err != nil {
		return kafka.Message{}, err
	}
	return kafka.Message{Key: []byte(group), Value: b}, nil
}

// orderFrom reads the group's order recorded since a snapshot was taken
// (less a minute for clocks and batches in flight) and returns the runs
// that continue exactly from offsets (the next offset per partition the
// snapshot learned up to; a partition it does not name starts at its first
// offset), and the feedback topic's partitions, sorted. Recordings of runs
// already covered (a replay records the order again) are skipped; the runs
// stop at the first gap.
func orderFrom(ctx context.Context, conn *kafkaconn.Conn, topic, feedbackTopic, group string, taken time.Time, offsets map[int32]int64) ([]orderRun, []int, error) {
	client := conn.Client()
	ends, err := EndOffsets(ctx, client, topic)
	if err != nil {
		return nil, nil, err
	}
	orderParts := make([]int, 0, len(ends))
	for p := range ends {
		orderParts = append(orderParts, p)
	}
	starts, err := kafkaconn.ListOffsets(ctx, client, topic, orderParts, taken.Add(-time.Minute).UnixMilli())
	if err != nil {
		return nil, nil, err
	}
	parts, err := Partitions(ctx, client, feedbackTopic)
	if err != nil {
		return nil, nil, err
	}
	firsts, err := kafkaconn.ListOffsets(ctx, client, feedbackTopic, parts, kafka.FirstOffset)
	if err != nil {
		return nil, nil, err
	}
	next := map[int]int64{}
	for _, p := range parts {
		next[p] = firsts[p]
		if off, ok := offsets[int32(p)]; ok {
			next[p] = off
		}
	}
	var runs []orderRun
	gap := false
	for p, end := range ends {
		if starts[p] < 0 {
			continue // nothing recorded since
		}
		err := conn.ReadPartition(ctx, topic, p, starts[p], end, func(m kafka.Message) {
			var rec orderRecord
			if gap || json.Unmarshal(m.Value, &rec) != nil || rec.Group != group {
				return
			}
			for _, r := range rec.Runs {
				n, known := next[r.Partition]
				switch {
				case !known || r.Count <= 0 || r.From+r.Count <= n:
					// another topic's partition, or already covered
				case r.From == n:
					runs = append(runs, r)
					next[r.Partition] += r.Count
				case r.From < n: // partly covered
					runs = append(runs, orderRun{Partition: r.Partition, From: n, Count: r.From + r.Count - n})
					next[r.Partition] = r.From + r.Count
				default:
					gap = true
					return
				}
			}
		})
		if err != nil {
			return nil, nil, err
		}
	}
	slices.Sort(parts)
	return runs, parts, nil
}

// followOrder passes the fetched messages on in the order of runs, holding
// back the messages of other partitions meanwhile, then in the order they
// come. It follows the order only while the group has assigned every
// partition of the feedback topic (all) to this worker (own), as it does a
// lone worker: a member of a group of several never holds its partitions
// back, neither for another member's partitions nor for one of its own
// that has nothing new. Before it passes a message on it waits for the
// assignment of the generation the worker joined, and it checks again
// whenever that changes; if a partition is not assigned to it, or a
// partition's messages do not continue its run (the group was not rewound
// to the snapshot), or a run's messages do not arrive within wait, it
// stops following, says so, and passes everything on.
func (w *Worker) followOrder(ctx context.Context, in <-chan fetched, out chan<- fetched, runs []orderRun, all []int, own *assignment, wait time.Duration) {
	held := map[int][]fetched{}
	send := func(f fetched) bool { return pass(ctx, out, f) }
	release := func() bool { return passHeld(ctx, out, held) }
	w.setOrder(OrderReport{Runs: len(runs)})
	followed := int64(0)
	stop := func(why string, unassigned []int) {
		w.setOrder(OrderReport{Runs: len(runs), Followed: followed, Stopped: why, Unassigned: unassigned})
		w.log.Warn("not following the recorded order", "topic", w.cfg.Snapshot.OrderTopic, "reason", why, "events_followed", followed)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
follow:
	for _, r := range runs {
		for k := int64(0); k < r.Count; {
			parts, known, changed := own.current()
			if missing := notIn(all, parts); known && len(missing) > 0 {
				stop(fmt.Sprintf("partitions %v are another worker's or no one's (this worker's: %v): the order is followed only by a worker that holds every partition", missing, parts), missing)
				break follow
			}
			if q := held[r.Partition]; known && len(q) > 0 {
				if got, want := q[0].msg.Offset, r.From+k; got != want {
					stop(fmt.Sprintf("partition %d continues at offset %d, the recorded order at %d", r.Partition, got, want), nil)
					break follow
				}
				held[r.Partition] = q[1:]
				if !send(q[0]) {
					return
				}
				k++
				followed++
				timer.Reset(wait) // the wait is for the order's next event, however many others come
				continue
			}
			select {
			case f, ok := <-in:
				if !ok {
					release()
					return
				}
				held[f.msg.Partition] = append(held[f.msg.Partition], f)
			case <-changed: // a new generation or its assignment: check again
			case <-timer.C:
				stop(fmt.Sprintf("partition %d offset %d did not arrive within %v", r.Partition, r.From+k, wait), nil)
				break follow
			case <-ctx.Done():
				return
			}
		}
	}
	if w.Order().Stopped == "" {
		w.setOrder(OrderReport{Runs: len(runs), Followed: followed})
		if followed > 0 {
			w.log.Info("followed the recorded order", "topic", w.cfg.Snapshot.OrderTopic, "events", followed)
		}
	}
	if !release() {
		return
	}
	for f := range in {
		if !send(f) {
			return
		}
	}
}

// pass sends f on out unless ctx ends first.
func pass(ctx context.Context, out chan<- fetched, f fetched) bool {
	select {
	case out <- f:
		return true
	case <-ctx.Done():
		return false
	}
}

// passHeld sends the held messages on out, partition by partition, and
// forgets them; false if ctx ended first.
func passHeld(ctx context.Context, out chan<- fetched, held map[int][]fetched) bool {
	parts := make([]int, 0, len(held))
	for p := range held {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		for _, f := range held[p] {
			if !pass(ctx, out, f) {
				return false
			}
		}
	}
	clear(held)
	return true
}

// notIn returns the partitions of want that are not in have.
func notIn(want, have []int) []int {
	var out []int
	for _, p := range want {
		if !slices.Contains(have, p) {
			out = append(out, p)
		}
	}
	return out
}

// OrderReport says how a worker that restored a snapshot followed the
// recorded order (see followOrder).
type OrderReport struct {
	Runs     int    // recorded runs it set out to follow (0: it followed none)
	Followed int64  // events it passed on in the recorded order, once it stopped or finished
	Stopped  string // why it stopped following before the end ("": it did not)
	// Unassigned are the feedback topic's partitions that were not
	// assigned to it when it stopped, if that is why it stopped.
	Unassigned []int
}

// Order reports how the worker followed the recorded order: zero if it had
// none to follow.
func (w *Worker) Order() OrderReport {
	w.orderMu.Lock()
	defer w.orderMu.Unlock()
	return w.orderReport
}

func (w *Worker) setOrder(r OrderReport) {
	w.orderMu.Lock()
	defer w.orderMu.Unlock()
	w.orderReport = r
}
