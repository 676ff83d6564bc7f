package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// recordingDQN is the DQN with a record of every event it learns.
type recordingDQN struct {
	*model.DQN
	mu      sync.Mutex
	learned []feedback.Event
}

func (d *recordingDQN) Learn(ctx context.Context, b *feedback.Batch) ([]model.Recommendation, error) {
	return d.LearnProbed(ctx, b, nil)
}

func (d *recordingDQN) LearnProbed(ctx context.Context, b *feedback.Batch, probe model.Probe) ([]model.Recommendation, error) {
	d.mu.Lock()
	for i := range b.Len() {
		d.learned = append(d.learned, b.Event(i).Event)
	}
	d.mu.Unlock()
	return d.DQN.LearnProbed(ctx, b, probe)
}

// runRecording runs one DQN worker (with metrics) until it has committed
// the end of its input, and returns what its model learned.
func runRecording(t *testing.T, cfg configs.Config) (*recordingDQN, *pipeline.Worker, *telemetry.Metrics) {
	t.Helper()
	metrics, err := telemetry.NewMetrics(10)
	if err != nil {
		t.Fatal(err)
	}
	var d *recordingDQN
	_, ws := runWorkersInstrumented(t, cfg, func(c configs.Config) (model.Recommender, error) {
		rec, err := wire.Model(c)
		if err != nil {
			return nil, err
		}
		d = &recordingDQN{DQN: rec.(*model.DQN)}
		return d, nil
	}, metrics)
	return d, ws, metrics
}

// runWorkersInstrumented is runWorkers for one worker with metrics.
func runWorkersInstrumented(t *testing.T, cfg configs.Config, build func(configs.Config) (model.Recommender, error), m *telemetry.Metrics) (model.Recommender, *pipeline.Worker) {
	t.Helper()
	rec, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, kafkatest.Outputs(t, cfg))
	w.Instrument(nil, m, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 5*time.Minute)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("worker: %v", err)
	}
	return rec, w
}

func event(id, user, item string, ts time.Time) string {
	idField := ""
	if id != "" {
		idField = `"event_id":"` + id + `",`
	}
	return `{` + idField + `"user_id":"` + user + `","item_id":"` + item + `","type":"click","ts":"` + ts.Format(time.RFC3339Nano) + `"}`
}

// TestWorkerKeepsHostileInputOut sends what a hostile or broken producer
// sent in issue 12: ids with invalid UTF-8 (which used to become U+FFFD,
// so that different ids collided, and were learned and recommended), a
// control character, an id too long in bytes, an event dated in the year
// 3000, and duplicates by event_id and by re-sent bytes. The bad ones must
// be in the DLQ with their class, never learned nor recommended; the
// duplicates counted and learned once, also by a worker restarted from the
// snapshot.
func TestWorkerKeepsHostileInputOut(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Recommender.Model = "dqn"
			kafkatest.CreateTopics(t, cfg)
			now := time.Now().UTC().Truncate(time.Millisecond)
			var lines []string
			for k := 1; k <= 9; k++ {
				lines = append(lines, event(fmt.Sprintf("e-u%d-1", k), fmt.Sprint("u", k), fmt.Sprint("good-", k), now))
			}
			bad := map[string]feedback.ErrorClass{
				event("", "u\xff", "i1", now):                                        feedback.ClassBadID,
				event("", "u\xfe", "i1", now):                                        feedback.ClassBadID,
				event("", "u1", "evil\xff", now):                                     feedback.ClassBadID,
				event("", "u2", `evil\ud800`, now):                                   feedback.ClassBadID,
				event("", "u3", `evil\u0007`, now):                                   feedback.ClassBadID,
				event("", "u4", strings.Repeat("\u00e9", 129), now):                  feedback.ClassBadID,
				event("e-future", "attacker", "future-item", now.AddDate(974, 0, 0)): feedback.ClassBadTime,
			}
			for l := range bad {
				lines = append(lines, l)
			}
			var resent []string // sent twice: by event_id (other bytes), and as is without one
			for k := 1; k <= 3; k++ {
				lines = append(lines, event(fmt.Sprint("dup-", k), fmt.Sprint("d", k), fmt.Sprint("dupitem-", k), now))
				resent = append(resent, event(fmt.Sprint("dup-", k), fmt.Sprint("d", k), fmt.Sprint("dupitem-", k), now.Add(time.Second)))
				same := event("", fmt.Sprint("r", k), fmt.Sprint("resent-", k), now)
				lines = append(lines, same)
				resent = append(resent, same)
			}
			lines = append(lines, resent...)
			for k := 1; k <= 9; k++ {
				lines = append(lines, event(fmt.Sprintf("e-u%d-2", k), fmt.Sprint("u", k), "good-2", now.Add(time.Minute)))
			}
			produce(t, cfg, toBytes(lines))
			d, w, metrics := runRecording(t, cfg)

			dead := kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.DLQ)
			if len(dead) != len(bad) {
				t.Fatalf("DLQ holds %d messages, want %d", len(dead), len(bad))
			}
			for _, m := range dead {
				if got, want := kafkatest.Header(m, sink.HeaderErrorClass), bad[string(m.Value)]; got != string(want) {
					t.Errorf("DLQ class %q (%s), want %q for %q", got, kafkatest.Header(m, sink.HeaderErrorMessage), want, m.Value)
				}
			}
			learnedOnce(t, d.learned, 9+3+3+9)
			for _, r := range readRecs(t, cfg) {
				for _, it := range r.Items {
					if hostileItem(it.ItemID) {
						t.Fatalf("item %q recommended to %s", it.ItemID, r.UserID)
					}
				}
			}
			s := w.Stats().Snapshot()
			if s.Duplicates != 6 || s.DLQ != int64(len(bad)) || s.Users != 9+3+3 {
				t.Fatalf("stats: %d duplicates, %d dead letters, %d sessions; want 6, %d, 15", s.Duplicates, s.DLQ, s.Users, len(bad))
			}
			if got := counter(t, metrics, "adaptrec_duplicates_total"); got != 6 {
				t.Fatalf("adaptrec_duplicates_total = %v, want 6", got)
			}

			// Restarted from its snapshot, a worker still knows what was
			// learned: the re-sent events are duplicates, the new one is
			// learned.
			produce(t, cfg, toBytes(append(slices.Clone(resent), event("e-fresh", "u1", "fresh", now.Add(2*time.Minute)))))
			d2, w2, _ := runRecording(t, cfg)
			if w2.Restored().Checksum == "" {
				t.Fatal("the restarted worker restored no snapshot")
			}
			if len(d2.learned) != 1 || d2.learned[0].EventID != "e-fresh" {
				t.Fatalf("after the restart the model learned %d events (%+v), want only e-fresh", len(d2.learned), d2.learned)
			}
			if got := w2.Stats().Snapshot().Duplicates; got != int64(len(resent)) {
				t.Fatalf("after the restart %d duplicates counted, want %d", got, len(resent))
			}
		})
	}
}

// hostileItem reports whether id is one of the items only bad events name.
func hostileItem(id string) bool {
	return strings.Contains(id, "evil") || strings.Contains(id, "\uFFFD") || id == "future-item" || strings.HasPrefix(id, "\u00e9")
}

// learnedOnce checks that the model learned want events, none twice and
// none of the bad ones.
func learnedOnce(t *testing.T, learned []feedback.Event, want int) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range learned {
		if hostileItem(e.ItemID) || e.UserID == "attacker" || strings.ContainsRune(e.UserID, '\uFFFD') {
			t.Fatalf("the model learned a bad event: %+v", e)
		}
		key := e.EventID
		if key == "" {
			key = e.UserID + "/" + e.ItemID
		}
		if seen[key] {
			t.Fatalf("the model learned %s twice", key)
		}
		seen[key] = true
	}
	if len(learned) != want {
		t.Fatalf("the model learned %d events, want %d", len(learned), want)
	}
}

func counter(t *testing.T, m *telemetry.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return sum(f)
		}
	}
	return 0
}

func toBytes(lines []string) [][]byte {
	out := make([][]byte, len(lines))
	for i, l := range lines {
		out[i] = []byte(l)
	}
	return out
}

// TestWorkerFarFutureEventEvictsNoOne turns validate.max_future off, so
// that an event dated in the year 3000 is learned: it must still not evict
// the other users' state (in issue 12 one such event took the sessions
// from 9 to 1). Every user's session goes on under its first name, and the
// model still remembers what each user consumed.
func TestWorkerFarFutureEventEvictsNoOne(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Validate.MaxFuture = 0
			cfg.Recommender.UserTTL = 24 * time.Hour
			kafkatest.CreateTopics(t, cfg)
			now := time.Now().UTC().Truncate(time.Second)
			var lines []string
			for k := 1; k <= 9; k++ {
				lines = append(lines, event("", fmt.Sprint("u", k), fmt.Sprint("first-", k), now))
			}
			lines = append(lines, event("", "attacker", "future-item", now.AddDate(974, 0, 0)))
			for k := 1; k <= 9; k++ {
				lines = append(lines, event("", fmt.Sprint("u", k), fmt.Sprint("second-", k), now.Add(time.Minute)))
			}
			produce(t, cfg, toBytes(lines))
			w := serveToCommitted(t, cfg, 2*time.Minute)
			if s := w.Stats().Snapshot(); s.Users != 10 || s.DLQ != 0 {
				t.Fatalf("%d sessions, %d dead letters; want 10 and 0", s.Users, s.DLQ)
			}
			for _, r := range readRecs(t, cfg) {
				if r.UserID == "attacker" {
					continue
				}
				if want := fmt.Sprintf("%s@%d", r.UserID, now.Unix()); r.SessionID != want {
					t.Errorf("%s's list is of session %q, want %q: its session was evicted", r.UserID, r.SessionID, want)
				}
				first := "first-" + strings.TrimPrefix(r.UserID, "u")
				for _, it := range r.Items {
					if it.ItemID == first {
						t.Errorf("%s was recommended %s, which it consumed: the model forgot it", r.UserID, first)
					}
				}
			}
		})
	}
}
