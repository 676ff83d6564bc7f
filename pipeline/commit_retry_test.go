package pipeline_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/adaptrec/adaptrec/pipeline/embedded"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
)

// coordinatorNotAvailable is Kafka's COORDINATOR_NOT_AVAILABLE: what a
// commit gets while the group's coordinator moves to another broker.
const coordinatorNotAvailable = 15

// A commit that fails while the group's coordinator moves is tried again
// until sink.write_timeout, not turned into the worker's exit: the broker
// answers the first commits with COORDINATOR_NOT_AVAILABLE, more of them
// than kafka-go's own retries of a commit absorb, and the worker still
// commits every event, stays up and stops cleanly.
func TestCommitRetriedWhileCoordinatorMoves(t *testing.T) {
	b, err := embedded.Start(6)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := kafkatest.Config(t, kafkatest.Target{Name: "kfake", Brokers: b.Addrs()})
	kafkatest.CreateTopics(t, cfg)
	const refusals = 10
	var refused atomic.Int64
	b.Fake().ControlKey(kmsg.OffsetCommit.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Load() >= refusals {
			b.Fake().DropControl()
			return nil, nil, false
		}
		b.Fake().KeepControl()
		refused.Add(1)
		return refuseCommit(req.(*kmsg.OffsetCommitRequest), coordinatorNotAvailable), nil, true
	})
	lines, _ := kafkatest.Events(600, 0, 60, 12)
	produce(t, cfg, lines)
	r := runInBackground(t, cfg, nil)
	waitCommittedWhileUp(t, cfg, r, 2*time.Minute)
	if err := r.stop(); err != nil {
		t.Fatalf("the worker stopped with %v after its commits were refused %d times", err, refusals)
	}
	if got := refused.Load(); got != refusals {
		t.Fatalf("the broker refused %d commits, want %d", got, refusals)
	}
	if got := r.w.Stats().CommitRetries.Load(); got == 0 {
		t.Fatalf("the worker counted no commit retry, yet %d commits were refused", refusals)
	}
}

// refuseCommit answers req with code for every partition.
func refuseCommit(req *kmsg.OffsetCommitRequest, code int16) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewOffsetCommitResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewOffsetCommitResponseTopicPartition()
			p.Partition, p.ErrorCode = rp.Partition, code
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}
