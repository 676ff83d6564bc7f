package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

// The worker's side of snapshots: encoding the model's state when one is
// due, publishing it (one snapshot in flight, the newest waiting),
// retiring what snapshot.keep no longer keeps, and restoring at start.

// snapStore returns the worker's snapshot store, made at the first call.
func (w *Worker) snapStore() *snapstore.Store {
	if w.store == nil {
		w.store = snapstore.New(w.conn, w.cfg.Snapshot.Topic, w.cfg.Kafka.Group, w.cfg.Snapshot.ChunkBytes, w.log)
	}
	return w.store
}

// startSnapshots starts the snapshot publisher: offerSnapshot hands it
// blobs, and it publishes them on ctx. The returned func closes the
// store's writer; drainSnapshots must run first.
func (w *Worker) startSnapshots(ctx context.Context) (closeWriter func()) {
	store := w.snapStore()
	w.snaps = make(chan []byte, 1)
	w.snapsDone = make(chan struct{})
	go func() {
		defer close(w.snapsDone)
		for blob := range w.snaps {
			w.publishSnapshot(ctx, blob)
		}
	}()
	return func() { store.Close() }
}

// drainSnapshots waits until the snapshot publisher has published the
// snapshot in hand and stopped.
func (w *Worker) drainSnapshots() {
	if w.snaps != nil {
		close(w.snaps)
		<-w.snapsDone
	}
}

// finalSnapshot publishes the state of a worker that has drained and is
// leaving the group, on ctx: Run's work context, which the one shutdown
// deadline ends.
func (w *Worker) finalSnapshot(ctx context.Context, m model.Snapshotter) {
	blob, err := w.encodeSnapshot(m, true)
	if err != nil {
		w.log.Error("final snapshot", "err", err)
		return
	}
	w.publishSnapshot(ctx, blob)
}

// PeerSnapshotsPending is the number of other replicas whose newest
// snapshot the model has not merged yet.
func (w *Worker) PeerSnapshotsPending() int {
	if w.peers == nil {
		return 0
	}
	return w.peers.Pending(time.Now(), w.cfg.Snapshot.PeerTimeout)
}

// offerSnapshot hands blob to the snapshot publisher. While the publisher
// is busy, one snapshot waits; a newer one replaces it (it holds all the
// older one learned), so the newest is never lost.
func (w *Worker) offerSnapshot(blob []byte) {
	for {
		select {
		case w.snaps <- blob:
			return
		default:
		}
		select {
		case <-w.snaps:
			w.log.Debug("snapshot replaced by a newer one before it was published")
		default:
		}
	}
}

// snapshotDue reports whether a snapshot is due after this batch.
func (w *Worker) snapshotDue() bool {
	s := w.cfg.Snapshot
	w.snapBatches++
	due := (s.EveryBatches > 0 && w.snapBatches >= s.EveryBatches) || (s.Interval > 0 && time.Since(w.snapAt) >= s.Interval)
	if due {
		w.snapBatches, w.snapAt = 0, time.Now()
	}
	return due
}

// encodeSnapshot writes the model's state with the offsets it has learned;
// final marks the last snapshot of a worker that is leaving the group.
func (w *Worker) encodeSnapshot(m model.Snapshotter, final bool) ([]byte, error) {
	var buf bytes.Buffer
	offsets := make(map[int32]int64, len(w.consumed))
	for p, o := range w.consumed {
		offsets[p] = o
	}
	meta := model.SnapshotMeta{Version: w.version, Offsets: offsets, Created: time.Now().UTC(), Replica: w.replica, Decider: w.decider, Final: final, Replicas: 1,
		Dedupe: w.dedupe.Keys()}
	if w.peers != nil {
		meta.Replicas += len(w.peers.Live(meta.Created, w.cfg.Snapshot.PeerTimeout))
	}
	if _, err := m.WriteSnapshot(&buf, meta); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// publishSnapshot publishes blob as a new snapshot of the group and
// retires what snapshot.keep no longer keeps; ctx bounds both.
func (w *Worker) publishSnapshot(ctx context.Context, blob []byte) {
	start := time.Now()
	store := w.snapStore()
	s, err := store.Publish(ctx, w.replica, blob)
	if err != nil {
		w.log.Error("publishing snapshot", "topic", w.cfg.Snapshot.Topic, "err", err)
		return
	}
	w.stats.Snapshots.Add(1)
	w.status.Snapshot(s.ID, time.Now())
	w.log.Info("published snapshot", "topic", w.cfg.Snapshot.Topic, "snapshot", s.ID, "bytes", len(blob), "took", time.Since(start).Round(time.Millisecond))
	w.kept = append(w.kept, snapstore.Stored{ID: s.ID, Group: s.Group, Chunks: s.Chunks}) // what Retire needs, not the blob
	for len(w.kept) > w.cfg.Snapshot.Keep {
		old := w.kept[0]
		if err := store.Retire(ctx, old); err != nil {
			w.log.Warn("retiring snapshot", "topic", w.cfg.Snapshot.Topic, "snapshot", old.ID, "err", err)
			return
		}
		w.kept = w.kept[1:]
	}
}

// restore loads the newest valid snapshot of this replica (or else of the
// group) into the model, if any, and returns it, its id, the group's
// snapshots it read and where it stopped reading the snapshot topic.
//
// A worker must not serve, or later snapshot, a model that starts from
// nothing because the topic could not be read: until it is read, /readyz
// reports the model not loaded, and after snapshot.restore_timeout of
// failed reads restore returns an error wrapping ErrUnreadable. A topic
// that holds no snapshot of the group is not an error: the model starts
// fresh. The snapshots listed become the ones this worker retires as it
// publishes newer ones (snapshot.keep), unless none of them loaded: a
// worker that starts fresh then retires only its own.
func (w *Worker) restore(ctx context.Context, m model.Snapshotter) (*model.Snapshot, string, []snapstore.Stored, map[int]int64, error) {
	topic := w.cfg.Snapshot.Topic
	if w.health != nil {
		w.health.SetModelLoaded(false)
	}
	var all []snapstore.Stored
	var ends map[int]int64
	err := retryRead(ctx, w.conn, w.cfg.Snapshot.RestoreTimeout, w.log, "reading snapshot topic "+topic, nil, func(ctx context.Context) error {
		var err error
		all, ends, err = w.snapStore().List(ctx)
		return err
	})
	if err != nil {
		return nil, "", nil, nil, fmt.Errorf("restoring the model from %s: %w", topic, err)
	}
	if w.health != nil {
		defer w.health.SetModelLoaded(true)
	}
	snap, id, ends := w.load(m, all, ends)
	if snap == nil && len(all) > 0 {
		w.log.Warn("starting from a fresh model though the group has snapshots: none of them is retired by this worker", "topic", topic, "snapshots", len(all))
		return nil, "", all, ends, nil
	}
	w.kept = all
	return snap, id, all, ends, nil
}

// load loads the newest valid of the listed snapshots into the model and
// returns it and its id (nil, "" if none loads) and ends.
func (w *Worker) load(m model.Snapshotter, all []snapstore.Stored, ends map[int]int64) (*model.Snapshot, string, map[int]int64) {
	// Its own newest snapshot, if it has one: a snapshot carries what its
	// replica learned itself (the others' learning is merged back from
	// theirs: mergeRestored). Otherwise the group's newest.
	var own, others []snapstore.Stored
	for _, s := range all {
		if s.Replica == w.replica {
			own = append(own, s)
		} else {
			others = append(others, s)
		}
	}
	snap, from := w.snapStore().NewestValid(own)
	if snap == nil {
		snap, from = w.snapStore().NewestValid(others)
	}
	if snap == nil {
		w.log.Info("no snapshot to restore", "topic", w.cfg.Snapshot.Topic, "group", w.cfg.Kafka.Group)
		return nil, "", ends
	}
	if err := m.Restore(snap); err != nil {
		w.log.Error("snapshot not loaded", "topic", w.cfg.Snapshot.Topic, "offset", from.Offset, "snapshot", from.ID, "err", err)
		return nil, "", ends
	}
	w.restored = snap.Meta
	w.dedupe.Load(snap.Meta.Dedupe) // the events the model learned up to the snapshot
	for p, o := range snap.Meta.Offsets {
		w.consumed[p] = o // the users' state ends there (rebuildSessions)
	}
	w.log.Info("restored snapshot", "topic", w.cfg.Snapshot.Topic, "offset", from.Offset, "snapshot", from.ID,
		"created", snap.Meta.Created, "items", snap.Meta.Items, "widths", snap.Meta.Widths, "offsets", snap.Meta.Offsets)
	return snap, from.ID, ends
}
