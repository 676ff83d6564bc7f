package snapstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
)

// Snapshots travel on a compacted topic in chunks (snapshot.chunk_bytes,
// Chunk by default), one chunk per record batch, so that no message
// reaches Kafka's default 1 MB limit (a snapshot of the default model on
// ml-latest-small is about 18 MiB). Chunk i of snapshot ID of group G has
// key "G/ID/i" and headers naming the snapshot, the chunk, the chunk count,
// the blob's size and its SHA-256, and the replica that wrote it; a
// snapshot is complete when all its chunks are there and the reassembled
// blob has that digest.
const Chunk = 512 << 10

const (
	hdrSnapshotID = "adaptrec-snapshot-id"
	hdrChunk      = "adaptrec-snapshot-chunk"
	hdrChunks     = "adaptrec-snapshot-chunks"
	hdrSize       = "adaptrec-snapshot-size"
	hdrSHA        = "adaptrec-snapshot-sha256"
	// hdrReplica names the replica that wrote a snapshot, so that a
	// replica can skip its own snapshots without decoding them.
	hdrReplica = "adaptrec-snapshot-replica"
)

// Messages splits blob into the chunk messages of snapshot id, of chunk
// bytes each (the last one shorter); chunk <= 0 means Chunk. replica, if
// not empty, names the worker that wrote it.
func Messages(group, id, replica string, blob []byte, chunk int) []kafka.Message {
	if chunk <= 0 {
		chunk = Chunk
	}
	sum := sha256.Sum256(blob)
	n := max(1, (len(blob)+chunk-1)/chunk)
	msgs := make([]kafka.Message, 0, n)
	for i := range n {
		lo, hi := i*chunk, min((i+1)*chunk, len(blob))
		msgs = append(msgs, kafka.Message{
			Key:   chunkKey(group, id, i),
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

// Tombstones are the tombstones of a snapshot's chunks: once compacted,
// the snapshot is gone from the topic.
func Tombstones(s Stored) []kafka.Message {
	msgs := make([]kafka.Message, s.Chunks)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: chunkKey(s.Group, s.ID, i)}
	}
	return msgs
}

func chunkKey(group, id string, i int) []byte {
	return []byte(fmt.Sprintf("%s/%s/%06d", group, id, i))
}

// parseKey splits a chunk's key "G/ID/i" (G may hold slashes).
func parseKey(k []byte) (group, id string, ok bool) {
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

// assembly is a snapshot whose chunks are being gathered.
type assembly struct {
	Stored
	chunks map[int][]byte
}

// start begins the assembly of snapshot id of group from the headers of
// its first chunk read, m.
func start(group, id string, m kafka.Message, hdr map[string]string) *assembly {
	n, _ := strconv.Atoi(hdr[hdrChunks])
	size, _ := strconv.Atoi(hdr[hdrSize])
	return &assembly{
		Stored: Stored{ID: id, Group: group, Chunks: n, Size: size, SHA256: hdr[hdrSHA], Offset: m.Offset, Replica: hdr[hdrReplica]},
		chunks: map[int][]byte{},
	}
}

// add files chunk m; it reports false, and files nothing, if the chunk's
// index is not one of the snapshot's.
func (a *assembly) add(m kafka.Message, hdr map[string]string) bool {
	i, err := strconv.Atoi(hdr[hdrChunk])
	if err != nil || i < 0 || i >= a.Chunks {
		return false
	}
	a.chunks[i] = m.Value
	return true
}

// finish reassembles the chunks when all are there: Complete and Blob
// set if the bytes match the size and digest the headers announce,
// Problem set otherwise.
func (a *assembly) finish() Stored {
	s := a.Stored
	s.Have = len(a.chunks)
	if s.Have < s.Chunks {
		s.Problem = fmt.Sprintf("%d of %d chunks", s.Have, s.Chunks)
		return s
	}
	var b bytes.Buffer
	for i := range s.Chunks {
		b.Write(a.chunks[i])
	}
	sum := sha256.Sum256(b.Bytes())
	switch {
	case b.Len() != s.Size:
		s.Problem = fmt.Sprintf("%d bytes, headers say %d", b.Len(), s.Size)
	case hex.EncodeToString(sum[:]) != s.SHA256:
		s.Problem = "reassembled bytes do not match their SHA-256"
	default:
		s.Complete, s.Blob = true, b.Bytes()
	}
	return s
}
