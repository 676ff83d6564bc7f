package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// The publish stage: it publishes the outputs of the batches the learn
// stage encoded, waits for their acknowledgements, and hands the batches'
// offsets to the commit stage.

// published is a group of outputs gathered for one round of publishing.
type published struct {
	lists, dead, decs, orders []kafka.Message
	last                      map[int]kafka.Message // the last message of each partition
	events, dups, batches     int
	traces                    []batchTrace
	snapshots                 [][]byte
}

// gather merges the outputs of group.
func gather(group []output) published {
	p := published{last: map[int]kafka.Message{}, traces: make([]batchTrace, len(group))}
	for i, g := range group {
		p.lists = append(p.lists, g.lists...)
		p.dead = append(p.dead, g.dead...)
		p.decs = append(p.decs, g.dec...)
		p.orders = append(p.orders, g.order...)
		for _, m := range g.commits {
			if prev, ok := p.last[m.Partition]; !ok || m.Offset > prev.Offset {
				p.last[m.Partition] = m
			}
		}
		p.events += g.events
		p.dups += g.dups
		if g.events > 0 { // not a snapshot taken while idle
			p.batches++
		}
		p.traces[i] = g.batch
		if g.snapshot != nil {
			p.snapshots = append(p.snapshots, g.snapshot)
		}
	}
	return p
}

// publish writes each batch's outputs, waits for their acks, then hands the
// batch's offsets to the committer. Batches that queued up while the
// previous publish was in flight are published together (at most
// worker.max_pending_batches), so a broker round trip costs once per group,
// not once per batch; the commit of one group overlaps the publish of the
// next.
func (w *Worker) publish(ctx context.Context, out <-chan output, commits chan<- committing) error {
	for o := range out {
		group := w.pending(o, out)
		start := time.Now()
		spans := w.startSendSpans(group, start)
		p := gather(group)
		err := w.publishAll(ctx, p)
		acked := time.Now()
		endSpans(spans, err, acked)
		if err != nil {
			notCommitted(p.traces)
			return fmt.Errorf("batch not committed: %w", err)
		}
		w.stats.PublishNanos.Add(int64(acked.Sub(start)))
		if w.metrics != nil {
			for _, g := range group {
				w.metrics.Published(len(g.lists), g.produced, acked)
			}
		}
		if err := send(ctx, commits, committing{offsets: p.last, batches: p.traces, snapshots: p.snapshots}); err != nil {
			return fmt.Errorf("batch not committed: %w", err)
		}
		w.count(p)
	}
	return nil
}

// pending is o with the outputs that queued up behind it, at most
// worker.max_pending_batches in all.
func (w *Worker) pending(o output, out <-chan output) []output {
	group := []output{o}
	for len(group) < w.cfg.Worker.MaxPendingBatches {
		select {
		case more, ok := <-out:
			if !ok {
				return group
			}
			group = append(group, more)
		default:
			return group
		}
	}
	return group
}

// publishAll publishes the group's outputs, each to its sink, and waits
// for every acknowledgement.
func (w *Worker) publishAll(ctx context.Context, p published) error {
	var dlqErr, orderErr error
	var wg sync.WaitGroup
	if len(p.dead) > 0 {
		wg.Go(func() { dlqErr = w.out.DLQ.Publish(ctx, p.dead...) })
	}
	if w.order != nil && len(p.orders) > 0 {
		wg.Go(func() { orderErr = w.order.Publish(ctx, p.orders...) })
	}
	recErr := w.out.Recs.Publish(ctx, p.lists...)
	decErr := w.out.Decisions.Publish(ctx, p.decs...)
	wg.Wait()
	return errors.Join(recErr, dlqErr, decErr, orderErr)
}

// count adds a published group to the worker's counters.
func (w *Worker) count(p published) {
	w.stats.Batches.Add(int64(p.batches))
	w.stats.Groups.Add(1)
	w.stats.Events.Add(int64(p.events))
	w.stats.DLQ.Add(int64(len(p.dead)))
	w.stats.Duplicates.Add(int64(p.dups))
	w.stats.Lists.Add(int64(len(p.lists)))
	w.stats.Decisions.Add(int64(len(p.decs)))
}
