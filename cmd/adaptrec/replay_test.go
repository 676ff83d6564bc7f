package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// TestReplayCLI checks `adaptrec replay` refuses a live group, changing
// nothing, and rewinds an empty one.
func TestReplayCLI(t *testing.T) {
	target := kafkatest.Targets(t)[0]
	cfg := kafkatest.Config(t, target)
	kafkatest.CreateTopics(t, cfg)
	lines, _ := kafkatest.Events(500, 0, 50, 5)
	file := eventsFile(t, lines)
	prod := start(t, env(cfg, "producer"), "produce", "--file", file)
	if err := prod.wait(t, 60*time.Second); err != nil {
		t.Fatalf("produce: %v\n%s", err, prod.output())
	}
	if !strings.Contains(prod.output(), "produced 500 events") {
		t.Fatalf("produce output: %s", prod.output())
	}
	w := start(t, env(cfg, "worker"), "worker")
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 60*time.Second)
	client := kafkatest.Client(cfg.Kafka.Brokers)
	before, _ := pipeline.CommittedOffsets(context.Background(), client, cfg.Kafka.Group, cfg.Topics.Feedback)

	r := start(t, env(cfg, "replay"), "replay", "--to-offset", "earliest")
	if err := r.wait(t, 30*time.Second); err == nil {
		t.Fatalf("replay against a live group succeeded:\n%s", r.output())
	}
	if !strings.Contains(r.output(), "live member") {
		t.Fatalf("refusal does not say why: %s", r.output())
	}
	after, _ := pipeline.CommittedOffsets(context.Background(), client, cfg.Kafka.Group, cfg.Topics.Feedback)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("refused replay changed offsets %v -> %v", before, after)
	}

	_ = w.cmd.Process.Signal(syscall.SIGINT)
	if err := w.wait(t, 60*time.Second); err != nil {
		t.Fatalf("worker on SIGINT: %v\n%s", err, w.output())
	}
	// Nothing was learned past the end: replay names the snapshot the
	// next worker restores.
	r = start(t, env(cfg, "replay"), "replay", "--to-offset", "latest")
	if err := r.wait(t, 30*time.Second); err != nil || !strings.Contains(r.output(), "the next worker restores its newest, ") {
		t.Fatalf("replay --to-offset latest: %v, want it to name the snapshot restored next\n%s", err, r.output())
	}
	// The worker's last snapshot learned every event: a rewind before it
	// is refused unless the model starts afresh.
	r = start(t, env(cfg, "replay"), "replay", "--to-offset", "earliest")
	if err := r.wait(t, 30*time.Second); err == nil || !strings.Contains(r.output(), "--fresh-model") {
		t.Fatalf("replay before every snapshot: %v, want a refusal naming --fresh-model\n%s", err, r.output())
	}
	if now, _ := pipeline.CommittedOffsets(context.Background(), client, cfg.Kafka.Group, cfg.Topics.Feedback); fmt.Sprint(now) != fmt.Sprint(before) {
		t.Fatalf("refused replay changed offsets %v -> %v", before, now)
	}
	r = start(t, env(cfg, "replay"), "replay", "--to-offset", "earliest", "--fresh-model")
	if err := r.wait(t, 30*time.Second); err != nil {
		t.Fatalf("replay of an empty group: %v\n%s", err, r.output())
	}
	if !strings.Contains(r.output(), "the next worker starts from an empty model") {
		t.Fatalf("replay --fresh-model does not say which model the next worker starts from:\n%s", r.output())
	}
	now, _ := pipeline.CommittedOffsets(context.Background(), client, cfg.Kafka.Group, cfg.Topics.Feedback)
	for p, off := range now {
		if off != 0 {
			t.Fatalf("partition %d at %d after replay to earliest", p, off)
		}
	}
	r = start(t, env(cfg, "replay"), "replay", "--to-offset", "0:1")
	if err := r.wait(t, 30*time.Second); err != nil || !strings.Contains(r.output(), "partition 0 -> offset 1") {
		t.Fatalf("replay --to-offset 0:1: %v\n%s", err, r.output())
	}
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"replay"}, "exactly one"},
		{[]string{"replay", "--to-offset", "middle"}, `--to-offset: "middle" is not`},
		{[]string{"replay", "--to-offset", "-3"}, "--to-offset: offset -3 is negative"},
		{[]string{"replay", "--to-offset", "0:x"}, `offset "x" of partition 0`},
		{[]string{"replay", "--to-offset", "99:0"}, "partition 99: "},
		{[]string{"replay", "--to-offset", "1000000"}, "is beyond the end"},
		{[]string{"replay", "--to-datetime", "yesterday"}, "--to-datetime"},
		{[]string{"replay", "--to-offset", "earliest", "--to-datetime", "2026-01-01T00:00:00Z"}, "exactly one"},
		{[]string{"replay", "--to-offset", "earliest", "--snapshot", "1"}, "exactly one"},
		{[]string{"replay", "--snapshot", "1", "--fresh-model"}, "--fresh-model goes with"},
		{[]string{"replay", "--snapshot", "1795910000000000000"}, "has no snapshot 1795910000000000000"},
	} {
		p := start(t, env(cfg, "replay"), bad.args...)
		if err := p.wait(t, 30*time.Second); err == nil {
			t.Errorf("%v accepted", bad.args)
		}
		if !strings.Contains(p.output(), bad.says) {
			t.Errorf("%v: the error does not say %q: %s", bad.args, bad.says, p.output())
		}
	}
}
