package snapstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
)

// Stored is a snapshot found on the topic (or just published).
type Stored struct {
	ID       string
	Group    string
	Chunks   int // expected
	Have     int // found
	Size     int
	SHA256   string
	Offset   int64  // of its first chunk (-1: just published, not read)
	Replica  string // the worker that wrote it ("": not named)
	Complete bool   // every chunk there and the digest matches
	Problem  string // why it is not Complete
	Blob     []byte // the reassembled snapshot (nil unless Complete)
}

// Snapshot decodes and verifies the snapshot.
func (s Stored) Snapshot() (*model.Snapshot, error) {
	if !s.Complete {
		return nil, fmt.Errorf("snapshot %s cannot be used: %s", s.ID, s.Problem)
	}
	return model.ReadSnapshot(bytes.NewReader(s.Blob))
}

// Store is the snapshot topic as one group's workers and tools see it.
// It is safe for concurrent use; Close releases its writer.
type Store struct {
	conn         *kafkaconn.Conn
	topic, group string
	chunk        int
	log          *slog.Logger

	mu sync.Mutex
	w  *kafka.Writer // made at the first write
}

// New returns the store of group's snapshots on topic, publishing chunks
// of chunkBytes (<= 0: Chunk). group "" lists every group's snapshots (and
// must not publish).
func New(conn *kafkaconn.Conn, topic, group string, chunkBytes int, log *slog.Logger) *Store {
	if chunkBytes <= 0 {
		chunkBytes = Chunk
	}
	return &Store{conn: conn, topic: topic, group: group, chunk: chunkBytes, log: log}
}

// Topic is the snapshot topic.
func (s *Store) Topic() string { return s.topic }

// Group is the group whose snapshots the store holds ("": every group's).
func (s *Store) Group() string { return s.group }

// writer returns the store's writer: acks from all replicas, one chunk
// per record batch.
func (s *Store) writer() *kafka.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		s.w = &kafka.Writer{
			Addr: kafka.TCP(s.conn.Brokers()...), Topic: s.topic, Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1,
			BatchBytes: int64(s.chunk) + 64<<10, MaxAttempts: 5, WriteTimeout: 30 * time.Second,
			Transport: s.conn.Transport(),
		}
	}
	return s.w
}

// write writes msgs; when ctx ends first, the error wraps ctx's cause.
func (s *Store) write(ctx context.Context, msgs []kafka.Message) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	err := s.writer().WriteMessages(ctx, msgs...)
	if err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// Publish publishes blob as a new snapshot of the group, written by
// replica ("": not named), and returns it. It returns when every chunk is
// acknowledged, or with an error wrapping ctx's cause when ctx ends first.
func (s *Store) Publish(ctx context.Context, replica string, blob []byte) (Stored, error) {
	id := fmt.Sprintf("%019d", time.Now().UnixNano())
	msgs := Messages(s.group, id, replica, blob, s.chunk)
	if err := s.write(ctx, msgs); err != nil {
		return Stored{}, fmt.Errorf("publishing snapshot %s to %s: %w", id, s.topic, err)
	}
	return Stored{ID: id, Group: s.group, Chunks: len(msgs), Have: len(msgs), Size: len(blob), Offset: -1,
		Replica: replica, Complete: true, Blob: blob}, nil
}

// Retire writes the tombstones of the snapshots old: once compacted, they
// are gone from the topic.
func (s *Store) Retire(ctx context.Context, old ...Stored) error {
	var msgs []kafka.Message
	for _, o := range old {
		msgs = append(msgs, Tombstones(o)...)
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := s.write(ctx, msgs); err != nil {
		return fmt.Errorf("retiring snapshots on %s: %w", s.topic, err)
	}
	return nil
}

// Close closes the store's writer; a later write makes a new one.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	s.w = nil
	return err
}

// List reads the snapshot topic (every partition, start to end) and
// returns the group's snapshots, oldest first, and per partition the
// offset where it stopped reading (where Follow takes over).
func (s *Store) List(ctx context.Context) ([]Stored, map[int]int64, error) {
	client := s.conn.Client()
	parts, err := kafkaconn.Partitions(ctx, client, s.topic)
	if err != nil {
		return nil, nil, err
	}
	firsts, err := kafkaconn.ListOffsets(ctx, client, s.topic, parts, kafka.FirstOffset)
	if err != nil {
		return nil, nil, err
	}
	ends, err := kafkaconn.ListOffsets(ctx, client, s.topic, parts, kafka.LastOffset)
	if err != nil {
		return nil, nil, err
	}
	type key struct{ group, id string }
	found := map[key]*assembly{}
	for _, p := range parts {
		err := s.conn.ReadPartition(ctx, s.topic, p, firsts[p], ends[p], func(m kafka.Message) {
			g, id, ok := parseKey(m.Key)
			if !ok || (s.group != "" && g != s.group) {
				return
			}
			k := key{g, id}
			if m.Value == nil { // a tombstone: the snapshot was retired
				delete(found, k)
				return
			}
			hdr := headers(m.Headers)
			a := found[k]
			if a == nil {
				a = start(g, id, m, hdr)
				found[k] = a
			}
			if !a.add(m, hdr) {
				a.Problem = fmt.Sprintf("chunk at offset %d has a bad index %q", m.Offset, hdr[hdrChunk])
			}
		})
		if err != nil {
			return nil, nil, err
		}
	}
	out := make([]Stored, 0, len(found))
	for _, a := range found {
		if a.Problem != "" {
			st := a.Stored
			st.Have = len(a.chunks)
			out = append(out, st)
			continue
		}
		out = append(out, a.finish())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out, ends, nil
}
