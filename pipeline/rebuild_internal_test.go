package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/model/session"
	"github.com/adaptrec/adaptrec/pipeline/embedded"
)

// TestRebuildSessionsReadsWhatTheModelMissed checks which events a worker
// re-reads before a batch: from where its model's state of the partition
// ends (a gap another worker processed), at most session.rebuild_events
// back for a partition it never read, and nothing when the batch continues
// what it learned or re-delivers it.
func TestRebuildSessionsReadsWhatTheModelMissed(t *testing.T) {
	const topic = "rebuild.feedback"
	broker, err := embedded.Start(1, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var msgs []kafka.Message
	for i := range 40 {
		ev := feedback.Event{UserID: fmt.Sprint("u", i%4), ItemID: fmt.Sprint("i", i), Type: feedback.Click, TS: at.Add(time.Duration(i) * time.Second)}
		msgs = append(msgs, kafka.Message{Value: feedback.Encode(ev)})
	}
	wr := &kafka.Writer{Addr: kafka.TCP(broker.Addrs()...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := wr.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	wr.Close()

	cfg := rebuildConfig(broker.Addrs(), topic)
	batch := func(from, to int64) []fetched {
		var out []fetched
		for o := from; o < to; o++ {
			out = append(out, fetched{msg: kafka.Message{Topic: topic, Partition: 0, Offset: o}})
		}
		return out
	}
	for _, c := range []struct {
		name     string
		consumed map[int32]int64 // where the model's state ends
		first    int64
		rebuilt  int64
	}{
		{"a gap another worker processed", map[int32]int64{0: 20}, 23, 3},
		{"a partition never read: at most rebuild_events back", map[int32]int64{}, 30, 5},
		{"continuous", map[int32]int64{0: 30}, 30, 0},
		{"re-delivered", map[int32]int64{0: 35}, 30, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, rec, asm := rebuildingWorker(t, cfg)
			w.consumed = c.consumed
			if err := w.rebuildSessions(context.Background(), batch(c.first, c.first+3), asm, rec.(model.Observer)); err != nil {
				t.Fatal(err)
			}
			if got := w.stats.Rebuilt.Load(); got != c.rebuilt {
				t.Fatalf("re-read %d events, want %d", got, c.rebuilt)
			}
			if c.rebuilt > 0 {
				// The last event before the batch is in its user's state.
				last := c.first - 1
				if r, ok := rec.(*model.DQN).Rank(fmt.Sprint("u", last%4), fmt.Sprint("i", last)); ok {
					t.Fatalf("the user of offset %d has not consumed its item (rank %d)", last, r)
				}
			}
		})
	}
}

// A worker that cannot re-read the events to rebuild a partition's
// session state within snapshot.restore_timeout stops with ErrUnreadable,
// rather than serve the partition's users without their sessions.
func TestRebuildSessionsGivesUpAfterRestoreTimeout(t *testing.T) {
	const topic = "rebuild.unreadable"
	broker, err := embedded.Start(1, topic)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rebuildConfig(broker.Addrs(), topic)
	cfg.Kafka.RequestTimeout = time.Second
	cfg.Snapshot.RestoreTimeout = time.Second
	w, rec, asm := rebuildingWorker(t, cfg)
	defer w.closeOutputs()
	w.consumed = map[int32]int64{}
	broker.Close() // the partition cannot be read
	items := []fetched{{msg: kafka.Message{Topic: topic, Partition: 0, Offset: 10}}}
	err = w.rebuildSessions(context.Background(), items, asm, rec.(model.Observer))
	if !errors.Is(err, ErrUnreadable) {
		t.Fatalf("rebuilding from an unreadable partition returned %v, want ErrUnreadable", err)
	}
}

// rebuildConfig is the config of a worker of a small DQN that reads topic
// on brokers and re-reads at most 5 events of a partition it never read.
func rebuildConfig(brokers []string, topic string) configs.Config {
	cfg := configs.Default()
	cfg.Kafka.Brokers, cfg.Topics.Feedback = brokers, topic
	cfg.Session.RebuildEvents = 5
	cfg.Recommender.DQN.Hidden = []int{8}
	return cfg
}

// rebuildingWorker returns a worker of cfg's model (also returned) with
// no outputs that logs nothing, and an assembler of cfg's sessions for its
// rebuildSessions, released when the test ends.
func rebuildingWorker(t *testing.T, cfg configs.Config) (*Worker, model.Recommender, *session.Assembler) {
	t.Helper()
	rec, err := wire.Model(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), rec, nil, Outputs{})
	asm := session.NewAssembler(wire.Session(cfg.Session))
	t.Cleanup(asm.Release)
	return w, rec, asm
}

// TestFollowOrderGivesUpWhileOthersKeepComing checks that the wait for a
// run's events is not restarted by the other partitions' events: a lone
// worker whose recorded partition has nothing new (restarted after a
// crash, its partition idle) gives the order up after wait, though its
// other partitions' events keep coming.
func TestFollowOrderGivesUpWhileOthersKeepComing(t *testing.T) {
	w := NewWorker(configs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil, Outputs{})
	in, out := make(chan fetched), make(chan fetched, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer close(in)
		for off := int64(0); ; off++ {
			select {
			case in <- fetched{msg: kafka.Message{Partition: 1, Offset: off}}:
			case <-ctx.Done():
				return
			}
			time.Sleep(time.Millisecond) // far more often than the wait
		}
	}()
	go w.followOrder(ctx, in, out, []orderRun{{0, 10, 1}}, []int{0, 1}, assignedTo(0, 1), 100*time.Millisecond)
	select {
	case f := <-out:
		if f.msg.Partition != 1 || f.msg.Offset != 0 {
			t.Fatalf("passed on %d@%d first, want 1@0", f.msg.Partition, f.msg.Offset)
		}
	case <-time.After(time.Minute): // a guard, not a measure: the wait is 100ms
		t.Fatal("partition 1 held back for a minute while its events kept coming")
	}
	if r := w.Order(); r.Stopped == "" {
		t.Fatalf("report %+v: the order was not given up", r)
	}
}

// TestFollowOrder checks that a replaying worker passes messages on in the
// recorded order, and stops following it, passing everything on, when a
// partition does not continue its run or a run does not arrive.
func TestFollowOrder(t *testing.T) {
	w := NewWorker(configs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil, Outputs{})
	msg := func(p int, off int64) fetched { return fetched{msg: kafka.Message{Partition: p, Offset: off}} }
	for _, c := range []struct {
		name string
		runs []orderRun
		in   []fetched
		want []fetched
	}{
		{"recorded order", []orderRun{{0, 10, 2}, {1, 5, 1}, {0, 12, 1}},
			[]fetched{msg(1, 5), msg(0, 10), msg(1, 6), msg(0, 11), msg(0, 12)},
			[]fetched{msg(0, 10), msg(0, 11), msg(1, 5), msg(0, 12), msg(1, 6)}},
		{"a partition that does not continue its run", []orderRun{{0, 10, 2}},
			[]fetched{msg(1, 3), msg(0, 20), msg(0, 21)},
			[]fetched{msg(0, 20), msg(1, 3), msg(0, 21)}}, // what was held, by partition, then the rest
		{"a run that never arrives", []orderRun{{0, 10, 1}},
			[]fetched{msg(1, 3)},
			[]fetched{msg(1, 3)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, out := make(chan fetched, len(c.in)), make(chan fetched, 10)
			for _, f := range c.in {
				in <- f
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				w.followOrder(context.Background(), in, out, c.runs, []int{0, 1}, assignedTo(0, 1), 50*time.Millisecond)
			}()
			var got []fetched
			for len(got) < len(c.want) {
				got = append(got, <-out)
			}
			close(in)
			<-done
			for i := range got {
				if got[i].msg.Partition != c.want[i].msg.Partition || got[i].msg.Offset != c.want[i].msg.Offset {
					t.Fatalf("message %d: partition %d offset %d, want %d@%d", i, got[i].msg.Partition, got[i].msg.Offset, c.want[i].msg.Partition, c.want[i].msg.Offset)
				}
			}
		})
	}
}
