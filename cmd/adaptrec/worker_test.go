package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// TestTwoWorkersOneKilled runs two worker processes in one group, kills one
// with SIGKILL mid-stream and checks that the other takes over with every
// valid event's effect in the outputs (at-least-once) and duplicates bounded
// by the batch in flight.
func TestTwoWorkersOneKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes for ~20s")
	}
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			cfg := kafkatest.Config(t, target)
			kafkatest.CreateTopics(t, cfg)
			a := start(t, env(cfg, "worker-a"), "worker")
			b := start(t, env(cfg, "worker-b"), "worker")

			// Both receive partitions before any event is produced.
			var assigned map[string][]int
			deadline := time.Now().Add(60 * time.Second)
			for {
				assigned = members(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback)
				if len(assigned["worker-a"]) > 0 && len(assigned["worker-b"]) > 0 && len(assigned["worker-a"])+len(assigned["worker-b"]) == 6 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("both workers did not receive partitions: %v\nA:\n%s\nB:\n%s", assigned, a.output(), b.output())
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("assignment: %v", assigned)

			lines, _ := kafkatest.Events(10_000, 0, 800, 4)
			file := eventsFile(t, lines)
			prod := start(t, env(cfg, "producer"), "produce", "--file", file, "--rate", "2000")

			// Kill A once it has committed on its partitions: mid-stream.
			client := kafkatest.Client(cfg.Kafka.Brokers)
			deadline = time.Now().Add(30 * time.Second)
			for {
				committed, _ := pipeline.CommittedOffsets(context.Background(), client, cfg.Kafka.Group, cfg.Topics.Feedback)
				progressed := 0
				for _, p := range assigned["worker-a"] {
					if committed[p] > 200 {
						progressed++
					}
				}
				if progressed == len(assigned["worker-a"]) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("worker A made no progress: %v", committed)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			t.Log("killed worker A")

			if err := prod.wait(t, 60*time.Second); err != nil {
				t.Fatalf("produce: %v\n%s", err, prod.output())
			}
			kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 120*time.Second)
			if got := members(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback); len(got["worker-b"]) != 6 {
				t.Fatalf("B did not take over every partition: %v", got)
			}
			if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if err := b.wait(t, 60*time.Second); err != nil {
				t.Fatalf("worker B on SIGINT: %v\n%s", err, b.output())
			}

			// Every valid event's effect is in the outputs.
			recs := map[string][]model.Recommendation{}
			for _, m := range kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Recommendations) {
				var r model.Recommendation
				if err := json.Unmarshal(m.Value, &r); err != nil {
					t.Fatal(err)
				}
				recs[r.UserID] = append(recs[r.UserID], r)
			}
			missing := 0
			for _, m := range kafkatest.ReadAll(t, cfg.Kafka.Brokers, cfg.Topics.Feedback) {
				e, err := feedback.Decode(m.Value, feedback.DefaultLimits)
				if err != nil {
					continue
				}
				ok := false
				for _, r := range recs[e.UserID] {
					ok = ok || (int(r.Partition) == m.Partition && r.Offset >= m.Offset)
				}
				if !ok {
					missing++
				}
			}
			if missing > 0 {
				t.Fatalf("%d valid events have no list reflecting them", missing)
			}
			// Duplicates: lists that do not move a user's reflected offset
			// forward were re-published for events already reflected.
			dups := 0
			for _, rs := range recs {
				high := int64(-1)
				for _, r := range rs {
					if r.Offset <= high {
						dups++
					}
					high = max(high, r.Offset)
				}
			}
			// A crash re-delivers at most the two publish groups between
			// publish and commit, each at most max_pending_batches batches.
			bound := 2 * cfg.Worker.MaxPendingBatches * cfg.Batch.Size
			t.Logf("%s: %d re-published lists after the kill (bound: %d)", target.Name, dups, bound)
			if dups > bound {
				t.Fatalf("%d duplicate lists exceed the batches in flight (%d)", dups, bound)
			}
		})
	}
}

var progressRE = regexp.MustCompile(`lists published (\d+)`)

// TestMakeRun runs `make run` (the embedded worker) for 20 seconds, then
// SIGINT: progress lines show published lists and the worker exits 0.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make run for 20s")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-s", "-C", root, "run")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out []string
	// The 20 seconds start with the first progress line, so that building
	// the binary on a busy machine does not eat into them.
	var timer <-chan time.Time
	startBy := time.After(3 * time.Minute)
collect:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make run ended early:\n%s\n%s", strings.Join(out, "\n"), stderr.String())
			}
			out = append(out, l)
			if timer == nil && strings.HasPrefix(l, "events/s") {
				timer = time.After(20 * time.Second)
			}
		case <-timer:
			break collect
		case <-startBy:
			if timer == nil {
				t.Fatalf("make run printed no progress in 3 minutes:\n%s\n%s", strings.Join(out, "\n"), stderr.String())
			}
		}
	}
	// The worker is make's child; SIGINT it as Ctrl-C would.
	worker := childOf(t, cmd.Process.Pid, "adaptrec")
	if err := syscall.Kill(worker, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		out = append(out, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("make run after SIGINT: %v\n%s\n%s", err, strings.Join(out, "\n"), stderr.String())
	}
	progress, published := 0, 0
	for _, l := range out {
		if m := progressRE.FindStringSubmatch(l); m != nil && strings.HasPrefix(l, "events/s") {
			progress++
			published, _ = strconv.Atoi(m[1])
		}
	}
	if progress < 10 || published == 0 {
		t.Fatalf("%d progress lines, %d lists published:\n%s", progress, published, strings.Join(out, "\n"))
	}
	// The simulated population reacts to the lists: its sessions show up
	// in the progress line.
	population := false
	for _, l := range out {
		population = population || strings.Contains(l, "sim (30s): reward/list ")
	}
	if !population {
		t.Fatalf("no progress line shows the simulated population:\n%s", strings.Join(out, "\n"))
	}
	// It prints the link of its status page before its progress lines.
	link := false
	for _, l := range out {
		link = link || strings.HasPrefix(l, "status page: http://127.0.0.1:")
	}
	if !link {
		t.Fatalf("make run printed no status page link:\n%s", strings.Join(out, "\n"))
	}
	if last := out[len(out)-1]; !strings.HasPrefix(last, "summary:") {
		t.Fatalf("no summary on SIGINT; last line %q", last)
	}
	t.Logf("make run: %d progress lines, %d lists published; %s", progress, published, out[len(out)-1])
}
