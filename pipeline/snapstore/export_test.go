package snapstore

import (
	"context"

	"github.com/segmentio/kafka-go"
)

// WriteRaw writes msgs as they are, for tests that put cut or damaged
// snapshots on the topic.
func (s *Store) WriteRaw(ctx context.Context, msgs ...kafka.Message) error { return s.write(ctx, msgs) }
