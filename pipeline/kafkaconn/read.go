package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// The look-ups and reads that several packages make outside a consumer
// group: a topic's partitions, one offset per partition, and a range of
// one partition read straight from its leader.

// Partitions returns the partition ids of topic, sorted. A topic that does
// not exist is an error wrapping kafka.UnknownTopicOrPartition.
func Partitions(ctx context.Context, client *kafka.Client, topic string) ([]int, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("reading metadata of %q: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("topic %q: %w", topic, t.Error)
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		return ids, nil
	}
	return nil, fmt.Errorf("topic %q does not exist: %w", topic, kafka.UnknownTopicOrPartition)
}

// ListOffsets asks for one offset per partition: kafka.FirstOffset,
// kafka.LastOffset, or the first offset at or after a time in Unix ms (-1
// where there is none).
func ListOffsets(ctx context.Context, client *kafka.Client, topic string, parts []int, ts int64) (map[int]int64, error) {
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

// ReadPartition calls f with every message of topic/partition in
// [from, to), in order, reading from the partition's leader.
func (c *Conn) ReadPartition(ctx context.Context, topic string, partition int, from, to int64, f func(kafka.Message)) error {
	if from >= to {
		return nil
	}
	conn, err := c.dialLeader(ctx, topic, partition)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Seek(from, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("reading %s/%d from %d: %w", topic, partition, from, err)
	}
	for next := from; next < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		batch := conn.ReadBatch(1, 16<<20)
		for next < to {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			next = m.Offset + 1
			if m.Offset < to {
				f(m)
			}
		}
		if err := batch.Close(); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s/%d at %d: %w", topic, partition, next, err)
		}
	}
	return nil
}

// dialLeader connects to the leader of topic/partition, asking each seed
// broker in turn for it, so that one broker down does not stop the read.
func (c *Conn) dialLeader(ctx context.Context, topic string, partition int) (*kafka.Conn, error) {
	var errs []error
	for _, b := range c.Brokers() {
		conn, err := c.Dialer().DialLeader(ctx, "tcp", b, topic, partition)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("via %s: %w", b, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("reading %s/%d: %w", topic, partition, errors.Join(errs...))
}
