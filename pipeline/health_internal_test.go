package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// A warning repeated a hundred times in a burst is written once, and the
// next one after the interval says how many it stands for.
func TestLogLimitedRepeats(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	w := &Worker{log: slog.New(slog.NewTextHandler(&buf, nil)), logLimit: telemetry.NewLimiter(logRepeatInterval)}
	w.logLimit.Now = func() time.Time { return now }
	for range 100 {
		w.logLimited("k", slog.LevelWarn, "failed to read partition 3")
		now = now.Add(10 * time.Millisecond)
	}
	now = now.Add(logRepeatInterval)
	w.logLimited("k", slog.LevelWarn, "failed to read partition 3")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "failed to read partition 3 (repeated 99 times in the last 11s)") {
		t.Fatalf("log lines:\n%s", buf.String())
	}
}

// tp has the shape of kafka-go's subscription key.
type tp struct {
	topic     string
	partition int32
}

// The partitions held are read from kafka-go's subscription line, those of
// other topics left out; the end of a generation drops them.
func TestGroupLineFollowsAssignment(t *testing.T) {
	cfg := configs.Default()
	h := &telemetry.Health{}
	w := &Worker{cfg: cfg, health: h}
	w.groupLine("subscribed to topics and partitions: %+v", []any{map[tp]int64{
		{cfg.Topics.Feedback, 4}: 10, {cfg.Topics.Feedback, 1}: 0, {"other", 2}: 5}})
	if got := w.hs.held; !reflect.DeepEqual(got, []int{1, 4}) {
		t.Fatalf("held %v, want [1 4]", got)
	}
	if fails := h.Check(context.Background()); fails["group"] != nil {
		t.Fatalf("not joined after subscribing: %v", fails["group"])
	}
	for _, line := range []string{"stopped heartbeat for group %s\n", "Unable to establish connection to consumer group coordinator for group %s: %v",
		"Failed to sync group %s: %v", "Leaving group %s, member %s"} {
		w.groupLine("subscribed to topics and partitions: %+v", []any{map[tp]int64{{cfg.Topics.Feedback, 0}: 0}})
		w.groupLine(line, []any{"g", "x"})
		if w.hs.held != nil || h.Check(context.Background())["group"] == nil {
			t.Errorf("after %q: held %v, group check %v", line, w.hs.held, h.Check(context.Background())["group"])
		}
	}
}

// A reader past the end of its partition stops the worker with
// ErrTopicGone naming the partition; a reader that only retries does not.
func TestReaderLinePastEnd(t *testing.T) {
	cfg := configs.Default()
	for _, c := range []struct {
		format string
		args   []any
		gone   bool
	}{
		{"the kafka reader is reading passed the last offset for partition %d of %s at offset %d", []any{3, cfg.Topics.Feedback, int64(90)}, true},
		{"error initializing the kafka reader for partition %d of %s: %s", []any{2, cfg.Topics.Feedback, fmt.Errorf("x: %w", kafka.OffsetOutOfRange)}, true},
		{"error initializing the kafka reader for partition %d of %s: %s", []any{2, cfg.Topics.Feedback, kafka.UnknownTopicOrPartition}, false},
		{"failed to read from current broker %v for partition %d of %s at offset %d: %v", []any{[]string{"b"}, 1, cfg.Topics.Feedback, int64(5), kafka.UnknownTopicOrPartition}, false},
	} {
		w := &Worker{cfg: cfg, gone: make(chan error, 1)}
		w.readerLine(c.format, c.args)
		select {
		case err := <-w.gone:
			if !c.gone || !errors.Is(err, ErrTopicGone) || !strings.Contains(err.Error(), fmt.Sprintf("partition %v of %s", c.args[0], cfg.Topics.Feedback)) {
				t.Errorf("%q: %v", c.format, err)
			}
		default:
			if c.gone {
				t.Errorf("%q: the worker was not stopped", c.format)
			}
		}
	}
}
