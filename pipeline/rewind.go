package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

// ErrSnapshotAhead is returned when a rewind goes back before what every
// snapshot of the group has learned: the next worker would restore a
// model that has already learned the events it reads again.
var ErrSnapshotAhead = errors.New("the group's snapshots have learned past the rewind point")

// ReplayOptions are the snapshot side of ReplayTo.
type ReplayOptions struct {
	// Store is the snapshot store of the group ReplayTo rewinds.
	Store *snapstore.Store
	// FreshModel retires every snapshot of the group, so the next worker
	// starts from an empty model.
	FreshModel bool
}

// Rewound is what ReplayTo did.
type Rewound struct {
	// Offsets are the offsets committed, by partition.
	Offsets map[int]int64
	// Requested are the offsets the target asked for; they differ from
	// Offsets when the replay starts where an earlier snapshot stopped.
	Requested map[int]int64
	// Restore is the snapshot the next worker restores ("": none, it
	// starts from an empty model); Republished, if not empty, the id under
	// which it was published again as the group's newest.
	Restore     string
	Republished string
	// Retired are the snapshots of the group that were retired.
	Retired []string
}

// ReplayTo is Replay that keeps the model consistent with the offsets:
// the next worker restores the group's newest snapshot, so a rewind to a
// point before what that snapshot learned would learn the events in
// between twice. If a snapshot of the group learned past the target on
// any partition, ReplayTo takes the newest valid snapshot whose offsets
// are all at or before the target, rewinds to where that snapshot stopped
// (so the events between it and the target are learned again too, by a
// model that had not learned them), publishes it again as the group's
// newest and retires the snapshots that learned past it. If there is no
// such snapshot it refuses, changing nothing (ErrSnapshotAhead), unless
// opts.FreshModel is set. With FreshModel every snapshot of the group is
// retired and the group rewound to the target: the next worker starts
// from an empty model.
func ReplayTo(ctx context.Context, client *kafka.Client, group, topic string, target ReplayTarget, opts ReplayOptions) (Rewound, error) {
	var r Rewound
	if err := checkIdle(ctx, client, group); err != nil {
		return r, err
	}
	requested, err := targetOffsets(ctx, client, group, topic, target)
	if err != nil {
		return r, err
	}
	r.Requested = requested
	all, _, err := opts.Store.List(ctx)
	if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
		return r, err
	}
	if opts.FreshModel {
		r.Offsets = requested
		if err := commitOffsets(ctx, client, group, topic, requested); err != nil {
			return r, err
		}
		return r, retire(ctx, opts.Store, all, &r)
	}
	parts, err := Partitions(ctx, client, topic)
	if err != nil {
		return r, err
	}
	firsts, err := kafkaconn.ListOffsets(ctx, client, topic, parts, kafka.FirstOffset)
	if err != nil {
		return r, err
	}
	limit := rewindLimit(parts, requested, firsts)
	restore, ahead := chooseSnapshot(all, limit)
	if len(ahead) == 0 {
		// Nothing learned past the target: the next worker restores the
		// group's newest as it would have.
		if restore != nil {
			r.Restore = restore.id
		}
		r.Offsets = requested
		return r, commitOffsets(ctx, client, group, topic, requested)
	}
	if restore == nil {
		a := ahead[len(ahead)-1]
		return r, fmt.Errorf("replay refused: %w: snapshot %s of group %q learned up to offset %d of %s/%d, the rewind goes to %d, and no snapshot of the group stops at or before the rewind point on every partition; a worker would restore it and learn those events twice (give --fresh-model to start from an empty model, or --snapshot ID to replay from a snapshot: adaptrec snapshot ls)",
			ErrSnapshotAhead, a.id, group, a.past.off, topic, a.past.p, limit[a.past.p])
	}
	r.Offsets = listedOrFirst(parts, restore.meta.Offsets, firsts)
	r.Restore = restore.id
	if err := commitOffsets(ctx, client, group, topic, r.Offsets); err != nil {
		return r, err
	}
	return r, republish(ctx, opts.Store, *restore.s, ahead, &r)
}

// listed is a valid snapshot of the group, with its metadata, and for one
// learned past the rewind point, a partition where it did.
type listed struct {
	id   string
	s    *snapstore.Stored
	meta model.SnapshotMeta
	past struct {
		p   int
		off int64
	}
}

// chooseSnapshot returns the newest valid snapshot of all (oldest first)
// whose offsets are at or before limit on every partition, and the valid
// snapshots that learned past limit on some partition. Snapshots that are
// incomplete or do not decode are passed over, as a worker passes them.
func chooseSnapshot(all []snapstore.Stored, limit map[int]int64) (restore *listed, ahead []*listed) {
	for i := range all {
		s := &all[i]
		snap, err := s.Snapshot()
		if err != nil {
			continue
		}
		l := &listed{id: s.ID, s: s, meta: snap.Meta}
		isAhead := false
		for p, off := range snap.Meta.Offsets {
			if lim, ok := limit[int(p)]; ok && off > lim {
				isAhead, l.past.p, l.past.off = true, int(p), off
				break
			}
		}
		if isAhead {
			ahead = append(ahead, l)
		} else {
			restore = l
		}
	}
	return restore, ahead
}

// rewindLimit is, for every partition, the requested offset, or where it has
// none (left uncommitted), its first offset.
func rewindLimit(parts []int, requested, firsts map[int]int64) map[int]int64 {
	out := make(map[int]int64, len(parts))
	for _, p := range parts {
		if off, ok := requested[p]; ok {
			out[p] = off
		} else {
			out[p] = firsts[p]
		}
	}
	return out
}

// listedOrFirst is, for every partition, the offset a snapshot names, or
// the partition's first offset (the snapshot learned nothing of it).
func listedOrFirst(parts []int, offsets map[int32]int64, firsts map[int]int64) map[int]int64 {
	out := make(map[int]int64, len(parts))
	for _, p := range parts {
		if off, ok := offsets[int32(p)]; ok {
			out[p] = off
		} else {
			out[p] = firsts[p]
		}
	}
	return out
}

// republish publishes s again as the group's newest snapshot, then
// retires the snapshots ahead of it, recording both in r.
func republish(ctx context.Context, store *snapstore.Store, s snapstore.Stored, ahead []*listed, r *Rewound) error {
	again, err := store.Publish(ctx, s.Replica, s.Blob)
	if err != nil {
		return fmt.Errorf("replay: the offsets were rewound, but publishing snapshot %s again failed (a worker would restore a newer one): %w; run the replay again", s.ID, err)
	}
	r.Republished = again.ID
	retiring := make([]snapstore.Stored, 0, len(ahead))
	for _, a := range ahead {
		retiring = append(retiring, *a.s)
	}
	return retire(ctx, store, retiring, r)
}

// retire publishes the tombstones of snapshots, recording them in r.
func retire(ctx context.Context, store *snapstore.Store, snapshots []snapstore.Stored, r *Rewound) error {
	if len(snapshots) == 0 {
		return nil
	}
	ids := make([]string, 0, len(snapshots))
	for _, s := range snapshots {
		ids = append(ids, s.ID)
	}
	if err := store.Retire(ctx, snapshots...); err != nil {
		return fmt.Errorf("replay: the offsets were rewound, but retiring snapshots %s failed (a worker could restore one of them): %w; run the replay again",
			strings.Join(ids, ", "), err)
	}
	r.Retired = slices.Clone(ids)
	return nil
}
