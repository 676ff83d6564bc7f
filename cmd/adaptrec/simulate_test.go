package main

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// simulate runs the population against a live worker process through
// Kafka and reports both populations every --every.
func TestSimulateCLI(t *testing.T) {
	target := kafkatest.Targets(t)[0]
	cfg := kafkatest.Config(t, target)
	kafkatest.CreateTopics(t, cfg)
	w := start(t, env(cfg, "worker"), "worker")
	small := append(env(cfg, "sim"), "ADAPTREC_SIM_CONCURRENCY=32", "ADAPTREC_SIM_ITEMS=300")
	p := start(t, small, "simulate", "--users", "400", "--duration", "8s", "--every", "2s")
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatalf("simulate: %v\n%s", err, p.output())
	}
	re := regexp.MustCompile(`total    worker: sessions (\d+)  mean session length ([\d.]+)  clicks/session ([\d.]+)`)
	m := re.FindStringSubmatch(p.output())
	if m == nil || m[1] == "0" || m[3] == "0.00" || strings.Count(p.output(), "random: sessions") < 3 {
		t.Fatalf("simulate output:\n%s", p.output())
	}
	_ = w.cmd.Process.Signal(syscall.SIGINT)
	if err := w.wait(t, 60*time.Second); err != nil {
		t.Fatalf("worker: %v\n%s", err, w.output())
	}
}
