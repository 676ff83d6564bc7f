package pipeline_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/eval"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// BenchmarkThroughput measures, in one run on the real broker and on the
// same topic, three consumers of the consumer group, each from the start:
//
//   - raw: a kafka-go group reader doing nothing but FetchMessage;
//   - raw-pipe: a kafka-go loop that, per 256 messages, writes one 700-byte
//     output per input (acks=all) and commits: the plain consume-produce-commit
//     loop with the worker's output volume and none of its logic;
//   - worker: the adaptrec worker (decode, sessions, Arrow batch, popularity,
//     lists, DLQ, publish, commit).
//
// Rounds alternate the three and the medians are reported, since the broker
// shares this machine's two cores and single runs are noisy. Run with
// -benchtime 1x: one iteration is the whole measurement.
func BenchmarkThroughput(b *testing.B) {
	target := kafkatest.Real(b)
	const n, rounds = 200_000, 3
	cfg := kafkatest.Config(b, target)
	cfg.Batch.Size = 256 // the defaults of configs/adaptrec.yaml
	cfg.Batch.MaxWait = 50 * time.Millisecond
	kafkatest.CreateTopics(b, cfg)
	lines, _ := kafkatest.Events(n, 0, 20_000, 7)
	produceB(b, cfg.Kafka.Brokers, cfg.Topics.Feedback, lines)
	pipeTopic := kafkatest.Name(b, "pipe")
	kafkatest.CreateTopic(b, cfg.Kafka.Brokers, pipeTopic, cfg.Topics.Partitions)

	for b.Loop() {
		var raws, pipes, workers []float64
		for round := range rounds {
			raws = append(raws, rawRate(b, cfg, n))
			pipes = append(pipes, rawPipeRate(b, cfg, n, pipeTopic))
			rate, st := workerRate(b, cfg, n)
			workers = append(workers, rate)
			nb := float64(st.Batches.Load())
			b.Logf("round %d: raw %.0f/s, raw-pipe %.0f/s, worker %.0f/s (per batch: learn %.2fms publish %.2fms commit %.2fms; %d batches in %d groups)",
				round, raws[round], pipes[round], rate, float64(st.LearnNanos.Load())/nb/1e6,
				float64(st.PublishNanos.Load())/nb/1e6, float64(st.CommitNanos.Load())/nb/1e6, int(nb), st.Groups.Load())
		}
		raw, pipe, worker := median(raws), median(pipes), median(workers)
		b.ReportMetric(raw, "raw_events/s")
		b.ReportMetric(pipe, "rawpipe_events/s")
		b.ReportMetric(worker, "worker_events/s")
		b.ReportMetric(worker/raw, "worker/raw")
		b.ReportMetric(worker/pipe, "worker/rawpipe")
		b.Logf("medians of %d rounds, %d events, batch %d: raw kafka-go %.0f events/s, raw-pipe %.0f events/s, worker %.0f events/s; worker/raw %.2f, worker/raw-pipe %.2f",
			rounds, n, cfg.Batch.Size, raw, pipe, worker, worker/raw, worker/pipe)
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func rawReader(b *testing.B, cfg configs.Config) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Kafka.Brokers, GroupID: kafkatest.Name(b, "raw"), Topic: cfg.Topics.Feedback,
		MinBytes: 1, MaxBytes: cfg.Kafka.FetchMaxBytes, MaxWait: cfg.Kafka.FetchMaxWait,
		QueueCapacity: cfg.Batch.Size, StartOffset: kafka.FirstOffset, JoinGroupBackoff: cfg.Kafka.JoinGroupBackoff,
		HeartbeatInterval: cfg.Kafka.HeartbeatInterval, SessionTimeout: cfg.Kafka.SessionTimeout,
	})
}

// rawRate times FetchMessage over the topic, from the first message.
func rawRate(b *testing.B, cfg configs.Config, n int) float64 {
	r := rawReader(b, cfg)
	defer r.Close()
	var first time.Time
	for i := range n {
		if _, err := r.FetchMessage(context.Background()); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = time.Now()
		}
	}
	return float64(n-1) / time.Since(first).Seconds()
}

// rawPipeRate times a plain kafka-go consume, produce, commit loop.
func rawPipeRate(b *testing.B, cfg configs.Config, n int, topic string) float64 {
	r := rawReader(b, cfg)
	defer r.Close()
	w := newSink(cfg.Kafka.Brokers, topic)
	defer w.Close()
	payload := make([]byte, 700)
	in := make([]kafka.Message, 0, 256)
	out := make([]kafka.Message, 0, 256)
	ctx := context.Background()
	var first time.Time
	flush := func() {
		if err := w.Publish(ctx, out...); err != nil {
			b.Fatal(err)
		}
		if err := r.CommitMessages(ctx, in...); err != nil {
			b.Fatal(err)
		}
		in, out = in[:0], out[:0]
	}
	for i := range n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = time.Now()
		}
		in = append(in, m)
		out = append(out, kafka.Message{Key: m.Key, Value: payload})
		if len(in) == cap(in) {
			flush()
		}
	}
	flush()
	return float64(n-1) / time.Since(first).Seconds()
}

// workerRate runs a fresh worker over the topic and times it from its first
// fetched message to the last batch published.
func workerRate(b *testing.B, cfg configs.Config, n int) (float64, *pipeline.Stats) {
	return instrumentedRate(b, cfg, n, nil)
}

// instrumentedRate is workerRate with instrument (if not nil) applied to
// the worker before it runs.
func instrumentedRate(b *testing.B, cfg configs.Config, n int, instrument func(*pipeline.Worker)) (float64, *pipeline.Stats) {
	rec, err := wire.Model(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return modelRate(b, cfg, n, rec, instrument)
}

// modelRate is instrumentedRate serving rec.
func modelRate(b *testing.B, cfg configs.Config, n int, rec model.Recommender, instrument func(*pipeline.Worker)) (float64, *pipeline.Stats) {
	cfg.Kafka.Group = kafkatest.Name(b, "worker")
	w := pipeline.NewWorker(cfg, kafkatest.Logger(b), rec, nil, kafkatest.Outputs(b, cfg))
	if instrument != nil {
		instrument(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for w.Stats().Fetched.Load() == 0 {
		time.Sleep(100 * time.Microsecond)
	}
	first := time.Now()
	for w.Stats().Events.Load() < int64(n) {
		time.Sleep(100 * time.Microsecond)
	}
	rate := float64(n) / time.Since(first).Seconds()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return rate, w.Stats()
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
		rec, _ := wire.Model(cfg)
		w := pipeline.NewWorker(cfg, kafkatest.Logger(b), rec, nil, kafkatest.Outputs(b, cfg))
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

// BenchmarkWorkerModels runs the worker on the real broker over
// ml-latest-small (100,836 ratings, 9,724 items, in time order) with the
// popularity model, the DQN and the adaptive DQN in the same run, and
// reports each one's end-to-end events/s (decode, batch, learn, serve every touched user,
// publish, commit).
func BenchmarkWorkerModels(b *testing.B) {
	target := kafkatest.Real(b)
	events, err := eval.Load("../../shared/data/ml-latest-small/ratings.csv", "movielens-csv")
	if err != nil {
		b.Skipf("ml-latest-small not available: %v", err)
	}
	cfg := kafkatest.Config(b, target)
	cfg.Batch.Size = 256
	cfg.Batch.MaxWait = 50 * time.Millisecond
	kafkatest.CreateTopics(b, cfg)
	lines := make([][]byte, len(events))
	for i, e := range events {
		lines[i] = feedback.Encode(e)
	}
	produceB(b, cfg.Kafka.Brokers, cfg.Topics.Feedback, lines)
	for b.Loop() {
		rates := map[string]float64{}
		var final []int
		for _, name := range []string{"popularity", "dqn", "adaptive", "dqn-final"} {
			c := cfg
			c.Recommender.Model = name
			if name == "dqn-final" {
				// The fixed DQN of the adaptive model's final size.
				c.Recommender.Model, c.Recommender.DQN.Hidden = "dqn", final
			}
			rec, err := wire.Model(c)
			if err != nil {
				b.Fatal(err)
			}
			rate, st := modelRate(b, c, len(events), rec, nil)
			if a, ok := rec.(*model.Adaptive); ok {
				final = a.Widths()
				b.Logf("adaptive: %d decisions, final widths %v", len(a.Decisions()), final)
			}
			rates[name] = rate
			nb := float64(st.Batches.Load())
			b.ReportMetric(rate, name+"_events/s")
			b.Logf("%s: %.0f events/s end to end (learn %.2f ms, publish %.2f ms per batch; %d batches)",
				name, rate, float64(st.LearnNanos.Load())/nb/1e6, float64(st.PublishNanos.Load())/nb/1e6, int(nb))
		}
		b.ReportMetric(rates["adaptive"]/rates["dqn-final"], "adaptive/dqn-final")
		b.Logf("adaptive %.0f events/s against the fixed DQN of its final size %v %.0f events/s: %.2f",
			rates["adaptive"], final, rates["dqn-final"], rates["adaptive"]/rates["dqn-final"])
	}
}

// BenchmarkTracing measures the worker's events/s with tracing off and
// exporting to the real Jaeger at sampling ratios 1.0 and 0.01, and with
// metrics on (the default) and tracing off, in one run on the real broker,
// after a warm-up round, rounds alternating, medians of 5. The events carry
// producer trace context sampled at the same ratio (one OTEL_TRACES_SAMPLER_ARG
// for the deployment); a batch is traced when any of its messages was.
func BenchmarkTracing(b *testing.B) {
	target := kafkatest.Real(b)
	otlp, _ := kafkatest.Jaeger(b)
	const n, rounds = 200_000, 5
	base := kafkatest.Config(b, target)
	base.Batch.Size = 256
	base.Batch.MaxWait = 50 * time.Millisecond
	lines, _ := kafkatest.Events(n, 0, 20_000, 7)
	ratios := []float64{1, 0.01}
	topics := map[float64]configs.Config{}
	service := kafkatest.Name(b, "bench")
	for _, r := range ratios {
		cfg := base
		cfg.Topics.Feedback = kafkatest.Name(b, "feedback")
		kafkatest.CreateTopics(b, cfg)
		tr, err := telemetry.NewTracing(context.Background(), configs.Tracing{Enabled: true, Endpoint: otlp, Protocol: "grpc",
			SampleRatio: r, ServiceName: service + "-producer"}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		out := newSink(cfg.Kafka.Brokers, cfg.Topics.Feedback)
		if _, err := pipeline.Produce(context.Background(), out, bytesReader(lines), pipeline.ProduceOptions{
			Tracer: tr.Provider.Tracer("bench"), Topic: cfg.Topics.Feedback}); err != nil {
			b.Fatal(err)
		}
		out.Close()
		if err := tr.Shutdown(context.Background()); err != nil {
			b.Fatal(err)
		}
		topics[r] = cfg
	}
	traced := func(r float64) func(*pipeline.Worker) {
		return func(w *pipeline.Worker) {
			tr, err := telemetry.NewTracing(context.Background(), configs.Tracing{Enabled: true, Endpoint: otlp, Protocol: "grpc",
				SampleRatio: r, ServiceName: service}, "bench")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
			w.Instrument(tr, nil, nil)
		}
	}
	metered := func(w *pipeline.Worker) {
		m, err := telemetry.NewMetrics(base.Metrics.QualityWindow)
		if err != nil {
			b.Fatal(err)
		}
		w.Instrument(nil, m, &telemetry.Health{})
	}
	instrumentedRate(b, topics[0.01], n, nil) // warm-up: the broker's first reads of the topic are slow
	for b.Loop() {
		var off, full, sampled, metrics []float64
		for round := range rounds {
			r0, _ := instrumentedRate(b, topics[0.01], n, nil)
			r1, _ := instrumentedRate(b, topics[1], n, traced(1))
			r2, _ := instrumentedRate(b, topics[0.01], n, traced(0.01))
			r3, _ := instrumentedRate(b, topics[0.01], n, metered)
			off, full, sampled, metrics = append(off, r0), append(full, r1), append(sampled, r2), append(metrics, r3)
			b.Logf("round %d: off %.0f/s, sampling 1.0 %.0f/s, sampling 0.01 %.0f/s, metrics only %.0f/s", round, r0, r1, r2, r3)
		}
		o, f, s, m := median(off), median(full), median(sampled), median(metrics)
		b.ReportMetric(m, "metrics_events/s")
		b.ReportMetric(1-m/o, "overhead_metrics")
		b.Logf("metrics on (default config, tracing off): %.0f events/s, overhead %.1f%%", m, 100*(1-m/o))
		b.ReportMetric(o, "off_events/s")
		b.ReportMetric(f, "ratio1_events/s")
		b.ReportMetric(s, "ratio0.01_events/s")
		b.ReportMetric(1-f/o, "overhead_ratio1")
		b.ReportMetric(1-s/o, "overhead_ratio0.01")
		b.Logf("medians of %d rounds, %d events: off %.0f events/s; sampling 1.0 %.0f (overhead %.1f%%); sampling 0.01 %.0f (overhead %.1f%%)",
			rounds, n, o, f, 100*(1-f/o), s, 100*(1-s/o))
	}
}
