package pipeline_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// scoredDQN is the DQN with every event it learns ranked first
// (prequential HR@10), by partition and offset. The worker's own quality
// gauge samples events; this scores each one.
type scoredDQN struct {
	*model.DQN
	hits map[[2]int64]bool
}

func (d *scoredDQN) Learn(ctx context.Context, b *feedback.Batch) ([]model.Recommendation, error) {
	return d.LearnProbed(ctx, b, nil)
}

func (d *scoredDQN) LearnProbed(ctx context.Context, b *feedback.Batch, probe model.Probe) ([]model.Recommendation, error) {
	return d.DQN.LearnProbed(ctx, b, func(i int, ok bool, rank func() int) {
		// An item the model does not know (or the user consumed) cannot
		// be recommended: a miss.
		d.hits[[2]int64{int64(b.Partition(i)), b.Offset(i)}] = ok && rank() < 10
		if probe != nil {
			probe(i, ok, rank)
		}
	})
}

// hr is the HR@10 of the events at or after from (per partition).
func (d *scoredDQN) hr(from map[int]int64) (float64, int) {
	hits, n := 0, 0
	for k, hit := range d.hits {
		if k[1] >= from[int(k[0])] {
			n++
			if hit {
				hits++
			}
		}
	}
	return float64(hits) / float64(max(n, 1)), n
}

// runScored runs one worker to the end of its input and returns its model.
func runScored(t *testing.T, cfg configs.Config) (*scoredDQN, *pipeline.Worker) {
	var d *scoredDQN
	_, ws := runWorkers(t, cfg, func(c configs.Config) (model.Recommender, error) {
		rec, err := wire.Model(c)
		if err != nil {
			return nil, err
		}
		d = &scoredDQN{DQN: rec.(*model.DQN), hits: map[[2]int64]bool{}}
		return d, nil
	}, nil, "worker")
	return d, ws[0]
}

// TestRestartKeepsQuality runs a DQN worker over the first 20,000 events
// of ml-latest-small, stops it, produces the next 1,000 and restarts it:
// its prequential HR@10 on those 1,000 (each event ranked by the model
// before it learns it) must equal, within noise, that of a worker that ran
// through all 21,000 without stopping, and be clearly better than that of
// a worker that starts from nothing on them (else the measure could not
// tell a lost model from a restored one).
func TestRestartKeepsQuality(t *testing.T) {
	events := mlRatings(t)
	first, next := encodeAll(events[:20_000]), encodeAll(events[20_000:21_000])
	target := kafkatest.Targets(t)[0] // the real broker when there is one
	base := kafkatest.Config(t, target)
	base.Recommender.Model = "dqn"
	base.Batch.Size = 256
	base.Batch.MaxWait = 50 * time.Millisecond
	base.Worker.MaxPendingBatches = 8
	client := kafkatest.Client(base.Kafka.Brokers)

	// Restarted: run, stop, produce the next 1,000, restart.
	cfg := base
	kafkatest.CreateTopics(t, cfg)
	produce(t, cfg, first)
	runScored(t, cfg)
	committed, err := pipeline.CommittedOffsets(context.Background(), client, cfg.Kafka.Group, cfg.Topics.Feedback)
	if err != nil {
		t.Fatal(err)
	}
	produce(t, cfg, next)
	restarted, w := runScored(t, cfg)
	restored := w.Restored()
	if restored.Checksum == "" {
		t.Fatal("the restarted worker restored no snapshot")
	}
	// Nothing learned twice: the snapshot holds exactly what was committed.
	for p, off := range committed {
		if off > 0 && restored.Offsets[int32(p)] != off {
			t.Fatalf("partition %d: the restored model learned up to %d, the group had committed %d", p, restored.Offsets[int32(p)], off)
		}
	}
	restartHR, n := restarted.hr(committed)

	// Uninterrupted: one worker through all 21,000 (the same topic, its own
	// group, lists and snapshots).
	whole := base
	whole.Kafka.Group += "-whole"
	whole.Topics.Recommendations += "-whole"
	whole.Snapshot.Topic += "-whole"
	kafkatest.CreateTopic(t, whole.Kafka.Brokers, whole.Topics.Recommendations, whole.Topics.Partitions)
	uninterrupted, _ := runScored(t, whole)
	wholeHR, wn := uninterrupted.hr(committed)

	// Cold: a worker that learns only the 1,000.
	cold := base
	cold.Kafka.Group += "-cold"
	cold.Topics.Feedback += "-cold"
	cold.Topics.Recommendations += "-cold"
	cold.Snapshot.Topic += "-cold"
	kafkatest.CreateTopics(t, cold)
	produce(t, cold, next)
	coldModel, _ := runScored(t, cold)
	coldHR, cn := coldModel.hr(map[int]int64{})

	// Two proportions on about n events each: the noise of their difference.
	se := math.Sqrt(wholeHR*(1-wholeHR)/float64(max(wn, 1)) + restartHR*(1-restartHR)/float64(max(n, 1)))
	t.Logf("prequential HR@10 on the next 1,000 events: restarted %.4f (%d scored), uninterrupted %.4f (%d), cold %.4f (%d); noise (1 s.e. of a difference) %.4f",
		restartHR, n, wholeHR, wn, coldHR, cn, se)
	if wholeHR-coldHR < 4*se {
		t.Fatalf("the measure cannot tell a restored model from a cold one: uninterrupted %.4f, cold %.4f, noise %.4f", wholeHR, coldHR, se)
	}
	if math.Abs(restartHR-wholeHR) > 2*se {
		t.Fatalf("after the restart the lists scored %.4f, the uninterrupted worker's %.4f: more than 2 s.e. (%.4f) apart", restartHR, wholeHR, se)
	}
}
