package snapstore

import (
	"context"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
)

// Follow reads the snapshot topic until ctx ends, from the offsets from
// (per partition; from the start where it has none), and calls f with
// every snapshot of the group that another replica than self (and one
// that names itself) completes, reassembled and verified, in the order
// they complete. f is called from one goroutine at a time. A partition
// that cannot be read is logged and left; Follow returns ctx's cause when
// ctx ends, or at once the error of reading the topic's partitions.
func (s *Store) Follow(ctx context.Context, from map[int]int64, self string, f func(Stored)) error {
	parts, err := kafkaconn.Partitions(ctx, s.conn.Client(), s.topic)
	if err != nil {
		return err
	}
	fo := &follower{group: s.group, self: self, deliver: f, skip: s.skip, assembling: map[string]*assembly{}}
	var wg sync.WaitGroup
	for _, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.followPartition(ctx, part, from, fo.add)
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// followPartition calls add with each message of one partition, from
// from[part] (or its start), until ctx ends or a read fails.
func (s *Store) followPartition(ctx context.Context, part int, from map[int]int64, add func(kafka.Message)) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: s.conn.Brokers(), Dialer: s.conn.Dialer(), Topic: s.topic, Partition: part, StartOffset: kafka.FirstOffset,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 500 * time.Millisecond,
		ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: time.Second,
	})
	defer r.Close()
	if off, ok := from[part]; ok {
		if err := r.SetOffset(off); err != nil {
			s.log.Warn("reading the other replicas' snapshots", "topic", s.topic, "partition", part, "err", err)
			return
		}
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("reading the other replicas' snapshots", "topic", s.topic, "partition", part, "err", err)
			}
			return
		}
		add(m)
	}
}

// skip logs a replica's snapshot that does not reassemble.
func (s *Store) skip(st Stored) {
	s.log.Warn("skipping a replica's snapshot", "topic", s.topic, "snapshot", st.ID, "replica", st.Replica, "reason", st.Problem)
}

// follower reassembles the other replicas' snapshots of a group as their
// chunks arrive, from any partition.
type follower struct {
	group, self string
	deliver     func(Stored) // a snapshot completed and verified
	skip        func(Stored) // a snapshot completed that does not verify

	mu         sync.Mutex
	assembling map[string]*assembly // by id
}

// add takes one chunk (or tombstone) of the topic.
func (fo *follower) add(m kafka.Message) {
	g, id, ok := parseKey(m.Key)
	if !ok || g != fo.group {
		return
	}
	fo.mu.Lock()
	defer fo.mu.Unlock()
	if m.Value == nil {
		delete(fo.assembling, id)
		return
	}
	hdr := headers(m.Headers)
	replica := hdr[hdrReplica]
	if replica == "" || replica == fo.self {
		return // ours, or of a worker that does not name itself
	}
	a := fo.assembling[id]
	if a == nil {
		if a = start(g, id, m, hdr); a.Chunks <= 0 || a.Size < 0 {
			return
		}
		fo.assembling[id] = a
	}
	if !a.add(m, hdr) || len(a.chunks) < a.Chunks {
		return
	}
	delete(fo.assembling, id)
	for other, o := range fo.assembling {
		if o.Replica == replica && other < id {
			delete(fo.assembling, other) // cut short: this replica has moved on
		}
	}
	if st := a.finish(); st.Complete {
		fo.deliver(st)
	} else {
		fo.skip(st)
	}
}
