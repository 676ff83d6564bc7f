package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// The best baseline is the baseline with the highest HR, whatever the
// order; the table gives every model's ratio to it and names it, and
// results.csv carries both.
func TestBestBaselineRatio(t *testing.T) {
	rs := []Result{{Model: "popularity", HR: 0.05}, {Model: "dqn", HR: 0.15}, {Model: "sr", HR: 0.12}, {Model: "itemknn", HR: 0.10}}
	if got := BestBaseline(rs); got != 2 {
		t.Fatalf("best baseline %d, want 2 (sr; dqn is no baseline)", got)
	}
	var b strings.Builder
	if err := Markdown(&b, 10, rs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| dqn | 0.1500 |", "| 1.250 |\n", "| popularity | 0.0500 |", "| 0.417 |\n", "best baseline (of popularity, itemknn, sr, sknn in this run): sr, HR@10 0.1200"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, b.String())
		}
	}
	path := filepath.Join(t.TempDir(), "results.csv")
	if err := WriteCSV(path, 10, rs); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if rows := strings.Split(string(raw), "\n"); !strings.HasSuffix(rows[0], ",best_baseline,hr_vs_best_baseline") || !strings.HasSuffix(rows[2], ",sr,1.250") {
		t.Fatalf("results.csv:\n%s", raw)
	}
	if got := BestBaseline(rs[1:2]); got != -1 {
		t.Fatalf("best baseline of a run without one: %d, want -1", got)
	}
}

// Span cuts the log by its events in time order, and refuses a range
// that is not one.
func TestSpan(t *testing.T) {
	events := make([]feedback.Event, 10)
	for i := range events {
		events[i].TS = time.Unix(int64(i), 0)
	}
	first, _ := Span(events, 0, 0.5)
	second, _ := Span(events, 0.5, 1)
	if len(first) != 5 || len(second) != 5 || first[4].TS.Unix() != 4 || second[0].TS.Unix() != 5 {
		t.Fatalf("halves %v and %v", first, second)
	}
	for _, r := range [][2]float64{{0.5, 0.5}, {-0.1, 1}, {0, 1.1}, {0.8, 0.2}} {
		if _, err := Span(events, r[0], r[1]); err == nil {
			t.Errorf("Span(%v) accepted", r)
		}
	}
}
