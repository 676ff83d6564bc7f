package pipeline_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/feedback"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// BenchmarkThroughput measures, in one run on the real broker, the raw
// kafka-go consume rate of a topic (a group reader doing nothing but
// FetchMessage) and the worker's end-to-end rate on the same topic (decode,
// Arrow batch, popularity, publish with acks=all, commit), and reports both
// and their ratio. Run with -benchtime 1x: one iteration is the whole
// measurement.
func BenchmarkThroughput(b *testing.B) {
	target := kafkatest.Real(b)
	const n = 200_000
	cfg := kafkatest.Config(b, target)
	cfg.Batch.Size = 256 // the defaults of configs/adaptrec.yaml
	cfg.Batch.MaxWait = 50 * time.Millisecond
	kafkatest.CreateTopics(b, cfg)
	lines, _ := kafkatest.Events(n, 0, 20_000, 7)
	produceB(b, cfg.Kafka.Brokers, cfg.Topics.Feedback, lines)

	for b.Loop() {
		// Raw: the same reader settings as the worker, no processing.
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: cfg.Kafka.Brokers, GroupID: kafkatest.Name(b, "raw"), Topic: cfg.Topics.Feedback,
			MinBytes: 1, MaxBytes: cfg.Kafka.FetchMaxBytes, MaxWait: cfg.Kafka.FetchMaxWait,
			QueueCapacity: cfg.Batch.Size, StartOffset: kafka.FirstOffset, JoinGroupBackoff: cfg.Kafka.JoinGroupBackoff,
			HeartbeatInterval: cfg.Kafka.HeartbeatInterval, SessionTimeout: cfg.Kafka.SessionTimeout,
		})
		var first time.Time
		for i := range n {
			if _, err := r.FetchMessage(context.Background()); err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				first = time.Now()
			}
		}
		raw := float64(n-1) / time.Since(first).Seconds()
		r.Close()

		// The worker, popularity recommender, default batch policy.
		rec, _ := model.New(cfg)
		w := pipeline.NewWorker(cfg, kafkatest.Logger(b), rec, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		for w.Stats().Fetched.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		first = time.Now()
		for w.Stats().Events.Load() < n {
			time.Sleep(time.Millisecond)
		}
		worker := float64(n) / time.Since(first).Seconds()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		st := w.Stats()
		nb := float64(st.Batches.Load())
		b.Logf("per batch: learn %.2fms publish %.2fms commit %.2fms (%d batches)", float64(st.LearnNanos.Load())/nb/1e6,
			float64(st.PublishNanos.Load())/nb/1e6, float64(st.CommitNanos.Load())/nb/1e6, int(nb))
		b.ReportMetric(raw, "raw_events/s")
		b.ReportMetric(worker, "worker_events/s")
		b.ReportMetric(worker/raw, "worker/raw")
		b.Logf("raw kafka-go %.0f events/s, worker %.0f events/s, ratio %.2f (%d events, batch %d)", raw, worker, worker/raw, n, cfg.Batch.Size)
	}
}

// BenchmarkLatency offers 2,000 events/s for 15 s to a running worker on
// the real broker and reports p50/p99 of the time from an event's produce
// timestamp to the first recommendation list that reflects it (same user,
// same partition, offset at or after the event's).
func BenchmarkLatency(b *testing.B) {
	target := kafkatest.Real(b)
	const rate, seconds = 2000, 15
	cfg := kafkatest.Config(b, target)
	cfg.Batch.Size = 256
	cfg.Batch.MaxWait = 50 * time.Millisecond
	kafkatest.CreateTopics(b, cfg)

	for b.Loop() {
		rec, _ := model.New(cfg)
		w := pipeline.NewWorker(cfg, kafkatest.Logger(b), rec, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()

		// Watch the recommendations topic, noting when each list arrives.
		type seen struct {
			user string
			p    int
			off  int64
			at   time.Time
		}
		var mu sync.Mutex
		var lists []seen
		var wg sync.WaitGroup
		watchCtx, stopWatch := context.WithCancel(context.Background())
		for p := range cfg.Topics.Partitions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Kafka.Brokers, Topic: cfg.Topics.Recommendations, Partition: p, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 5 * time.Second})
				defer r.Close()
				for {
					m, err := r.ReadMessage(watchCtx)
					if err != nil {
						return
					}
					at := time.Now()
					var rec model.Recommendation
					if json.Unmarshal(m.Value, &rec) == nil {
						mu.Lock()
						lists = append(lists, seen{rec.UserID, int(rec.Partition), rec.Offset, at})
						mu.Unlock()
					}
				}
			}()
		}
		// Let the worker join before offering load.
		for len(members(b, cfg)) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Second)
		lines, _ := kafkatest.Events(rate*seconds, 0, 5000, 8)
		out := newSink(cfg.Kafka.Brokers, cfg.Topics.Feedback)
		if _, err := pipeline.Produce(context.Background(), out, bytesReader(lines), pipeline.ProduceOptions{Rate: rate}); err != nil {
			b.Fatal(err)
		}
		out.Close()
		kafkatest.WaitCommitted(b, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 60*time.Second)
		time.Sleep(500 * time.Millisecond)
		stopWatch()
		wg.Wait()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}

		byUser := map[string][]seen{}
		for _, l := range lists {
			byUser[l.user] = append(byUser[l.user], l)
		}
		var lat []time.Duration
		missing := 0
		for _, m := range kafkatest.ReadAll(b, cfg.Kafka.Brokers, cfg.Topics.Feedback) {
			e, err := feedback.Decode(m.Value, feedback.DefaultLimits)
			if err != nil {
				continue
			}
			var firstAt time.Time
			for _, l := range byUser[e.UserID] {
				if l.p == m.Partition && l.off >= m.Offset && (firstAt.IsZero() || l.at.Before(firstAt)) {
					firstAt = l.at
				}
			}
			if firstAt.IsZero() {
				missing++
				continue
			}
			lat = append(lat, firstAt.Sub(m.Time))
		}
		if missing > 0 {
			b.Fatalf("%d events never reflected in a list", missing)
		}
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
		b.Logf("produce -> list latency at %d events/s for %ds: p50 %v p99 %v max %v (%d events)", rate, seconds, p50, p99, lat[len(lat)-1], len(lat))
	}
}
