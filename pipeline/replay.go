package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReplayTarget is where replay rewinds a group to: a time, or the earliest
// or latest offset.
type ReplayTarget struct {
	Time     time.Time // used when Earliest and Latest are false
	Earliest bool
	Latest   bool
}

func (t ReplayTarget) String() string {
	switch {
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
