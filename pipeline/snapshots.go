package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
)

// Snapshots travel on a compacted topic in chunks (snapshot.chunk_bytes,
// SnapshotChunk by default), one chunk per record batch, so that no message
// reaches Kafka's default 1 MB limit (a snapshot of the default model on
// ml-latest-small is about 18 MiB). Chunk i of snapshot ID of group G has
// key "G/ID/i" and headers naming the snapshot, the chunk, the chunk count,
// the blob's size and its SHA-256; a snapshot is complete when all its
// chunks are there and the reassembled blob has that digest.
const SnapshotChunk = 512 << 10

const (
	hdrSnapshotID = "adaptrec-snapshot-id"
	hdrChunk      = "adaptrec-snapshot-chunk"
	hdrChunks     = "adaptrec-snapshot-chunks"
	hdrSize       = "adaptrec-snapshot-size"
	hdrSHA        = "adaptrec-snapshot-sha256"
)

// SnapshotMessages splits blob into the chunk messages of snapshot id, of
// chunk bytes each (the last one shorter); chunk <= 0 means SnapshotChunk.
// replica, if not empty, names the worker that wrote it.
func SnapshotMessages(group, id, replica string, blob []byte, chunk int) []kafka.Message {
	if chunk <= 0 {
		chunk = SnapshotChunk
	}
	sum := sha256.Sum256(blob)
	n := max(1, (len(blob)+chunk-1)/chunk)
	msgs := make([]kafka.Message, 0, n)
	for i := range n {
		lo, hi := i*chunk, min((i+1)*chunk, len(blob))
		msgs = append(msgs, kafka.Message{
			Key:   []byte(fmt.Sprintf("%s/%s/%06d", group, id, i)),
			Value: blob[lo:hi],
			Headers: []kafka.Header{
				{Key: hdrSnapshotID, Value: []byte(id)},
				{Key: hdrChunk, Value: []byte(strconv.Itoa(i))},
				{Key: hdrChunks, Value: []byte(strconv.Itoa(n))},
				{Key: hdrSize, Value: []byte(strconv.Itoa(len(blob)))},
				{Key: hdrSHA, Value: []byte(hex.EncodeToString(sum[:]))},
			},
		})
		if replica != "" {
			msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: hdrReplica, Value: []byte(replica)})
		}
	}
	return msgs
}

// SnapshotWriter returns a writer for the snapshot topic: acks from all
// replicas, one chunk per record batch, chunks of up to chunk bytes
// (<= 0: SnapshotChunk) as SnapshotMessages cuts them.
func SnapshotWriter(conn *kafkaconn.Conn, topic string, chunk int) *kafka.Writer {
	if chunk <= 0 {
		chunk = SnapshotChunk
	}
	return &kafka.Writer{
		Addr: kafka.TCP(conn.Brokers()...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1,
		BatchBytes: int64(chunk) + 64<<10, MaxAttempts: 5, WriteTimeout: 30 * time.Second,
		Transport: conn.Transport(),
	}
}

// StoredSnapshot is a snapshot found on the topic.
type StoredSnapshot struct {
	ID       string
	Group    string
	Chunks   int // expected
	Have     int // found
	Size     int
	SHA256   string
	Offset   int64  // of its first chunk
	Replica  string // the worker that wrote it ("": not named)
	Complete bool   // every chunk there and the digest matches
	Problem  string
	blob     []byte
}

// Blob is the reassembled snapshot (nil unless Complete).
func (s StoredSnapshot) Blob() []byte { return s.blob }

// ListSnapshots reads the snapshot topic (every partition, start to end)
// and returns group's snapshots, oldest first. group "" lists every group's.
func ListSnapshots(ctx context.Context, conn *kafkaconn.Conn, topic, group string) ([]StoredSnapshot, error) {
	all, _, err := listSnapshots(ctx, conn, topic, group)
	return all, err
}

// listSnapshots is ListSnapshots that also returns, per partition, the
// offset where it stopped reading.
func listSnapshots(ctx context.Context, conn *kafkaconn.Conn, topic, group string) ([]StoredSnapshot, map[int]int64, error) {
	client := conn.Client()
	parts, err := Partitions(ctx, client, topic)
	if err != nil {
		return nil, nil, err
	}
	firsts, err := listOffsets(ctx, client, topic, parts, kafka.FirstOffset)
	if err != nil {
		return nil, nil, err
	}
	ends, err := listOffsets(ctx, client, topic, parts, kafka.LastOffset)
	if err != nil {
		return nil, nil, err
	}
	type key struct{ group, id string }
	found := map[key]*StoredSnapshot{}
	chunks := map[key]map[int][]byte{}
	for _, p := range parts {
		err := readPartition(ctx, conn, topic, p, firsts[p], ends[p], func(m kafka.Message) {
			g, id, ok := snapshotKey(m.Key)
			if !ok || (group != "" && g != group) {
				return
			}
			k := key{g, id}
			s := found[k]
			if m.Value == nil { // a tombstone: the snapshot was retired
				delete(found, k)
				delete(chunks, k)
				return
			}
			hdr := headers(m.Headers)
			if s == nil {
				n, _ := strconv.Atoi(hdr[hdrChunks])
				size, _ := strconv.Atoi(hdr[hdrSize])
				s = &StoredSnapshot{ID: id, Group: g, Chunks: n, Size: size, SHA256: hdr[hdrSHA], Offset: m.Offset, Replica: hdr[hdrReplica]}
				found[k], chunks[k] = s, map[int][]byte{}
			}
			i, err := strconv.Atoi(hdr[hdrChunk])
			if err != nil || i < 0 || i >= s.Chunks {
				s.Problem = fmt.Sprintf("chunk at offset %d has a bad index %q", m.Offset, hdr[hdrChunk])
				return
			}
			chunks[k][i] = m.Value
		})
		if err != nil {
			return nil, nil, err
		}
	}
	var out []StoredSnapshot
	for k, s := range found {
		s.Have = len(chunks[k])
		if s.Problem == "" {
			if s.Have < s.Chunks {
				s.Problem = fmt.Sprintf("%d of %d chunks", s.Have, s.Chunks)
			} else {
				var b bytes.Buffer
				for i := range s.Chunks {
					b.Write(chunks[k][i])
				}
				sum := sha256.Sum256(b.Bytes())
				switch {
				case b.Len() != s.Size:
					s.Problem = fmt.Sprintf("%d bytes, headers say %d", b.Len(), s.Size)
				case hex.EncodeToString(sum[:]) != s.SHA256:
					s.Problem = "reassembled bytes do not match their SHA-256"
				default:
					s.Complete, s.blob = true, b.Bytes()
				}
			}
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out, ends, nil
}

func snapshotKey(k []byte) (group, id string, ok bool) {
	parts := strings.Split(string(k), "/")
	if len(parts) < 3 {
		return "", "", false
	}
	n := len(parts)
	return strings.Join(parts[:n-2], "/"), parts[n-2], true
}

func headers(hs []kafka.Header) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// RetireMessages are the tombstones of a snapshot's chunks: once
// compacted, the snapshot is gone from the topic.
func RetireMessages(s StoredSnapshot) []kafka.Message {
	msgs := make([]kafka.Message, s.Chunks)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("%s/%s/%06d", s.Group, s.ID, i))}
	}
	return msgs
}

// NewestValid returns the newest of the listed snapshots that is complete
// and decodes and verifies; each newer one that does not is logged with
// the reason and skipped. nil, nil if none is valid.
func NewestValid(all []StoredSnapshot, topic string, log *slog.Logger) (*model.Snapshot, *StoredSnapshot) {
	for i := len(all) - 1; i >= 0; i-- {
		s := &all[i]
		if !s.Complete {
			log.Warn("skipping snapshot", "topic", topic, "offset", s.Offset, "snapshot", s.ID, "reason", s.Problem)
			continue
		}
		snap, err := model.ReadSnapshot(bytes.NewReader(s.blob))
		if err != nil {
			log.Warn("skipping snapshot", "topic", topic, "offset", s.Offset, "snapshot", s.ID, "reason", err)
			continue
		}
		return snap, s
	}
	return nil, nil
}
