package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
	"github.com/adaptrec/adaptrec/pipeline/snapstore"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the adaptrec binary once per test run.
func binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "adaptrec-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "adaptrec")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// env turns a test config into the ADAPTREC_* variables a process reads.
func env(cfg configs.Config, clientID string) []string {
	return append(os.Environ(),
		"ADAPTREC_KAFKA_BROKERS="+strings.Join(cfg.Kafka.Brokers, ","),
		"ADAPTREC_KAFKA_GROUP="+cfg.Kafka.Group,
		"ADAPTREC_KAFKA_CLIENT_ID="+clientID,
		"ADAPTREC_KAFKA_SESSION_TIMEOUT="+cfg.Kafka.SessionTimeout.String(),
		"ADAPTREC_KAFKA_HEARTBEAT_INTERVAL="+cfg.Kafka.HeartbeatInterval.String(),
		"ADAPTREC_KAFKA_REBALANCE_TIMEOUT="+cfg.Kafka.RebalanceTimeout.String(),
		"ADAPTREC_KAFKA_JOIN_GROUP_BACKOFF="+cfg.Kafka.JoinGroupBackoff.String(),
		"ADAPTREC_TOPICS_FEEDBACK="+cfg.Topics.Feedback,
		"ADAPTREC_TOPICS_RECOMMENDATIONS="+cfg.Topics.Recommendations,
		"ADAPTREC_TOPICS_DLQ="+cfg.Topics.DLQ,
		"ADAPTREC_TOPICS_DECISIONS="+cfg.Topics.Decisions,
		"ADAPTREC_SNAPSHOT_TOPIC="+cfg.Snapshot.Topic,
		"ADAPTREC_SNAPSHOT_ORDER_TOPIC="+cfg.Snapshot.OrderTopic,
		"ADAPTREC_BATCH_SIZE="+strconv.Itoa(cfg.Batch.Size),
		"ADAPTREC_BATCH_MAX_WAIT="+cfg.Batch.MaxWait.String(),
		"ADAPTREC_WORKER_MAX_PENDING_BATCHES="+strconv.Itoa(cfg.Worker.MaxPendingBatches),
		"ADAPTREC_WORKER_PROGRESS_INTERVAL=0s",
		"ADAPTREC_LOG_LEVEL=warn",
		"ADAPTREC_METRICS_ADDR=127.0.0.1:0",
	)
}

type proc struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	mu     *sync.Mutex
	waited chan error
}

func start(t testing.TB, environ []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = environ
	p := &proc{cmd: cmd, out: &bytes.Buffer{}, mu: &sync.Mutex{}, waited: make(chan error, 1)}
	w := lockedWriter{p.out, p.mu}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.waited
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, p.output())
		}
		p.waited <- nil
	})
	return p
}

func (p *proc) output() string { p.mu.Lock(); defer p.mu.Unlock(); return p.out.String() }

func (p *proc) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.waited:
		p.waited <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %v:\n%s", timeout, p.output())
		return nil
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// members returns each live member's client id and its partitions of topic.
func members(t *testing.T, brokers []string, group, topic string) map[string][]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kafkatest.Client(brokers).DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil
	}
	out := map[string][]int{}
	for _, g := range resp.Groups {
		for _, m := range g.Members {
			for _, tp := range m.MemberAssignments.Topics {
				if tp.Topic == topic {
					out[m.ClientID] = append(out[m.ClientID], tp.Partitions...)
				}
			}
		}
	}
	return out
}

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
			file := filepath.Join(t.TempDir(), "events.jsonl")
			if err := os.WriteFile(file, kafkatest.JSONL(lines), 0o644); err != nil {
				t.Fatal(err)
			}
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

// TestReplayCLI checks `adaptrec replay` refuses a live group, changing
// nothing, and rewinds an empty one.
func TestReplayCLI(t *testing.T) {
	target := kafkatest.Targets(t)[0]
	cfg := kafkatest.Config(t, target)
	kafkatest.CreateTopics(t, cfg)
	lines, _ := kafkatest.Events(500, 0, 50, 5)
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, kafkatest.JSONL(lines), 0o644); err != nil {
		t.Fatal(err)
	}
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
	if last := out[len(out)-1]; !strings.HasPrefix(last, "summary:") {
		t.Fatalf("no summary on SIGINT; last line %q", last)
	}
	t.Logf("make run: %d progress lines, %d lists published; %s", progress, published, out[len(out)-1])
}

// childOf finds the child process of pid whose command name is name.
func childOf(t *testing.T, pid int, name string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "("+name) {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return child
		}
	}
	t.Fatalf("no %s child of pid %d", name, pid)
	return 0
}

// TestEvalCLI runs `adaptrec eval` on a fixture: a Markdown table on stdout,
// results.csv with the documented columns and one row per model, curve.png.
func TestEvalCLI(t *testing.T) {
	out := t.TempDir()
	data := filepath.Join("..", "..", "testdata", "eval", "hand.jsonl")
	p := start(t, os.Environ(), "eval", "--data", data, "--format", "events-jsonl", "--models", "pop,itemknn,sr,sknn,adaptive-rl", "--batch", "2", "--out", out)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Fatalf("eval: %v\n%s", err, p.output())
	}
	if !strings.Contains(p.output(), "| popularity | 1.0000 | 0.9077 | 4 |") {
		t.Fatalf("table lacks the hand-computed popularity row:\n%s", p.output())
	}
	for _, row := range []string{"| sr | ", "| sknn | ", "best baseline (of popularity, itemknn, sr, sknn in this run): "} {
		if !strings.Contains(p.output(), row) {
			t.Fatalf("table lacks %q:\n%s", row, p.output())
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if !strings.HasPrefix(rows[0], "model,hr,ndcg,params_mean,params_final,events_per_s,train_us_per_batch") ||
		!strings.Contains(rows[0], ",hr_per_kparam,") || !strings.Contains(rows[0], ",decisions,") ||
		!strings.Contains(rows[0], ",train_us_per_event") || !strings.Contains(rows[0], ",hr_vs_best_baseline") || len(rows) != 6 {
		t.Fatalf("results.csv:\n%s", raw)
	}
	if _, err := os.Stat(filepath.Join(out, "decisions.jsonl")); err != nil {
		t.Fatalf("decisions.jsonl: %v", err)
	}
	for _, png := range []string{"curve.png", "pareto.png", "architecture.png"} {
		if st, err := os.Stat(filepath.Join(out, png)); err != nil || st.Size() < 1000 {
			t.Fatalf("%s: %v", png, err)
		}
	}
	for _, bad := range [][]string{
		{"eval", "--data", data, "--format", "csv"},
		{"eval", "--data", data, "--format", "events-jsonl", "--models", "pop,magic"},
		{"eval", "--data", data, "--format", "events-jsonl", "--from", "0.6", "--to", "0.4"},
		{"eval", "--data", filepath.Join("..", "..", "testdata", "eval", "ratings.csv"), "--format", "events-jsonl"},
	} {
		p := start(t, os.Environ(), bad...)
		if err := p.wait(t, 30*time.Second); err == nil {
			t.Errorf("%v accepted:\n%s", bad, p.output())
		}
	}
}

// eval --sim runs the simulated population against each model and writes
// the closed-loop figures; a bad sim key is refused by name.
func TestEvalSimCLI(t *testing.T) {
	out := t.TempDir()
	env := append(os.Environ(), "ADAPTREC_SIM_USERS=300", "ADAPTREC_SIM_ITEMS=200", "ADAPTREC_SIM_CONCURRENCY=16", "ADAPTREC_SIM_SESSIONS=200")
	p := start(t, env, "eval", "--sim", "--models", "random,pop,itemknn", "--out", out)
	if err := p.wait(t, 120*time.Second); err != nil {
		t.Fatalf("eval --sim: %v\n%s", err, p.output())
	}
	if !strings.Contains(p.output(), "| itemknn | ") {
		t.Fatalf("no itemknn row:\n%s", p.output())
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if !strings.HasPrefix(rows[0], "model,cumulative_reward,mean_session_length,ctr,regret") || len(rows) != 4 {
		t.Fatalf("results.csv:\n%s", raw)
	}
	for _, row := range rows[1:] {
		f := strings.Split(row, ",")
		if r, _ := strconv.ParseFloat(f[1], 64); r <= 0 {
			t.Errorf("%s: cumulative reward %s", f[0], f[1])
		}
	}
	for _, bad := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"ADAPTREC_SIM_TEMPERATURE=0"}, []string{"eval", "--sim"}, "sim.temperature"},
		{nil, []string{"eval", "--sim", "--data", "x.csv"}, "--data"},
		{nil, []string{"eval", "--sim", "--models", "magic"}, "magic"},
	} {
		p := start(t, append(os.Environ(), bad.env...), bad.args...)
		if err := p.wait(t, 30*time.Second); err == nil || !strings.Contains(p.output(), bad.want) {
			t.Errorf("%v %v: %v, output lacks %q:\n%s", bad.env, bad.args, err, bad.want, p.output())
		}
	}
}

// A worker stopped with SIGINT leaves a snapshot that snapshot ls lists,
// inspect describes and export writes as a readable Arrow IPC file.
func TestSnapshotCLI(t *testing.T) {
	target := kafkatest.Targets(t)[0]
	cfg := kafkatest.Config(t, target)
	kafkatest.CreateTopics(t, cfg)
	lines, _ := kafkatest.Events(400, 0, 40, 6)
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, kafkatest.JSONL(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := start(t, env(cfg, "producer"), "produce", "--file", file); p.wait(t, 60*time.Second) != nil {
		t.Fatalf("produce:\n%s", p.output())
	}
	dqn := append(env(cfg, "worker"), "ADAPTREC_RECOMMENDER_MODEL=dqn", "ADAPTREC_RECOMMENDER_DQN_HIDDEN=16", "ADAPTREC_RECOMMENDER_DQN_ROWS=32")
	w := start(t, dqn, "worker")
	kafkatest.WaitCommitted(t, cfg.Kafka.Brokers, cfg.Kafka.Group, cfg.Topics.Feedback, 120*time.Second)
	_ = w.cmd.Process.Signal(syscall.SIGINT)
	if err := w.wait(t, 60*time.Second); err != nil {
		t.Fatalf("worker on SIGINT: %v\n%s", err, w.output())
	}
	ls := start(t, env(cfg, "cli"), "snapshot", "ls")
	if err := ls.wait(t, 30*time.Second); err != nil || !strings.Contains(ls.output(), cfg.Kafka.Group) || !strings.Contains(ls.output(), " ok ") {
		t.Fatalf("snapshot ls: %v\n%s", err, ls.output())
	}
	in := start(t, env(cfg, "cli"), "snapshot", "inspect")
	if err := in.wait(t, 30*time.Second); err != nil || !strings.Contains(in.output(), `"widths": [`) || !strings.Contains(in.output(), `"offsets"`) {
		t.Fatalf("snapshot inspect: %v\n%s", err, in.output())
	}
	out := filepath.Join(t.TempDir(), "model.arrow")
	ex := start(t, env(cfg, "cli"), "snapshot", "export", "--out", out)
	if err := ex.wait(t, 30*time.Second); err != nil {
		t.Fatalf("snapshot export: %v\n%s", err, ex.output())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	snap, err := model.ReadSnapshot(f)
	if err != nil || snap.Meta.Items == 0 || len(snap.Meta.Widths) != 1 || snap.Meta.Widths[0] != 16 {
		t.Fatalf("exported snapshot: %v %+v", err, snap)
	}
	bad := start(t, env(cfg, "cli"), "snapshot", "inspect", "0000")
	if err := bad.wait(t, 30*time.Second); err == nil || !strings.Contains(bad.output(), `no snapshot "0000"`) {
		t.Fatalf("inspect of a missing snapshot: %v\n%s", err, bad.output())
	}
}

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

// TestKillDuringSnapshotPublication kills a worker process with SIGKILL
// while it is publishing a snapshot chunk by chunk, so that the topic holds
// a snapshot cut short, newer than the last complete one. The next worker
// of the group skips the incomplete snapshot, saying why, and restores the
// last complete one (issue 7).
func TestKillDuringSnapshotPublication(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes for ~20s")
	}
	for _, target := range kafkatest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			began := time.Now()
			cfg := kafkatest.Config(t, target)
			kafkatest.CreateTopics(t, cfg)
			// A small DQN that snapshots every other batch in 2 KiB chunks:
			// a publication is tens to hundreds of synchronous produce
			// requests, and the worker is nearly always in the middle of one.
			worker := func(clientID string) []string {
				return append(env(cfg, clientID),
					"ADAPTREC_RECOMMENDER_MODEL=dqn", "ADAPTREC_RECOMMENDER_DQN_HIDDEN=16", "ADAPTREC_RECOMMENDER_DQN_ROWS=32",
					"ADAPTREC_SNAPSHOT_INTERVAL=0s", "ADAPTREC_SNAPSHOT_EVERY_BATCHES=2", "ADAPTREC_SNAPSHOT_CHUNK_BYTES=2048",
					"ADAPTREC_LOG_LEVEL=info", "ADAPTREC_LOG_FORMAT=json")
			}
			lines, _ := kafkatest.Events(100_000, 0, 2000, 11)
			file := filepath.Join(t.TempDir(), "events.jsonl")
			if err := os.WriteFile(file, kafkatest.JSONL(lines), 0o644); err != nil {
				t.Fatal(err)
			}
			// Events keep coming (up to 50s at 2000/s) so that batches, and
			// with them snapshots, keep coming until the kill.
			prod := start(t, env(cfg, "producer"), "produce", "--file", file, "--rate", "2000")

			list := func() ([]snapstore.Stored, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				all, _, err := snapstore.New(kafkaconn.Plain(cfg.Kafka.Brokers), cfg.Snapshot.Topic, cfg.Kafka.Group, 0, kafkatest.Logger(t)).List(ctx)
				return all, err
			}
			// cut returns the newest complete snapshot and the newest
			// snapshot if it is incomplete and newer than that one.
			cut := func(all []snapstore.Stored) (complete, partial *snapstore.Stored) {
				for i := range all {
					if all[i].Complete {
						complete = &all[i]
					}
				}
				if n := len(all); complete != nil && !all[n-1].Complete && all[n-1].Offset > complete.Offset {
					partial = &all[n-1]
				}
				return complete, partial
			}

			// Kill the worker while a snapshot newer than a complete one is
			// partly on the topic, in the first half of its chunks so that
			// the rest outlasts the look that saw it. Listing the topic
			// reads all of it, and it only grows (nothing compacts it in a
			// test), so the look is at the tail: the last record, a chunk
			// whose key and headers say which of how many it is. The last
			// chunks may still be written between the look and the kill (a
			// busy machine): then the kill came too late, and a new worker
			// of the group is killed during its next publication.
			var complete, partial snapstore.Stored
			const attempts = 5
			for attempt := 1; ; attempt++ {
				clientID := fmt.Sprintf("worker-%d", attempt)
				w := start(t, worker(clientID), "worker")
				deadline := time.Now().Add(60 * time.Second)
				var base *snapstore.Stored
				var seen []snapstore.Stored
				for base == nil {
					all, err := list()
					if err == nil {
						seen = all
						base, _ = cut(all)
					}
					if time.Now().After(deadline) {
						t.Fatalf("attempt %d: no complete snapshot on the topic within 60s: %v; topic: %s\n%s", attempt, err, describe(seen), w.output())
					}
					time.Sleep(20 * time.Millisecond)
				}
				tail := newTail(cfg.Kafka.Brokers, cfg.Snapshot.Topic)
				var last tailChunk
				for {
					c, err := tail.last()
					if err == nil {
						last = c
						// IDs are zero-padded creation times: newer sorts later.
						if c.id > base.ID && c.chunk+1 <= c.chunks/2 {
							break
						}
					}
					if time.Now().After(deadline) {
						t.Fatalf("attempt %d: no snapshot newer than %s was seen in the first half of its publication within 60s: %v; last record: %+v\n%s",
							attempt, base.ID, err, last, w.output())
					}
					time.Sleep(2 * time.Millisecond)
				}
				if err := w.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = w.wait(t, 30*time.Second)
				tail.close()
				// A produce request in flight at the kill may still land:
				// judge the topic once it stops changing.
				all := settled(t, list)
				c, p := cut(all)
				if c != nil && p != nil && p.Have > 0 && p.Have < p.Chunks {
					complete, partial = *c, *p
					t.Logf("attempt %d: killed %s when chunk %d of %d of snapshot %s was the last written; on the topic: %d of %d chunks; the last complete snapshot is %s (%d chunks)",
						attempt, clientID, last.chunk+1, last.chunks, last.id, p.Have, p.Chunks, c.ID, c.Chunks)
					for _, l := range logLines(t, w.output(), "published snapshot") {
						if l["snapshot"] == p.ID {
							t.Fatalf("the killed worker logged snapshot %s as published, yet it is incomplete: %s", p.ID, describe(all))
						}
					}
					break
				}
				if attempt == attempts {
					t.Fatalf("%d kills came too late: the newest snapshot was complete each time, so nothing was tested; topic: %s", attempts, describe(all))
				}
				t.Logf("attempt %d: the kill came after the publication finished (topic: %s); again", attempt, describe(all))
			}

			_ = prod.cmd.Process.Kill()

			// The restarted worker restores the last complete snapshot and
			// says why it skipped the cut one.
			r := start(t, worker("worker-restarted"), "worker")
			deadline := time.Now().Add(60 * time.Second)
			var restored []map[string]any
			for len(restored) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the restarted worker logged no \"restored snapshot\" within 60s:\n%s", r.output())
				}
				if out := r.output(); strings.Contains(out, `"no snapshot to restore"`) || strings.Contains(out, `"snapshot not loaded"`) {
					t.Fatalf("the restarted worker restored no snapshot:\n%s", out)
				}
				select {
				case err := <-r.waited:
					r.waited <- err
					t.Fatalf("the restarted worker exited: %v\n%s", err, r.output())
				case <-time.After(50 * time.Millisecond):
				}
				restored = logLines(t, r.output(), "restored snapshot")
			}
			if got := restored[0]["snapshot"]; got != complete.ID {
				t.Fatalf("restored snapshot %v, want %s, the newest complete one; topic: %s", got, complete.ID, describe(settled(t, list)))
			}
			wantReason := fmt.Sprintf("%d of %d chunks", partial.Have, partial.Chunks)
			skipped := false
			for _, l := range logLines(t, r.output(), "skipping snapshot") {
				if l["snapshot"] == partial.ID {
					skipped = true
					if l["reason"] != wantReason {
						t.Fatalf("skipped snapshot %s because %q, want %q", partial.ID, l["reason"], wantReason)
					}
				}
			}
			if !skipped {
				t.Fatalf("the restarted worker did not log skipping snapshot %s:\n%s", partial.ID, r.output())
			}
			if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if err := r.wait(t, 60*time.Second); err != nil {
				t.Fatalf("the restarted worker on SIGINT: %v\n%s", err, r.output())
			}
			t.Logf("%s: restored %s, skipped %s (%s) in %v", target.Name, complete.ID, partial.ID, wantReason, time.Since(began).Round(time.Second))
		})
	}
}

// tailChunk is the last record of the snapshot topic, when it is a chunk:
// chunk (from 0) of chunks of snapshot id.
type tailChunk struct {
	id            string
	chunk, chunks int
}

// tail reads the last record of the snapshot topic (one partition, as the
// worker creates it) over one connection, dialled again after an error.
type tail struct {
	brokers []string
	topic   string
	conn    *kafka.Conn
}

func newTail(brokers []string, topic string) *tail { return &tail{brokers: brokers, topic: topic} }

func (r *tail) last() (tailChunk, error) {
	c, err := r.read()
	if err != nil {
		r.close()
	}
	return c, err
}

func (r *tail) read() (tailChunk, error) {
	if r.conn == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := kafka.DialLeader(ctx, "tcp", r.brokers[0], r.topic, 0)
		if err != nil {
			return tailChunk{}, err
		}
		r.conn = conn
	}
	_ = r.conn.SetDeadline(time.Now().Add(10 * time.Second))
	end, err := r.conn.ReadLastOffset()
	if err != nil || end == 0 {
		return tailChunk{}, fmt.Errorf("end offset %d: %v", end, err)
	}
	if _, err := r.conn.Seek(end-1, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return tailChunk{}, err
	}
	m, err := r.conn.ReadMessage(4 << 20)
	if err != nil {
		return tailChunk{}, err
	}
	parts := strings.Split(string(m.Key), "/")
	if m.Value == nil || len(parts) < 3 {
		return tailChunk{}, fmt.Errorf("offset %d is not a chunk (key %q)", m.Offset, m.Key)
	}
	c := tailChunk{id: parts[len(parts)-2]}
	c.chunk, err = strconv.Atoi(parts[len(parts)-1])
	if err != nil {
		return tailChunk{}, fmt.Errorf("offset %d: key %q: %v", m.Offset, m.Key, err)
	}
	for _, h := range m.Headers {
		if h.Key == "adaptrec-snapshot-chunks" {
			c.chunks, _ = strconv.Atoi(string(h.Value))
		}
	}
	return c, nil
}

func (r *tail) close() {
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}

// settled lists the snapshots until two listings 300ms apart agree.
func settled(t *testing.T, list func() ([]snapstore.Stored, error)) []snapstore.Stored {
	t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		all, err := list()
		if err == nil {
			d := describe(all)
			if d == last {
				return all
			}
			last = d
		}
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot topic did not settle within 30s: %v; last: %s", err, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// describe lists snapshots as ID:have/chunks, oldest first.
func describe(all []snapstore.Stored) string {
	var b strings.Builder
	for _, s := range all {
		state := "ok"
		if !s.Complete {
			state = s.Problem
		}
		fmt.Fprintf(&b, "[%s@%d %d/%d %s] ", s.ID, s.Offset, s.Have, s.Chunks, state)
	}
	return strings.TrimSpace(b.String())
}

// logLines returns the JSON log lines of out whose msg is msg.
func logLines(t *testing.T, out, msg string) []map[string]any {
	t.Helper()
	var found []map[string]any
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "{") || !strings.Contains(l, `"msg":"`+msg+`"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			found = append(found, m)
		}
	}
	return found
}
