package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/sim"
	"github.com/adaptrec/adaptrec/sink"
)

// The population runs against a live worker through Kafka: its events
// reach the worker, the worker's lists reach the users, and they act on
// them (sessions go beyond their opening event).
func TestSimulateThroughKafka(t *testing.T) {
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			cfg.Recommender.Model = "itemknn"
			kafkatest.CreateTopics(t, cfg)
			rec, err := wire.Model(cfg)
			if err != nil {
				t.Fatal(err)
			}
			w := pipeline.NewWorker(cfg, kafkatest.Logger(t), rec, nil, kafkatest.Outputs(t, cfg))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			out := sink.NewKafka(sink.WriterConfig{Brokers: cfg.Kafka.Brokers, Topic: cfg.Topics.Feedback, BatchTimeout: time.Millisecond,
				BatchSize: 1000, WriteTimeout: 10 * time.Second, MaxAttempts: 3})
			defer out.Close()
			policy, err := sim.NewKafkaPolicy(context.Background(), kafkaconn.Plain(cfg.Kafka.Brokers), cfg.Topics.Recommendations,
				&sim.KafkaPolicy{Out: out, Topic: cfg.Topics.Feedback, Wait: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer policy.Close()
			c := sim.Default()
			c.Users, c.Items, c.Concurrency, c.Sessions = 300, 200, 24, 150
			live, _ := sim.New(c)
			control, _ := sim.New(c)
			var total, ctotal sim.Window
			runCtx, stop := context.WithTimeout(context.Background(), 90*time.Second)
			defer stop()
			if err := sim.Live(runCtx, live, policy, control, sim.NewRandom(10, 1), time.Hour, func(w, cw sim.Window) {
				total.Merge(w)
				ctotal.Merge(cw)
			}); err != nil {
				t.Fatal(err)
			}
			if !live.Done() {
				t.Fatalf("only %d of %d sessions started in 90s", live.Started(), c.Sessions)
			}
			if total.Sessions != c.Sessions || total.Shown == 0 || total.Clicks == 0 {
				t.Fatalf("worker population: %+v", total)
			}
			if w.Stats().Snapshot().Lists == 0 {
				t.Fatal("the worker published no lists")
			}
			t.Logf("worker: %s; random: %s", total, ctotal)
		})
	}
}
