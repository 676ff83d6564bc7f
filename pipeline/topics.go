package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/segmentio/kafka-go"
)

// TopicSpec is a topic the worker needs.
type TopicSpec struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	Configs           map[string]string
}

// EnsureTopics creates the topics that do not exist yet (when create is
// true) and waits until the brokers report all of them. Existing topics are
// left as they are. With create false, a missing topic is an error naming it.
func EnsureTopics(ctx context.Context, client *kafka.Client, specs []TopicSpec, create bool, log *slog.Logger) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	existing, err := topicPartitions(ctx, client, names)
	if err != nil {
		return err
	}
	var missing []kafka.TopicConfig
	for _, s := range specs {
		if _, ok := existing[s.Name]; ok {
			continue
		}
		if !create {
			return fmt.Errorf("topic %q does not exist and topics.create is false", s.Name)
		}
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: s.ReplicationFactor}
		for k, v := range s.Configs {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		missing = append(missing, tc)
	}
	if len(missing) > 0 {
		resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: missing})
		if err != nil {
			return fmt.Errorf("creating topics: %w", err)
		}
		for name, terr := range resp.Errors {
			if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
				return fmt.Errorf("creating topic %q: %w", name, terr)
			}
		}
		for _, tc := range missing {
			log.Info("created topic", "topic", tc.Topic, "partitions", tc.NumPartitions, "replication_factor", tc.ReplicationFactor)
		}
	}
	// Wait until metadata shows every topic with leaders, so the consumer
	// group does not start on a half-created topic.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := topicPartitions(ctx, client, names)
		if err == nil && len(got) == len(names) {
			// Metadata can name a leader before its log serves requests:
			// wait until every partition answers an offset query.
			if len(missing) == 0 || servesOffsets(ctx, client, got) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v not ready after 30s (have %v): %v", names, slices.Sorted(maps.Keys(got)), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func servesOffsets(ctx context.Context, client *kafka.Client, topics map[string]int) bool {
	req := map[string][]kafka.OffsetRequest{}
	for t, n := range topics {
		for p := range n {
			req[t] = append(req[t], kafka.LastOffsetOf(p))
		}
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return false
	}
	for _, parts := range resp.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return false
			}
		}
	}
	return true
}

// topicPartitions returns the partition count of each named topic that
// exists with a leader for every partition.
func topicPartitions(ctx context.Context, client *kafka.Client, names []string) (map[string]int, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("reading metadata from %s: %w", client.Addr, err)
	}
	out := map[string]int{}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 || !slices.Contains(names, t.Name) {
			continue
		}
		ready := true
		for _, p := range t.Partitions {
			ready = ready && p.Error == nil && p.Leader.Host != ""
		}
		if ready {
			out[t.Name] = len(t.Partitions)
		}
	}
	return out, nil
}

// Partitions returns the partition ids of topic.
func Partitions(ctx context.Context, client *kafka.Client, topic string) ([]int, error) {
	return kafkaconn.Partitions(ctx, client, topic)
}
