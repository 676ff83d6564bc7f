package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
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
		// Built as make build and the image build it (static, -trimpath),
		// so the three share one compile in the build cache.
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
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

// eventsFile writes lines as a JSONL file for adaptrec produce and returns
// its path.
func eventsFile(t *testing.T, lines [][]byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, kafkatest.JSONL(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}
