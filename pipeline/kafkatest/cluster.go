package kafkatest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// The multi-node test cluster (deploy/kafka/kafka.sh with KAFKA_NODES):
// its brokers in node order, the first node's controller port and its
// data dir. `make test-failover` starts it and sets these.
const (
	EnvClusterBrokers        = "KAFKA_TEST_CLUSTER_BROKERS"
	EnvClusterControllerPort = "KAFKA_TEST_CLUSTER_CONTROLLER_PORT"
	EnvClusterData           = "KAFKA_TEST_CLUSTER_DATA"
)

// Cluster is a multi-node KRaft cluster on loopback whose nodes a test may
// kill and start again. Node i (1-based) is Brokers[i-1] and has node id i.
type Cluster struct {
	Brokers []string
	env     []string
	data    string
}

// RealCluster returns the multi-node test cluster, or skips the test when
// there is none.
func RealCluster(t testing.TB) *Cluster {
	t.Helper()
	brokers, cport, data := os.Getenv(EnvClusterBrokers), os.Getenv(EnvClusterControllerPort), os.Getenv(EnvClusterData)
	if brokers == "" || testing.Short() {
		t.Skipf("no test cluster: set %s, %s and %s (make test-failover does)", EnvClusterBrokers, EnvClusterControllerPort, EnvClusterData)
	}
	if cport == "" || data == "" {
		t.Fatalf("%s is set: %s and %s must be too", EnvClusterBrokers, EnvClusterControllerPort, EnvClusterData)
	}
	c := &Cluster{Brokers: strings.Split(brokers, ","), data: data}
	_, port, ok := strings.Cut(c.Brokers[0], ":")
	if !ok {
		t.Fatalf("%s: %q is not HOST:PORT", EnvClusterBrokers, c.Brokers[0])
	}
	c.env = append(os.Environ(), "KAFKA_NODES="+strconv.Itoa(len(c.Brokers)), "KAFKA_PORT="+port,
		"KAFKA_CONTROLLER_PORT="+cport, "KAFKA_DATA_DIR="+data)
	return c
}

// Kill kills node i with SIGKILL, as a crash would. The node is started
// again when the test ends, if the test has not done so.
func (c *Cluster) Kill(t testing.TB, node int) {
	t.Helper()
	c.run(t, "kill", node)
	t.Cleanup(func() { c.run(t, "start", node) })
}

// Start starts node i again (if it is not running) and waits until it
// answers.
func (c *Cluster) Start(t testing.TB, node int) { c.run(t, "start", node) }

func (c *Cluster) run(t testing.TB, what string, node int) {
	t.Helper()
	cmd := exec.Command("bash", "../deploy/kafka/kafka.sh", what, strconv.Itoa(node))
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kafka.sh %s %d: %v\n%s", what, node, err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

// Leaders maps each partition of topic to the node that leads it, as the
// cluster's metadata says now.
func (c *Cluster) Leaders(t testing.TB, topic string) map[int]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := Client(c.Brokers).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %+v", topic, resp.Topics)
	}
	out := map[int]int{}
	for _, p := range resp.Topics[0].Partitions {
		out[p.ID] = p.Leader.ID
	}
	return out
}

// MostLeading is the node that leads most partitions of topic.
func (c *Cluster) MostLeading(t testing.TB, topic string) int {
	t.Helper()
	count := map[int]int{}
	best := 0
	for _, n := range c.Leaders(t, topic) {
		count[n]++
		if count[n] > count[best] {
			best = n
		}
	}
	if best < 1 || best > len(c.Brokers) {
		t.Fatalf("topic %s: no leader among nodes 1..%d (%v)", topic, len(c.Brokers), count)
	}
	return best
}

// Fenced returns when the cluster's controller fenced node (took its
// leaderships away, so that new leaders were elected) for the first time
// after after, as the controller's log says; false if it has not.
func (c *Cluster) Fenced(t testing.TB, node int, after time.Time) (time.Time, bool) {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(c.data, "node*", "logs", "server.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no node logs in %s: %v", c.data, err)
	}
	marker := fmt.Sprintf("Fencing broker %d at epoch", node)
	var first time.Time
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			// [2026-12-01 00:01:57,627] INFO [QuorumController id=3] Fencing broker 2 at epoch ...
			if !strings.Contains(line, marker) || len(line) < 25 || line[0] != '[' {
				continue
			}
			at, err := time.ParseInLocation("2006-01-02 15:04:05,000", line[1:24], time.Local)
			if err == nil && at.After(after) && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
	}
	return first, !first.IsZero()
}

// String names the cluster's brokers.
func (c *Cluster) String() string { return fmt.Sprintf("cluster %s", strings.Join(c.Brokers, ",")) }
