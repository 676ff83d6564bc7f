package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

// ReplayTarget is where replay rewinds a group to: a time, the earliest
// or latest offset, or given offsets.
type ReplayTarget struct {
	Time     time.Time // used when no other field is set
	Earliest bool
	Latest   bool
	// Offsets, if set, are the offsets per partition a snapshot learned up
	// to; partitions it does not name go to their earliest offset.
	Offsets map[int32]int64
	// Offset, if HasOffset, is one offset for every partition.
	Offset    int64
	HasOffset bool
	// At, if set, are offsets of the partitions it names; the others keep
	// their committed offsets.
	At map[int32]int64
}

// String describes the target for messages.
func (t ReplayTarget) String() string {
	switch {
	case t.Offsets != nil:
		return "a snapshot's offsets"
	case t.Earliest:
		return "earliest"
	case t.Latest:
		return "latest"
	case t.HasOffset:
		return fmt.Sprintf("offset %d", t.Offset)
	case t.At != nil:
		parts := make([]int32, 0, len(t.At))
		for p := range t.At {
			parts = append(parts, p)
		}
		slices.Sort(parts)
		s := make([]string, len(parts))
		for i, p := range parts {
			s[i] = fmt.Sprintf("%d:%d", p, t.At[p])
		}
		return "offsets " + strings.Join(s, ",")
	}
	return t.Time.Format(time.RFC3339Nano)
}

// ParseOffsetTarget parses replay's --to-offset: earliest, latest, one
// offset for every partition (e.g. 1200), or PARTITION:OFFSET pairs
// separated by commas (e.g. 0:1200,3:800), the partitions not named
// keeping their committed offsets. Errors name the bad part.
func ParseOffsetTarget(s string) (ReplayTarget, error) {
	switch s {
	case "earliest":
		return ReplayTarget{Earliest: true}, nil
	case "latest":
		return ReplayTarget{Latest: true}, nil
	}
	if !strings.Contains(s, ":") {
		n, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil:
			return ReplayTarget{}, fmt.Errorf("%q is not earliest, latest, an offset or PARTITION:OFFSET,... (e.g. 0:1200,3:800)", s)
		case n < 0:
			return ReplayTarget{}, fmt.Errorf("offset %d is negative", n)
		}
		return ReplayTarget{Offset: n, HasOffset: true}, nil
	}
	at := map[int32]int64{}
	for _, pair := range strings.Split(s, ",") {
		ps, offs, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok {
			return ReplayTarget{}, fmt.Errorf("%q is not PARTITION:OFFSET", pair)
		}
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 {
			return ReplayTarget{}, fmt.Errorf("%q: partition %q is not a partition number", pair, ps)
		}
		off, err := strconv.ParseInt(offs, 10, 64)
		switch {
		case err != nil:
			return ReplayTarget{}, fmt.Errorf("%q: offset %q of partition %d is not a number", pair, offs, p)
		case off < 0:
			return ReplayTarget{}, fmt.Errorf("%q: offset %d of partition %d is negative", pair, off, p)
		}
		if _, dup := at[int32(p)]; dup {
			return ReplayTarget{}, fmt.Errorf("partition %d is named twice", p)
		}
		at[int32(p)] = off
	}
	return ReplayTarget{At: at}, nil
}

// ErrGroupActive is returned when replay finds live members in the group.
var ErrGroupActive = errors.New("consumer group has live members")

// Replay rewinds the committed offsets of group on every partition of topic
// to target: for a time, the first message produced at or after it (the end
// of the partition if none is); given offsets must lie within the
// partition (from its first offset to its end, which means latest). The
// group must be empty (stop its workers first); otherwise Replay changes
// nothing and returns an error wrapping ErrGroupActive. It returns the new
// offset of every partition it rewound. Replay does not look at the
// group's snapshots; ReplayTo does.
func Replay(ctx context.Context, client *kafka.Client, group, topic string, target ReplayTarget) (map[int]int64, error) {
	if err := checkIdle(ctx, client, group); err != nil {
		return nil, err
	}
	offsets, err := targetOffsets(ctx, client, group, topic, target)
	if err != nil {
		return nil, err
	}
	if err := commitOffsets(ctx, client, group, topic, offsets); err != nil {
		return nil, err
	}
	return offsets, nil
}

// checkIdle returns an error wrapping ErrGroupActive, naming the members,
// if group has live members.
func checkIdle(ctx context.Context, client *kafka.Client, group string) error {
	desc, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return fmt.Errorf("describing group %q: %w", group, err)
	}
	for _, g := range desc.Groups {
		if g.Error != nil && !errors.Is(g.Error, kafka.GroupIdNotFound) {
			return fmt.Errorf("describing group %q: %w", group, g.Error)
		}
		if len(g.Members) > 0 {
			ids := make([]string, len(g.Members))
			for i, m := range g.Members {
				ids[i] = m.ClientHost + "/" + m.MemberID
			}
			return fmt.Errorf("replay refused: %w: group %q is %s with %d member(s) (%s); stop its workers and retry",
				ErrGroupActive, group, g.GroupState, len(g.Members), strings.Join(ids, ", "))
		}
	}
	return nil
}

// targetOffsets resolves target to an offset per partition of topic.
// Partitions that target leaves where they are (ReplayTarget.At) and that
// have no committed offset are left out.
func targetOffsets(ctx context.Context, client *kafka.Client, group, topic string, target ReplayTarget) (map[int]int64, error) {
	parts, err := Partitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	switch {
	case target.Offsets != nil:
		offsets, err := kafkaconn.ListOffsets(ctx, client, topic, parts, kafka.FirstOffset)
		for p := range offsets {
			if off, ok := target.Offsets[int32(p)]; ok {
				offsets[p] = off
			}
		}
		return offsets, err
	case target.Earliest:
		return kafkaconn.ListOffsets(ctx, client, topic, parts, kafka.FirstOffset)
	case target.Latest:
		return kafkaconn.ListOffsets(ctx, client, topic, parts, kafka.LastOffset)
	case target.HasOffset || target.At != nil:
		return givenOffsets(ctx, client, group, topic, parts, target)
	}
	offsets, err := kafkaconn.ListOffsets(ctx, client, topic, parts, target.Time.UnixMilli())
	if err != nil {
		return nil, err
	}
	var ends map[int]int64
	for p, off := range offsets {
		if off >= 0 {
			continue
		}
		// No message at or after the time: start at the end.
		if ends == nil {
			if ends, err = kafkaconn.ListOffsets(ctx, client, topic, parts, kafka.LastOffset); err != nil {
				return nil, err
			}
		}
		offsets[p] = ends[p]
	}
	return offsets, nil
}

// givenOffsets checks the offsets target gives against the partitions of
// topic: every partition named must exist, every offset must lie from the
// partition's first offset to its end (latest); offsets are not clamped.
func givenOffsets(ctx context.Context, client *kafka.Client, group, topic string, parts []int, target ReplayTarget) (map[int]int64, error) {
	firsts, err := kafkaconn.ListOffsets(ctx, client, topic, parts, kafka.FirstOffset)
	if err != nil {
		return nil, err
	}
	ends, err := kafkaconn.ListOffsets(ctx, client, topic, parts, kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	want := map[int]int64{}
	if target.HasOffset {
		for _, p := range parts {
			want[p] = target.Offset
		}
	} else {
		committed, err := CommittedOffsets(ctx, client, group, topic)
		if err != nil {
			return nil, err
		}
		for p, off := range committed {
			if off >= 0 {
				want[p] = off
			}
		}
		for p, off := range target.At {
			if !slices.Contains(parts, int(p)) {
				return nil, fmt.Errorf("partition %d: %q has partitions 0 to %d", p, topic, len(parts)-1)
			}
			want[int(p)] = off
		}
	}
	for _, p := range parts {
		off, ok := want[p]
		switch {
		case !ok:
		case off > ends[p]:
			return nil, fmt.Errorf("partition %d: offset %d is beyond the end of %s/%d (%d, the offset of its next message); offsets are not clamped",
				p, off, topic, p, ends[p])
		case off < firsts[p]:
			return nil, fmt.Errorf("partition %d: offset %d is before the first offset of %s/%d (%d; older messages were deleted); offsets are not clamped",
				p, off, topic, p, firsts[p])
		}
	}
	return want, nil
}

// commitOffsets commits offsets as group's on topic; the group must have
// no members.
func commitOffsets(ctx context.Context, client *kafka.Client, group, topic string, offsets map[int]int64) error {
	commit := make([]kafka.OffsetCommit, 0, len(offsets))
	for p, off := range offsets {
		commit = append(commit, kafka.OffsetCommit{Partition: p, Offset: off})
	}
	slices.SortFunc(commit, func(a, b kafka.OffsetCommit) int { return a.Partition - b.Partition })
	resp, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      group,
		GenerationID: -1, // accepted only while the group has no members
		MemberID:     "",
		Topics:       map[string][]kafka.OffsetCommit{topic: commit},
	})
	if err != nil {
		return fmt.Errorf("committing offsets of group %q: %w", group, err)
	}
	for _, pc := range resp.Topics[topic] {
		if pc.Error != nil {
			if errors.Is(pc.Error, kafka.UnknownMemberId) || errors.Is(pc.Error, kafka.IllegalGeneration) || errors.Is(pc.Error, kafka.RebalanceInProgress) {
				return fmt.Errorf("replay refused: %w: a member joined group %q while rewinding (%v)", ErrGroupActive, group, pc.Error)
			}
			return fmt.Errorf("committing offset of %s/%d for group %q: %w", topic, pc.Partition, group, pc.Error)
		}
	}
	return nil
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
	return kafkaconn.ListOffsets(ctx, client, topic, parts, kafka.LastOffset)
}

// ReplaySnapshot rewinds the group of store on the feedback topic to the
// offsets that snapshot id of the group learned up to, publishes the
// snapshot again as the group's newest, so that the next worker restores
// that model and learns from exactly where it stopped (with the same
// events in the same order, it reaches the same weights, bit for bit),
// and retires the group's snapshots that learned past it, whose learning
// a worker would otherwise merge back in. The snapshot must be complete
// and verify; the group must be empty.
func ReplaySnapshot(ctx context.Context, client *kafka.Client, topic, id string, store *snapstore.Store) (Rewound, error) {
	var r Rewound
	group := store.Group()
	all, _, err := store.List(ctx)
	if err != nil {
		return r, err
	}
	found, err := store.Select(all, id)
	var missing *snapstore.NotFoundError
	switch {
	case errors.As(err, &missing):
		return r, fmt.Errorf("replay: group %q has no snapshot %s on %s (adaptrec snapshot ls lists them)", group, id, store.Topic())
	case err != nil:
		return r, fmt.Errorf("replay: %w", err)
	}
	snap, err := found.Snapshot()
	if err != nil {
		return r, fmt.Errorf("replay: snapshot %s cannot be used: %w", id, err)
	}
	if r.Offsets, err = Replay(ctx, client, group, topic, ReplayTarget{Offsets: snap.Meta.Offsets}); err != nil {
		return r, err
	}
	r.Requested, r.Restore = r.Offsets, found.ID
	_, ahead := chooseSnapshot(all, r.Offsets)
	return r, republish(ctx, store, found, ahead, &r)
}
