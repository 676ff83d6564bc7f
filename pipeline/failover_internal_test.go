package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/session"
	"github.com/adaptrec/adaptrec/pipeline/embedded"
)

// A worker that cannot re-read the events to rebuild a partition's
// session state within snapshot.restore_timeout stops with ErrUnreadable,
// rather than serve the partition's users without their sessions.
func TestRebuildSessionsGivesUpAfterRestoreTimeout(t *testing.T) {
	const topic = "rebuild.unreadable"
	broker, err := embedded.Start(1, topic)
	if err != nil {
		t.Fatal(err)
	}
	cfg := configs.Default()
	cfg.Kafka.Brokers, cfg.Topics.Feedback = broker.Addrs(), topic
	cfg.Kafka.RequestTimeout = time.Second
	cfg.Session.RebuildEvents = 5
	cfg.Snapshot.RestoreTimeout = time.Second
	cfg.Recommender.DQN.Hidden = []int{8}
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), rec, nil, Outputs{})
	defer w.closeOutputs()
	w.consumed = map[int32]int64{}
	broker.Close() // the partition cannot be read
	asm := session.NewAssembler(wire.Session(cfg.Session))
	defer asm.Release()
	items := []fetched{{msg: kafka.Message{Topic: topic, Partition: 0, Offset: 10}}}
	err = w.rebuildSessions(context.Background(), items, asm, rec.(model.Observer))
	if !errors.Is(err, ErrUnreadable) {
		t.Fatalf("rebuilding from an unreadable partition returned %v, want ErrUnreadable", err)
	}
}
