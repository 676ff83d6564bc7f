package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/sink"
)

type loc struct {
	p int
	o int64
}

func produce(t *testing.T, cfg configs.Config, lines [][]byte) {
	t.Helper()
	produceB(t, cfg.Kafka.Brokers, cfg.Topics.Feedback, lines)
}

// startWorker runs a worker until the returned stop is called; stop returns
// Run's error.
func startWorker(t *testing.T, cfg configs.Config) (*pipeline.Worker, func() error) {
	t.Helper()
	return startInstrumented(t, cfg, func(*pipeline.Worker) {})
}

type recMsg struct {
	model.Recommendation
	loc
}

func readRecs(t *testing.T, cfg configs.Config) []recMsg {
	t.Helper()
	var out []recMsg
	for _, m := range kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Recommendations) {
		var r model.Recommendation
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatalf("recommendation %s/%d@%d is not JSON: %v", m.Topic, m.Partition, m.Offset, err)
		}
		if string(m.Key) != r.UserID {
			t.Fatalf("recommendation keyed %q carries user %q", m.Key, r.UserID)
		}
		out = append(out, recMsg{r, loc{m.Partition, m.Offset}})
	}
	return out
}

// lastValid maps each user with a valid event to the location of its last one.
func lastValid(t *testing.T, msgs []kafka.Message) (map[string]loc, map[string]loc) {
	last, byValue := map[string]loc{}, map[string]loc{}
	for _, m := range msgs {
		byValue[string(m.Value)] = loc{m.Partition, m.Offset}
		e, err := feedback.Decode(m.Value, feedback.DefaultLimits)
		if err != nil {
			continue
		}
		if l, ok := last[e.UserID]; !ok || m.Offset > l.o {
			if ok && l.p != m.Partition {
				t.Fatalf("user %s is on partitions %d and %d: events are not keyed by user", e.UserID, l.p, m.Partition)
			}
			last[e.UserID] = loc{m.Partition, m.Offset}
		}
	}
	return last, byValue
}

func TestWorkerOneWorkerDLQAndCommits(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			lines, bad := kafkatest.Events(10_000, 100, 800, 1)
			if len(bad) != 100 {
				t.Fatalf("fixture has %d malformed events", len(bad))
			}
			kafkatest.CreateTopics(t, cfg)
			produce(t, cfg, lines)
			w := serveToCommitted(t, cfg, 120*time.Second)

			input := kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Feedback)
			if len(input) != 10_000 {
				t.Fatalf("feedback topic holds %d messages", len(input))
			}
			parts := map[int]bool{}
			for _, m := range input {
				parts[m.Partition] = true
			}
			if len(parts) != 6 {
				t.Fatalf("events spread over %d partitions, want 6", len(parts))
			}
			last, where := lastValid(t, input)

			// Every malformed event is in the DLQ with its reason and origin.
			dead := kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.DLQ)
			if len(dead) != len(bad) {
				t.Fatalf("DLQ holds %d messages, want %d", len(dead), len(bad))
			}
			for _, m := range dead {
				want, ok := bad[string(m.Value)]
				if !ok {
					t.Fatalf("valid event in the DLQ: %s (%s)", m.Value, kafkatest.Header(m, sink.HeaderErrorMessage))
				}
				if got := kafkatest.Header(m, sink.HeaderErrorClass); got != string(want) {
					t.Errorf("DLQ class %q, want %q for %s", got, want, m.Value)
				}
				if kafkatest.Header(m, sink.HeaderErrorMessage) == "" {
					t.Errorf("DLQ message without a reason: %s", m.Value)
				}
				src := where[string(m.Value)]
				if kafkatest.Header(m, sink.HeaderSourceTopic) != cfg.Topics.Feedback ||
					kafkatest.Header(m, sink.HeaderSourcePartition) != strconv.Itoa(src.p) ||
					kafkatest.Header(m, sink.HeaderSourceOffset) != strconv.FormatInt(src.o, 10) {
					t.Errorf("DLQ origin headers %q/%q@%q, want %s/%d@%d", kafkatest.Header(m, sink.HeaderSourceTopic),
						kafkatest.Header(m, sink.HeaderSourcePartition), kafkatest.Header(m, sink.HeaderSourceOffset), cfg.Topics.Feedback, src.p, src.o)
				}
				delete(bad, string(m.Value))
			}

			// Every user with a valid event got a list reflecting its last event.
			recs := readRecs(t, cfg)
			reflected := map[string]map[loc]bool{}
			perBatch := map[string]int{}
			for _, r := range recs {
				if reflected[r.UserID] == nil {
					reflected[r.UserID] = map[loc]bool{}
				}
				reflected[r.UserID][loc{int(r.Partition), r.Offset}] = true
				perBatch[r.UserID+"/"+r.ModelVersion]++
				if r.ModelVersion == "" || r.TS.IsZero() || r.SessionID == "" {
					t.Fatalf("list lacks fields: %+v", r)
				}
			}
			for user, l := range last {
				if !reflected[user][l] {
					t.Errorf("user %s: no list reflects its last event %d@%d", user, l.p, l.o)
				}
			}
			for k, n := range perBatch {
				if n > 1 {
					t.Errorf("%d lists for one user in one batch (%s)", n, k)
				}
			}
			s := w.Stats().Snapshot()
			if s.Events != 10_000 || s.DLQ != 100 || s.Lists != int64(len(recs)) {
				t.Errorf("stats %+v disagree with the topics (lists %d)", s, len(recs))
			}
			t.Logf("%s: %d lists for %d users, %d dead letters, %d batches", target.Name, len(recs), len(last), len(dead), s.Batches)
		})
	}
}

func TestReplayByTimeAndRefusal(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			kafkatest.CreateTopics(t, cfg)
			client := kafkatest.Client(cfg.Kafka.Brokers)
			ctx := context.Background()
			lines, _ := kafkatest.Events(2_000, 0, 300, 2)

			produce(t, cfg, lines[:1000])
			time.Sleep(50 * time.Millisecond) // message timestamps are in ms
			at := time.Now()
			time.Sleep(50 * time.Millisecond)
			startB, err := pipeline.EndOffsets(ctx, client, cfg.Topics.Feedback)
			if err != nil {
				t.Fatal(err)
			}
			produce(t, cfg, lines[1000:])

			_, stop := startWorker(t, cfg)
			kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 120*time.Second)

			// A live group is refused and its offsets stay.
			before, _ := pipeline.CommittedOffsets(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback)
			_, err = pipeline.Replay(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{Time: at})
			if !errors.Is(err, pipeline.ErrGroupActive) {
				t.Fatalf("replay against a live group: %v, want ErrGroupActive", err)
			}
			after, _ := pipeline.CommittedOffsets(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback)
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Fatalf("refused replay changed offsets: %v -> %v", before, after)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			// Rewind to the time between the two halves.
			recsBefore, err := pipeline.EndOffsets(ctx, client, cfg.Topics.Recommendations)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pipeline.Replay(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{Time: at})
			if err != nil {
				t.Fatal(err)
			}
			committed, _ := pipeline.CommittedOffsets(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback)
			for p, off := range startB {
				if got[p] != off || committed[p] != off {
					t.Fatalf("partition %d rewound to %d (committed %d), want the first offset at or after T, %d", p, got[p], committed[p], off)
				}
			}

			w := serveToCommitted(t, cfg, 120*time.Second)
			if n := w.Stats().Snapshot().Events; n != 1000 {
				t.Fatalf("replayed worker processed %d events, want exactly the 1000 at or after T", n)
			}
			// Its lists reflect only events at or after T.
			input := kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Feedback)
			lastB := map[string]loc{}
			for _, m := range input {
				if m.Offset < startB[m.Partition] {
					continue
				}
				e, err := feedback.Decode(m.Value, feedback.DefaultLimits)
				if err == nil {
					lastB[e.UserID] = loc{m.Partition, m.Offset}
				}
			}
			seen := map[string]loc{}
			n := 0
			for _, r := range readRecs(t, cfg) {
				if r.o < recsBefore[r.p] {
					continue // from the first run
				}
				n++
				if r.Offset < startB[int(r.Partition)] {
					t.Fatalf("replayed run published a list for an event before T: %d@%d < %d", r.Partition, r.Offset, startB[int(r.Partition)])
				}
				seen[r.UserID] = loc{int(r.Partition), r.Offset}
			}
			for u, l := range lastB {
				if seen[u] != l {
					t.Errorf("user %s: replayed run's last list reflects %v, want %v", u, seen[u], l)
				}
			}
			t.Logf("%s: replay to %s re-read %d events, %d lists", target.Name, at.Format(time.RFC3339Nano), 1000, n)
		})
	}
}

func TestReplayToOffsets(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg, client, ends := producedFeedback(t, target, 300, 50)
			ctx := context.Background()
			got, err := pipeline.Replay(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{Latest: true})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(ends) {
				t.Fatalf("latest: %v, want %v", got, ends)
			}
			got, err = pipeline.Replay(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{Earliest: true})
			if err != nil {
				t.Fatal(err)
			}
			for p, off := range got {
				if off != 0 {
					t.Fatalf("earliest: partition %d at %d", p, off)
				}
			}
			// A time after every message rewinds to the end.
			got, err = pipeline.Replay(ctx, client, cfg.Kafka.Group, cfg.Topics.Feedback, pipeline.ReplayTarget{Time: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(ends) {
				t.Fatalf("future time: %v, want the ends %v", got, ends)
			}
		})
	}
}

// The worker serves the DQN (the default model) end to end: every user
// gets a list reflecting its last event, with propensities in (0, 1].
func TestWorkerWithDQN(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Recommender.Model = "dqn"
			cfg.Recommender.DQN.Rows = 64
			kafkatest.CreateTopics(t, cfg)
			lines, _ := kafkatest.Events(2000, 0, 200, 11)
			produce(t, cfg, lines)
			serveToCommitted(t, cfg, 180*time.Second)
			last, _ := lastValid(t, kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Feedback))
			got := map[string]loc{}
			for _, r := range readRecs(t, cfg) {
				if !strings.HasPrefix(r.ModelVersion, "dqn-") {
					t.Fatalf("list from model %q", r.ModelVersion)
				}
				for _, it := range r.Items {
					if it.Propensity <= 0 || it.Propensity > 1 {
						t.Fatalf("propensity %v out of (0, 1]", it.Propensity)
					}
				}
				if l := (loc{int(r.Partition), r.Offset}); l.o > got[r.UserID].o || got[r.UserID] == (loc{}) {
					got[r.UserID] = l
				}
			}
			for u, l := range last {
				if got[u] != l {
					t.Errorf("user %s: last list reflects %v, want %v", u, got[u], l)
				}
			}
		})
	}
}

// The adaptive model's architecture decisions reach the decisions topic as
// JSON, with the batch that caused them, and are counted.
func TestWorkerPublishesDecisions(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Recommender.Model = "adaptive"
			cfg.Recommender.DQN.Rows = 64
			cfg.Recommender.Adaptive.EpochSessions = 20
			cfg.Recommender.Adaptive.SampleEvery = 1
			kafkatest.CreateTopics(t, cfg)
			lines, _ := kafkatest.Events(3000, 0, 100, 12)
			produce(t, cfg, lines)
			w := serveToCommitted(t, cfg, 180*time.Second)
			msgs := kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Decisions)
			if len(msgs) == 0 {
				t.Fatal("no decisions published")
			}
			taken := 0
			for _, m := range msgs {
				var d model.Decision
				if err := json.Unmarshal(m.Value, &d); err != nil {
					t.Fatalf("decision is not JSON: %v: %s", err, m.Value)
				}
				if string(m.Key) != cfg.Kafka.Group || d.Epoch <= 0 || len(d.Before) == 0 || d.Action.Kind == "" || d.Controller != "rl" {
					t.Fatalf("incomplete decision %s", m.Value)
				}
				if !d.Rewarded {
					taken++
				}
			}
			if got := w.Stats().Snapshot().Decisions; got != int64(len(msgs)) {
				t.Fatalf("counted %d decision records, topic holds %d", got, len(msgs))
			}
			t.Logf("%s: %d decisions taken, %d records", target.Name, taken, len(msgs))
		})
	}
}
