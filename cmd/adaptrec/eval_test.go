package main

import (
	"context"
	"encoding/csv"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model/eval"
	"github.com/adaptrec/adaptrec/pipeline/kafkatest"
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

// eval --sim runs the simulated population against each model over
// --seeds seeds and writes the closed-loop figures: runs.csv has one run
// per model and seed, the seeds differ, and results.csv's mean, min and max
// are those of the runs; bad flags and keys are refused by name.
func TestEvalSimCLI(t *testing.T) {
	out := t.TempDir()
	env := append(os.Environ(), "ADAPTREC_SIM_USERS=300", "ADAPTREC_SIM_ITEMS=200", "ADAPTREC_SIM_CONCURRENCY=16", "ADAPTREC_SIM_SESSIONS=200")
	p := start(t, env, "eval", "--sim", "--models", "random,pop,itemknn,oracle", "--seeds", "2", "--out", out)
	if err := p.wait(t, 120*time.Second); err != nil {
		t.Fatalf("eval --sim: %v\n%s", err, p.output())
	}
	if !strings.Contains(p.output(), "| itemknn | 2 | ") || !strings.Contains(p.output(), "run 7 of 8: itemknn, seed 2 of 2") {
		t.Fatalf("no itemknn row over 2 seeds, or no progress:\n%s", p.output())
	}
	runs := readCSV(t, filepath.Join(out, "runs.csv"))
	if strings.Join(runs[0], ",") != "model,seed,cumulative_reward,hr,mean_session_length,regret_per_list,events,sessions,lists,shift_event,recovery_events" || len(runs) != 9 {
		t.Fatalf("runs.csv: %v", runs)
	}
	results := readCSV(t, filepath.Join(out, "results.csv"))
	if !strings.HasPrefix(strings.Join(results[0], ","), "model,seeds,cumulative_reward_mean,cumulative_reward_sd,cumulative_reward_min,cumulative_reward_max,hr_mean") || len(results) != 5 {
		t.Fatalf("results.csv: %v", results)
	}
	num := func(s string) float64 { x, _ := strconv.ParseFloat(s, 64); return x }
	for m, row := range results[1:] {
		a, b := num(runs[1+2*m][2]), num(runs[2+2*m][2])
		if runs[1+2*m][0] != row[0] || runs[1+2*m][1] == runs[2+2*m][1] || a == b || a <= 0 || b <= 0 {
			t.Fatalf("%s: seeds %s and %s, rewards %v and %v: want two seeds with different runs", row[0], runs[1+2*m][1], runs[2+2*m][1], a, b)
		}
		if row[1] != "2" || math.Abs(num(row[2])-(a+b)/2) > 1e-3 || num(row[4]) != min(a, b) || num(row[5]) != max(a, b) || num(row[3]) <= 0 {
			t.Fatalf("%s: results %v, runs %v and %v", row[0], row, a, b)
		}
		// The oracle (last) knows the users' preferences: it earns the most.
		if oracle := num(results[len(results)-1][2]); row[0] != "oracle" && num(row[2]) >= oracle {
			t.Errorf("%s earned %s, the oracle %v", row[0], row[2], oracle)
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
		{nil, []string{"eval", "--sim", "--seeds", "0"}, "--seeds: must be positive, got 0"},
	} {
		p := start(t, append(os.Environ(), bad.env...), bad.args...)
		if err := p.wait(t, 30*time.Second); err == nil || !strings.Contains(p.output(), bad.want) {
			t.Errorf("%v %v: %v, output lacks %q:\n%s", bad.env, bad.args, err, bad.want, p.output())
		}
	}
}

// readCSV reads the rows of a CSV file.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// eval --seeds on a log runs every model once per seed: the table is the
// first seed's (the same as a run without --seeds), a second table gives
// each model's spread over the seeds, and seeds.csv has one row per model
// and seed, with the seeds moved by k. A model without seeds (itemknn)
// scores the same every time; the DQN's initial weights move with its seed.
func TestEvalSeedsOnALog(t *testing.T) {
	lines, _ := kafkatest.Events(3000, 0, 100, 5)
	data := eventsFile(t, lines)
	args := []string{"eval", "--data", data, "--format", "events-jsonl", "--models", "itemknn,dqn", "--batch", "64"}
	one := start(t, os.Environ(), args...)
	if err := one.wait(t, 120*time.Second); err != nil {
		t.Fatalf("eval: %v\n%s", err, one.output())
	}
	out := t.TempDir()
	p := start(t, os.Environ(), append(args, "--seeds", "3", "--out", out)...)
	if err := p.wait(t, 240*time.Second); err != nil {
		t.Fatalf("eval --seeds 3: %v\n%s", err, p.output())
	}
	dqnRow := func(s string) string { // model, HR, NDCG, scored, parameters (mean): not the timings
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "| dqn | ") {
				return strings.Join(strings.Split(l, "|")[:6], "|")
			}
		}
		return ""
	}
	if r := dqnRow(one.output()); r == "" || !strings.Contains(p.output(), r) {
		t.Fatalf("the first seed's table differs from a run without --seeds: %q\n%s", r, p.output())
	}
	if !strings.Contains(p.output(), "| model | seeds | HR@10 | HR@10 sd | NDCG@10 | parameters (mean) | MFLOP/list |") || !strings.Contains(p.output(), "| itemknn | 3 | ") {
		t.Fatalf("no table over the seeds:\n%s", p.output())
	}
	f, err := os.Open(filepath.Join(out, "seeds.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 7 || strings.Join(rows[0], ",") != "model,seed,dqn_seed,adaptive_seed,hr,ndcg,params_mean,net_params_mean,flops_per_list" {
		t.Fatalf("seeds.csv: %v %v", rows, err)
	}
	ndcg := map[string][]string{}
	for _, r := range rows[1:] {
		ndcg[r[0]] = append(ndcg[r[0]], r[5])
		if want := strconv.Itoa(len(ndcg[r[0]])); r[1] != want || r[2] != want {
			t.Fatalf("seeds.csv row %v: want seed and recommender.dqn.seed %s", r, want)
		}
	}
	if k := ndcg["itemknn"]; k[0] != k[1] || k[1] != k[2] {
		t.Fatalf("itemknn, which has no seed, scored differently: %v", k)
	}
	if d := ndcg["dqn"]; d[0] == d[1] && d[1] == d[2] {
		t.Fatalf("dqn scored the same with three seeds: %v", d)
	}
	bad := start(t, os.Environ(), append(args, "--seeds", "0")...)
	if err := bad.wait(t, 30*time.Second); err == nil || !strings.Contains(bad.output(), "--seeds: must be positive, got 0") {
		t.Fatalf("--seeds 0: %v\n%s", err, bad.output())
	}
}

// eval --anonymous-sessions replays every session as a user of its own: u1
// comes back after three hours to item a, which it consumed in its first
// session, so that event is scored only when the sessions are anonymous.
func TestEvalAnonymousSessions(t *testing.T) {
	data := eventsFile(t, byteLines(
		`{"user_id":"u1","item_id":"a","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		`{"user_id":"u2","item_id":"a","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		`{"user_id":"u2","item_id":"b","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		`{"user_id":"u1","item_id":"b","type":"click","ts":"2026-11-28T10:01:00Z"}`,
		`{"user_id":"u1","item_id":"a","type":"click","ts":"2026-11-28T13:01:00Z"}`,
	))
	scored := func(extra ...string) string {
		t.Helper()
		p := start(t, os.Environ(), append([]string{"eval", "--data", data, "--format", "events-jsonl", "--models", "pop", "--batch", "2"}, extra...)...)
		if err := p.wait(t, 30*time.Second); err != nil {
			t.Fatalf("eval %v: %v\n%s", extra, err, p.output())
		}
		for _, line := range strings.Split(p.output(), "\n") {
			if f := strings.Split(line, "|"); len(f) > 4 && strings.TrimSpace(f[1]) == "popularity" {
				return strings.TrimSpace(f[4])
			}
		}
		t.Fatalf("no popularity row:\n%s", p.output())
		return ""
	}
	if got := scored(); got != "2" {
		t.Errorf("known users: %s events scored, want 2", got)
	}
	if got := scored("--anonymous-sessions", "30m"); got != "3" {
		t.Errorf("anonymous sessions: %s events scored, want 3", got)
	}
	bad := start(t, os.Environ(), "eval", "--data", data, "--format", "events-jsonl", "--anonymous-sessions", "-1m")
	if err := bad.wait(t, 30*time.Second); err == nil || !strings.Contains(bad.output(), "--anonymous-sessions: must not be negative, got -1m0s") {
		t.Fatalf("a negative gap: %v\n%s", err, bad.output())
	}
}

// eval's views of a log: --top-items keeps the most frequent items' events
// (item a's three here, of which only u2's is scorable), --session-events
// keeps each user's (with --anonymous-sessions, each visitor's) first
// events, --shuffle-ties reorders the events of one timestamp by its seed,
// and a negative --top-items or --session-events is refused by name.
func TestEvalLogViews(t *testing.T) {
	data := eventsFile(t, byteLines(
		`{"user_id":"u1","item_id":"a","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		`{"user_id":"u2","item_id":"a","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		`{"user_id":"u2","item_id":"b","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		`{"user_id":"u3","item_id":"c","type":"click","ts":"2026-11-28T10:00:00Z"}`,
		`{"user_id":"u1","item_id":"b","type":"click","ts":"2026-11-28T10:01:00Z"}`,
		`{"user_id":"u1","item_id":"a","type":"click","ts":"2026-11-28T13:01:00Z"}`,
	))
	a := &app{stdout: io.Discard, stderr: io.Discard}
	order := func(ef evalFlags) string {
		t.Helper()
		ef.data, ef.format, ef.to = data, "events-jsonl", 1
		events, err := a.evalEvents(ef)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range events {
			s = append(s, e.UserID+e.ItemID)
		}
		return strings.Join(s, " ")
	}
	if got := order(evalFlags{topItems: 1}); got != "u1a u2a u1a" {
		t.Errorf("--top-items 1: %s", got)
	}
	if got := order(evalFlags{sessionEvents: 1}); got != "u1a u2a u3c" {
		t.Errorf("--session-events 1: %s", got)
	}
	if got := order(evalFlags{sessionEvents: 1, anonymous: time.Hour}); got != "u1#1a u2#1a u3#1c u1#2a" {
		t.Errorf("--anonymous-sessions 1h --session-events 1: %s", got)
	}
	err := a.evalLog(context.Background(), evalFlags{data: data, format: "events-jsonl", batch: 1, k: 1, seeds: 1, sessionEvents: -1})
	if err == nil || !strings.Contains(err.Error(), "--session-events: must not be negative, got -1") {
		t.Errorf("a negative --session-events: %v", err)
	}
	plain := order(evalFlags{})
	shuffled := ""
	for seed := uint64(1); seed <= 5 && (shuffled == "" || shuffled == plain); seed++ {
		shuffled = order(evalFlags{shuffleTies: seed})
	}
	if shuffled == plain || !strings.HasSuffix(shuffled, "u1b u1a") {
		t.Errorf("--shuffle-ties: %s (file order %s)", shuffled, plain)
	}
	p := start(t, os.Environ(), "eval", "--data", data, "--format", "events-jsonl", "--models", "pop", "--top-items", "-2")
	if err := p.wait(t, 30*time.Second); err == nil || !strings.Contains(p.output(), "--top-items: must not be negative, got -2") {
		t.Fatalf("a negative --top-items: %v\n%s", err, p.output())
	}
}

// TestSeedsTableCarriesFLOPs: the table over the seeds and seeds.csv give
// a model's MFLOP per list (mean [min, max]), and nothing for a model
// without nested widths.
func TestSeedsTableCarriesFLOPs(t *testing.T) {
	runs := [][]eval.Result{
		{{Model: "dqn-slim", HR: 0.2, FLOPsPerList: 200_000}, {Model: "dqn-slim", HR: 0.3, FLOPsPerList: 300_000}, {Model: "dqn-slim", HR: 0.1, FLOPsPerList: 250_000}},
		{{Model: "itemknn", HR: 0.1}, {Model: "itemknn", HR: 0.1}, {Model: "itemknn", HR: 0.1}},
	}
	var b strings.Builder
	if err := seedsMarkdown(&b, 10, runs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| parameters (mean) | MFLOP/list |",
		"| dqn-slim | 3 | 0.2000 [0.1000, 0.3000] | 0.1000 | 0.0000 [0.0000, 0.0000] | 0 [0, 0] | 0.250 [0.200, 0.300] |\n",
		"| itemknn | 3 | 0.1000 [0.1000, 0.1000] | 0.0000 | 0.0000 [0.0000, 0.0000] | 0 [0, 0] |  |\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("the table over the seeds lacks %q:\n%s", want, b.String())
		}
	}
	rows := seedRows(runs, configs.Default())
	if len(rows) != 6 || len(rows[0]) != len(seedsHeader) || rows[2][len(rows[2])-1] != "250000" || rows[3][len(rows[3])-1] != "0" {
		t.Fatalf("seeds.csv rows: %v", rows)
	}
}

// byteLines is lines as eventsFile takes them.
func byteLines(lines ...string) [][]byte {
	out := make([][]byte, len(lines))
	for i, l := range lines {
		out[i] = []byte(l)
	}
	return out
}
