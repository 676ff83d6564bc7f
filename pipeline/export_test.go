package pipeline

// What only the tests reach: defined here, in a test file of the package,
// so that the external tests (package pipeline_test) can call them and the
// package's API does not carry them.

import (
	"context"
	"log/slog"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
)

// Restored is the metadata of the snapshot the worker started from (zero
// if none).
func (w *Worker) Restored() model.SnapshotMeta { return w.restored }

// LoadNewestSnapshot returns the newest of group's snapshots on the topic
// that is complete and decodes and verifies (see NewestValid). It returns
// nil, nil if there is none.
func LoadNewestSnapshot(ctx context.Context, conn *kafkaconn.Conn, topic, group string, log *slog.Logger) (*model.Snapshot, *StoredSnapshot, error) {
	all, err := ListSnapshots(ctx, conn, topic, group)
	if err != nil {
		return nil, nil, err
	}
	snap, from := NewestValid(all, topic, log)
	return snap, from, nil
}
