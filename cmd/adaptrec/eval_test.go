package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

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
