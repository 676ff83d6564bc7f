package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/model/session"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

// DefaultReplica is a replica name for this process: host name and
// process id.
func DefaultReplica() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// ReadRange returns the messages of topic/partition from offset from (or
// the partition's first, if later) up to offset to, excluded.
func ReadRange(ctx context.Context, conn *kafkaconn.Conn, topic string, partition int, from, to int64) ([]kafka.Message, error) {
	client := conn.Client()
	first, err := kafkaconn.ListOffsets(ctx, client, topic, []int{partition}, kafka.FirstOffset)
	if err != nil {
		return nil, err
	}
	var out []kafka.Message
	err = conn.ReadPartition(ctx, topic, partition, max(from, first[partition]), to, func(m kafka.Message) { out = append(out, m) })
	return out, err
}

// Peers keeps the newest complete, verified snapshot of every other
// replica of the group, decoded, for the worker to merge: Run follows the
// snapshot topic through the store. It is safe for concurrent use: Run
// fills it, the worker's model goroutine takes from it.
type Peers struct {
	store               *snapstore.Store
	self                string
	log                 *slog.Logger
	mu                  sync.Mutex
	newest              map[string]*peer // by replica
	received, decodeErr int
}

type peer struct {
	id     string
	snap   *model.Snapshot
	merged bool
}

// live: the snapshot was created within ttl of now and is not the last of
// a replica that left.
func (pe *peer) live(now time.Time, ttl time.Duration) bool {
	return now.Sub(pe.snap.Meta.Created) <= ttl && !pe.snap.Meta.Final
}

// NewPeers returns the peers of replica self in the group of store.
func NewPeers(store *snapstore.Store, self string, log *slog.Logger) *Peers {
	return &Peers{store: store, self: self, log: log, newest: map[string]*peer{}}
}

// Run follows the snapshot topic until ctx ends, from the offsets from
// (per partition; from the start where it has none).
func (p *Peers) Run(ctx context.Context, from map[int]int64) {
	if err := p.store.Follow(ctx, from, p.self, p.add); err != nil && ctx.Err() == nil {
		p.log.Warn("not following the other replicas' snapshots", "topic", p.store.Topic(), "err", err)
	}
}

// add takes a complete snapshot of another replica: kept, decoded, if it
// is that replica's newest.
func (p *Peers) add(s snapstore.Stored) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.newest[s.Replica]; old != nil && old.id >= s.ID {
		return
	}
	snap, err := s.Snapshot()
	if err != nil {
		p.decodeErr++
		p.log.Warn("skipping a replica's snapshot", "topic", p.store.Topic(), "snapshot", s.ID, "replica", s.Replica, "reason", err)
		return
	}
	p.received++
	p.newest[s.Replica] = &peer{id: s.ID, snap: snap}
}

// Live returns the replicas (other than self) whose newest snapshot was
// created within ttl of now and is not the last of a replica that left,
// sorted.
func (p *Peers) Live(now time.Time, ttl time.Duration) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for r, pe := range p.newest {
		if pe.live(now, ttl) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// Pending is the number of live replicas whose newest snapshot has not
// been taken.
func (p *Peers) Pending(now time.Time, ttl time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pe := range p.newest {
		if !pe.merged && now.Sub(pe.snap.Meta.Created) <= ttl {
			n++
		}
	}
	return n
}

// Take returns the newest snapshot of every live replica that has not
// been taken before, sorted by replica, and marks them taken.
func (p *Peers) Take(now time.Time, ttl time.Duration) []*model.Snapshot {
	return p.take(now, func(age time.Duration) bool { return age <= ttl })
}

// TakeStale returns the newest snapshot of every replica that is not
// live (older than ttl) and has not been taken before, sorted by
// replica, and marks them taken.
func (p *Peers) TakeStale(now time.Time, ttl time.Duration) []*model.Snapshot {
	return p.take(now, func(age time.Duration) bool { return age > ttl })
}

// take is Take for the snapshots whose age (since now) is chosen.
func (p *Peers) take(now time.Time, chosen func(age time.Duration) bool) []*model.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rs []string
	for r, pe := range p.newest {
		if !pe.merged && chosen(now.Sub(pe.snap.Meta.Created)) {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	out := make([]*model.Snapshot, len(rs))
	for i, r := range rs {
		pe := p.newest[r]
		pe.merged = true
		out[i] = pe.snap
	}
	return out
}

// mergeRestored adds back, after a restore, what the model's snapshot does
// not carry: the other replicas' own learning. Live replicas' newest
// snapshots are merged; those of replicas that left longer than
// snapshot.peer_timeout ago give only what adds up (their co-occurrence
// counts and network steps), since the rest of them is stale.
func (w *Worker) mergeRestored(r model.Replica) {
	var gone []string
	for _, s := range w.peers.TakeStale(time.Now(), w.cfg.Snapshot.PeerTimeout) {
		if err := r.MergeSums(s); err != nil {
			w.log.Error("merging a departed replica's counts", "replica", s.Meta.Replica, "err", err)
			continue
		}
		gone = append(gone, s.Meta.Replica)
	}
	if len(gone) > 0 {
		w.stats.Merges.Add(int64(len(gone)))
		w.log.Info("merged the counts of departed replicas", "replicas", gone)
	}
	w.mergePeers(r)
}

// mergePeers merges the other replicas' newest snapshots into the model
// (what is averaged, with equal weights), first settling who decides the
// architecture: the live replica with the smallest name. A follower
// adopts the decider's architecture before merging; a snapshot of another
// architecture that is not the decider's is left out until its replica
// has adopted it.
func (w *Worker) mergePeers(r model.Replica) {
	now := time.Now()
	ttl := w.cfg.Snapshot.PeerTimeout
	live := w.peers.Live(now, ttl)
	decider := len(live) == 0 || w.replica < live[0]
	if d, ok := r.(interface{ SetDecider(bool) }); ok && decider != w.decider {
		d.SetDecider(decider)
		w.log.Info("architecture decider", "replica", w.replica, "decider", decider, "replicas", len(live)+1)
	}
	w.decider = decider
	w.status.SetSelf(w.replica, decider)
	n := 1 // models averaged so far: our own
	var merged []string
	for _, s := range w.peers.Take(now, ttl) {
		m := s.Meta
		if !slices.Equal(m.Widths, r.Widths()) {
			if decider || !m.Decider {
				w.log.Info("replica not merged: another architecture, not the decider's", "replica", m.Replica, "widths", m.Widths, "own", r.Widths())
				continue
			}
			if err := r.Adopt(s); err != nil {
				w.log.Error("adopting the decider's architecture", "replica", m.Replica, "err", err)
				continue
			}
			w.log.Info("adopted the decider's architecture", "replica", m.Replica, "widths", m.Widths)
		}
		if err := r.Merge(s, 1/float64(n+1)); err != nil {
			w.log.Error("merging a replica", "replica", m.Replica, "err", err)
			continue
		}
		n++
		merged = append(merged, m.Replica)
	}
	if len(merged) > 0 {
		w.stats.Merges.Add(int64(len(merged)))
		w.log.Info("merged replicas", "replicas", merged, "took", time.Since(now).Round(time.Millisecond))
	}
}

// rebuildSessions rebuilds, before a batch is learned, the session state
// of every partition the batch starts past where the model's state ends:
// a partition this worker has not read since it started (after a restart,
// from the restored snapshot's offset; otherwise the partition was
// another worker's), or one it resumes after a gap another worker
// processed. It re-reads at most session.rebuild_events events before the
// batch's first offset of the partition and feeds them to the assembler
// and to the model's users without learning or publishing. A read that
// fails is retried for snapshot.restore_timeout; after that the error
// (wrapping ErrUnreadable) stops the worker, and the batch is not
// committed.
func (w *Worker) rebuildSessions(ctx context.Context, items []fetched, asm *session.Assembler, obs model.Observer) error {
	limit := int64(w.cfg.Session.RebuildEvents)
	firsts := map[int]int64{}
	var order []int
	for _, it := range items {
		if _, ok := firsts[it.msg.Partition]; !ok {
			firsts[it.msg.Partition] = it.msg.Offset
			order = append(order, it.msg.Partition)
		}
	}
	lim := w.limits()
	for _, p := range order {
		first := firsts[p]
		next, known := w.consumed[int32(p)]
		if known && first <= next {
			continue // continuous, or re-delivered events the model has seen
		}
		from := max(first-limit, 0)
		if known {
			from = max(from, next)
		}
		w.consumed[int32(p)] = first
		if from >= first {
			continue
		}
		start := time.Now()
		var msgs []kafka.Message
		what := fmt.Sprintf("rebuilding session state from %s/%d@%d..%d", w.cfg.Topics.Feedback, p, from, first)
		err := retryRead(ctx, w.conn, w.cfg.Snapshot.RestoreTimeout, w.log, what, nil, func(ctx context.Context) error {
			var err error
			msgs, err = ReadRange(ctx, w.conn, w.cfg.Topics.Feedback, p, from, first)
			return err
		})
		if err != nil {
			// Serving the partition's users without their sessions would
			// publish lists that ignore what they just did.
			return err
		}
		valid := 0
		for _, m := range msgs {
			ev, err := feedback.DecodeAt(m.Value, m.Time, lim)
			if err != nil {
				continue // it went to the DLQ when it was first read
			}
			if w.dedupe.Seen(EventKey(ev, m.Value)) {
				continue // learned once already: a re-send of it is a duplicate
			}
			asm.Add(ev, int32(m.Partition), m.Offset, m.Time)
			valid++
		}
		if valid > 0 {
			b := asm.Flush()
			obs.Observe(b)
			b.Release()
		}
		w.stats.Rebuilt.Add(int64(valid))
		w.log.Info("rebuilt session state", "topic", w.cfg.Topics.Feedback, "partition", p, "from", from, "to", first,
			"events", valid, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Seed takes the newest complete snapshot of each other replica among
// all, the group's snapshots as restore read them; restored, the one the
// worker started from (id restoredID), is not merged again: the model is
// it.
func (p *Peers) Seed(all []snapstore.Stored, restoredID string, restored *model.Snapshot) {
	newest := map[string]*snapstore.Stored{}
	for i := range all {
		s := &all[i]
		if s.Complete && s.Replica != "" && s.Replica != p.self && (newest[s.Replica] == nil || s.ID > newest[s.Replica].ID) {
			newest[s.Replica] = s
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for replica, s := range newest {
		if restored != nil && s.ID == restoredID {
			p.newest[replica] = &peer{id: s.ID, snap: restored, merged: true}
			continue
		}
		snap, err := s.Snapshot()
		if err != nil {
			p.log.Warn("skipping a replica's snapshot", "topic", p.store.Topic(), "snapshot", s.ID, "replica", replica, "reason", err)
			continue
		}
		p.newest[replica] = &peer{id: s.ID, snap: snap}
	}
}
