package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
)

// ReplayTarget is where replay rewinds a group to: a time, or the earliest
// or latest offset.
type ReplayTarget struct {
	Time     time.Time // used when Earliest, Latest and Offsets are unset
	Earliest bool
	Latest   bool
	// Offsets, if set, are the offsets per partition a snapshot learned up
	// to; partitions it does not name go to their earliest offset.
	Offsets map[int32]int64
}

func (t ReplayTarget) String() string {
	switch {
	case t.Offsets != nil:
		return "a snapshot's offsets"
	case t.Earliest:
		return "earliest"
	case t.Latest:
		return "latest"
	}
	return t.Time.Format(time.RFC3339Nano)
}

// ErrGroupActive is returned when replay finds live members in the group.
var ErrGroupActive = errors.New("consumer group has live members")

// Replay rewinds the committed offsets of group on every partition of topic
// to target: for a time, the first message produced at or after it (the end
// of the partition if none is). The group must be empty (stop its workers
// first); otherwise Replay changes nothing and returns an error wrapping
// ErrGroupActive. It returns the new offset of every partition.
func Replay(ctx context.Context, client *kafka.Client, group, topic string, target ReplayTarget) (map[int]int64, error) {
	desc, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil, fmt.Errorf("describing group %q: %w", group, err)
	}
	for _, g := range desc.Groups {
		if g.Error != nil && !errors.Is(g.Error, kafka.GroupIdNotFound) {
			return nil, fmt.Errorf("describing group %q: %w", group, g.Error)
		}
		if len(g.Members) > 0 {
			ids := make([]string, len(g.Members))
			for i, m := range g.Members {
				ids[i] = m.ClientHost + "/" + m.MemberID
			}
			return nil, fmt.Errorf("replay refused: %w: group %q is %s with %d member(s) (%s); stop its workers and retry",
				ErrGroupActive, group, g.GroupState, len(g.Members), strings.Join(ids, ", "))
		}
	}

	parts, err := Partitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	var offsets map[int]int64
	switch {
	case target.Offsets != nil:
		offsets, err = listOffsets(ctx, client, topic, parts, kafka.FirstOffset)
		for p := range offsets {
			if off, ok := target.Offsets[int32(p)]; ok {
				offsets[p] = off
			}
		}
	case target.Earliest:
		offsets, err = listOffsets(ctx, client, topic, parts, kafka.FirstOffset)
	case target.Latest:
		offsets, err = listOffsets(ctx, client, topic, parts, kafka.LastOffset)
	default:
		offsets, err = listOffsets(ctx, client, topic, parts, target.Time.UnixMilli())
		var ends map[int]int64
		for p, off := range offsets {
			if off >= 0 || err != nil {
				continue
			}
			// No message at or after the time: start at the end.
			if ends == nil {
				if ends, err = listOffsets(ctx, client, topic, parts, kafka.LastOffset); err != nil {
					break
				}
			}
			offsets[p] = ends[p]
		}
	}
	if err != nil {
		return nil, err
	}

	commit := make([]kafka.OffsetCommit, 0, len(offsets))
	for _, p := range parts {
		commit = append(commit, kafka.OffsetCommit{Partition: p, Offset: offsets[p]})
	}
	resp, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      group,
		GenerationID: -1, // accepted only while the group has no members
		MemberID:     "",
		Topics:       map[string][]kafka.OffsetCommit{topic: commit},
	})
	if err != nil {
		return nil, fmt.Errorf("committing offsets of group %q: %w", group, err)
	}
	for _, pc := range resp.Topics[topic] {
		if pc.Error != nil {
			if errors.Is(pc.Error, kafka.UnknownMemberId) || errors.Is(pc.Error, kafka.IllegalGeneration) || errors.Is(pc.Error, kafka.RebalanceInProgress) {
				return nil, fmt.Errorf("replay refused: %w: a member joined group %q while rewinding (%v)", ErrGroupActive, group, pc.Error)
			}
			return nil, fmt.Errorf("committing offset of %s/%d for group %q: %w", topic, pc.Partition, group, pc.Error)
		}
	}
	return offsets, nil
}

// listOffsets asks for one offset per partition: kafka.FirstOffset,
// kafka.LastOffset, or the first offset at or after a time in Unix ms (-1
// where there is none).
func listOffsets(ctx context.Context, client *kafka.Client, topic string, parts []int, ts int64) (map[int]int64, error) {
	reqs := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafka.OffsetRequest{Partition: p, Timestamp: ts}
	}
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %q: %w", topic, err)
	}
	out := map[int]int64{}
	for _, po := range lo.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		switch ts {
		case kafka.FirstOffset, kafka.LastOffset:
			// kafka-go files the answer under FirstOffset or LastOffset by the
			// timestamp the broker echoes (-1 for both kinds of query), and
			// presets the other field to 0 or -1: the larger is the answer.
			out[po.Partition] = max(po.FirstOffset, po.LastOffset)
		default:
			best := int64(-1)
			for off := range po.Offsets {
				if best < 0 || off < best {
					best = off
				}
			}
			out[po.Partition] = best
		}
	}
	if len(out) != len(parts) {
		return nil, fmt.Errorf("listing offsets of %q: got %d of %d partitions", topic, len(out), len(parts))
	}
	return out, nil
}

// CommittedOffsets returns group's committed offset of every partition of
// topic (-1 where none is committed).
func CommittedOffsets(ctx context.Context, client *kafka.Client, group, topic string) (map[int]int64, error) {
	parts, err := Partitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("fetching offsets of group %q: %w", group, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("fetching offsets of group %q: %w", group, resp.Error)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetching offset of %s/%d for group %q: %w", topic, p.Partition, group, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// EndOffsets returns the end (next) offset of every partition of topic.
func EndOffsets(ctx context.Context, client *kafka.Client, topic string) (map[int]int64, error) {
	parts, err := Partitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	return listOffsets(ctx, client, topic, parts, kafka.LastOffset)
}

// ReplaySnapshot rewinds group on the feedback topic to the offsets that
// snapshot id of the group learned up to, and publishes the snapshot again
// as the group's newest, so that the next worker restores that model and
// learns from exactly where it stopped: with the same events in the same
// order, it reaches the same weights, bit for bit. The snapshot must be
// complete and verify; the group must be empty. It returns the new offsets
// and the id of the republished snapshot.
func ReplaySnapshot(ctx context.Context, conn *kafkaconn.Conn, group, topic, snapshotTopic, id string, chunk int) (map[int]int64, string, error) {
	all, err := ListSnapshots(ctx, conn, snapshotTopic, group)
	if err != nil {
		return nil, "", err
	}
	var found *StoredSnapshot
	for i := range all {
		if all[i].ID == id {
			found = &all[i]
		}
	}
	if found == nil {
		return nil, "", fmt.Errorf("replay: group %q has no snapshot %s on %s (adaptrec snapshot ls lists them)", group, id, snapshotTopic)
	}
	if !found.Complete {
		return nil, "", fmt.Errorf("replay: snapshot %s cannot be used: %s", id, found.Problem)
	}
	snap, err := model.ReadSnapshot(bytes.NewReader(found.blob))
	if err != nil {
		return nil, "", fmt.Errorf("replay: snapshot %s cannot be used: %w", id, err)
	}
	offsets, err := Replay(ctx, conn.Client(), group, topic, ReplayTarget{Offsets: snap.Meta.Offsets})
	if err != nil {
		return nil, "", err
	}
	newID := fmt.Sprintf("%019d", time.Now().UnixNano())
	msgs := SnapshotMessages(group, newID, found.Replica, found.blob, chunk)
	w := SnapshotWriter(conn.WithClientID("adaptrec-replay"), snapshotTopic, chunk)
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return offsets, "", fmt.Errorf("replay: the offsets were rewound, but publishing snapshot %s again failed (a worker would restore a newer one): %w; run the replay again", id, err)
	}
	return offsets, newID, nil
}
