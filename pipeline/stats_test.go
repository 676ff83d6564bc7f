package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	t0 := time.Unix(0, 0)
	prev := StatsSnapshot{At: t0, Events: 1000}
	cur := StatsSnapshot{At: t0.Add(2 * time.Second), Events: 5000, Batches: 20, Users: 70, Lists: 900, DLQ: 3}
	line := ProgressLine(prev, cur)
	for _, want := range []string{"events/s    2000", "events 5000", "batches 20", "users 70", "lists published 900", "dlq 3"} {
		if !strings.Contains(line, want) {
			t.Fatalf("%q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "decisions") {
		t.Fatalf("decisions shown without an adaptive model: %q", line)
	}
	cur.Decisions = 4
	if line := ProgressLine(prev, cur); !strings.Contains(line, "decisions 4") {
		t.Fatalf("%q lacks the decisions", line)
	}
	if strings.Contains(line, "duplicates") {
		t.Fatalf("duplicates shown without any: %q", line)
	}
	cur.Duplicates = 6
	if line := ProgressLine(prev, cur); !strings.Contains(line, "duplicates 6") {
		t.Fatalf("%q lacks the duplicates", line)
	}
	if s := Summary(t0, cur); !strings.Contains(s, "duplicates 6") {
		t.Fatalf("%q lacks the duplicates", s)
	}
}
