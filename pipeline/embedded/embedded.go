// Package embedded runs an in-process Kafka-compatible broker (franz-go's
// kfake) on loopback, so `adaptrec worker --embedded` shows the whole flow
// with nothing installed. It is a demo and fast-test broker, never the proof
// that something works on Kafka: the integration tests run on a real broker.
package embedded

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a running in-process cluster.
type Broker struct {
	c *kfake.Cluster
}

// Start starts a single-node cluster on a free loopback port with the given
// topics already created.
func Start(partitions int, topics ...string) (*Broker, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1), kfake.DefaultNumPartitions(partitions),
		// Like the test broker of deploy/kafka: short sessions are allowed.
		kfake.GroupMinSessionTimeout(time.Second),
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(partitions), topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting embedded broker: %w", err)
	}
	return &Broker{c: c}, nil
}

// Addrs are the HOST:PORT addresses of the broker.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Close stops the broker and discards its data.
func (b *Broker) Close() { b.c.Close() }

// Fake is the in-process cluster itself, for tests that make the broker
// answer a request with an error (kfake's ControlKey).
func (b *Broker) Fake() *kfake.Cluster { return b.c }
