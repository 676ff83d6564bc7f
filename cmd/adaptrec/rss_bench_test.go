package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// BenchmarkWorkerRSS feeds 1,000,000 events from 1,000,000 distinct users
// (over 10,000 items) through a worker process on the real broker, running
// the default model, the default with its users all kept in full, and the
// adaptive model, and reports each one's peak resident memory. Run with
// -benchtime 1x.
func BenchmarkWorkerRSS(b *testing.B) {
	target := kafkatest.Real(b)
	const users = 1_000_000
	cfg := kafkatest.Config(b, target)
	kafkatest.CreateTopics(b, cfg)
	file := filepath.Join(b.TempDir(), "events.jsonl")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for u := range users {
		fmt.Fprintf(w, `{"user_id":"user-%07d","item_id":"i%d","type":"click","ts":"2026-11-28T10:%02d:%02dZ"}`+"\n", u, u%10_000, (u/60)%60, u%60)
	}
	w.Flush()
	f.Close()
	base := env(cfg, "rss")
	prod := start(b, base, "produce", "--file", file)
	if err := prod.wait(b, 10*time.Minute); err != nil {
		b.Fatalf("produce: %v\n%s", err, prod.output())
	}
	// The default model, the same with every user kept in full (no
	// compact users: the memory they save), then the adaptive one (its
	// item tiers and its controller), each a consumer group of its own
	// over the same events.
	for _, run := range []struct{ name, model, compact string }{
		{"dqn", "dqn", "true"},
		{"dqn-full-users", "dqn", "false"},
		{"adaptive", "adaptive", "true"},
	} {
		b.Run("model="+run.name, func(b *testing.B) {
			cfg := cfg
			cfg.Kafka.Group += "-" + run.name
			env := append(slices.Clone(base), "ADAPTREC_RECOMMENDER_MODEL="+run.model,
				"ADAPTREC_RECOMMENDER_COMPACT_USERS="+run.compact, "ADAPTREC_KAFKA_GROUP="+cfg.Kafka.Group)
			workerRSS(b, cfg, env, users)
		})
	}
}

// workerRSS runs a worker of env until it has committed every event of
// the feedback topic and reports its peak and final RSS and events/s.
func workerRSS(b *testing.B, cfg configs.Config, env []string, users int) {
	for b.Loop() {
		worker := start(b, env, "worker")
		peak := int64(0)
		done := make(chan struct{})
		go func() {
			kafkatest.WaitCommitted(b, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 30*time.Minute)
			close(done)
		}()
		t0 := time.Now()
	watch:
		for {
			if rss := rssKB(worker.cmd.Process.Pid); rss > peak {
				peak = rss
			}
			select {
			case <-done:
				break watch
			case <-time.After(500 * time.Millisecond):
			}
		}
		elapsed := time.Since(t0)
		final := rssKB(worker.cmd.Process.Pid)
		_ = worker.cmd.Process.Signal(syscall.SIGINT)
		if err := worker.wait(b, time.Minute); err != nil {
			b.Fatalf("worker: %v\n%s", err, worker.output())
		}
		committed, _ := pipeline.CommittedOffsets(context.Background(), kafkatest.Client(cfg.Kafka.Brokers), cfg.Kafka.Group, cfg.Topics.Feedback)
		total := int64(0)
		for _, o := range committed {
			total += o
		}
		b.ReportMetric(float64(peak)/1024, "peak_RSS_MiB")
		b.ReportMetric(float64(final)/1024, "final_RSS_MiB")
		b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
		b.Logf("%d events from %d users in %v: peak RSS %.0f MiB, at the end %.0f MiB", total, users, elapsed.Round(time.Second), float64(peak)/1024, float64(final)/1024)
	}
}

// rssKB reads VmRSS of a process in KiB (0 if unknown).
func rssKB(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}
