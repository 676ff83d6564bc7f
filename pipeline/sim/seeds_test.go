package sim

import (
	"math"
	"strings"
	"testing"

	"github.com/adaptrec/adaptrec/configs"
)

// Seed k moves the population's and the models' seeds by k, and seed 0 is
// the configuration itself.
func TestSeededMovesEverySeed(t *testing.T) {
	cfg := configs.Default()
	if got := Seeded(cfg, 0); got.Sim.Seed != cfg.Sim.Seed || got.Recommender.DQN.Seed != cfg.Recommender.DQN.Seed {
		t.Fatalf("seed 0 changed the seeds: %+v", got.Sim)
	}
	got := Seeded(cfg, 2)
	if got.Sim.Seed != cfg.Sim.Seed+2 || got.Recommender.DQN.Seed != cfg.Recommender.DQN.Seed+2 || got.Recommender.Adaptive.Seed != cfg.Recommender.Adaptive.Seed+2 {
		t.Fatalf("seed 2: sim %d, dqn %d, adaptive %d", got.Sim.Seed, got.Recommender.DQN.Seed, got.Recommender.Adaptive.Seed)
	}
}

// The summary's mean, sd, min and max are those of the seeds' runs;
// recovery counts only the seeds that recovered; the γ = 0 ratio pairs
// the runs seed by seed.
func TestSummarizeOverSeeds(t *testing.T) {
	run := func(p string, reward, ctr float64, recovery int) Result {
		return Result{Policy: p, CumulativeReward: reward, CTR: ctr, Shown: 100, Regret: reward / 10, ShiftEvent: 50, Recovery: recovery}
	}
	dqn := Summarize([]Result{run("dqn", 10, 0.1, 300), run("dqn", 20, 0.2, -1), run("dqn", 60, 0.3, 500)})
	want := Spread{Mean: 30, SD: math.Sqrt(700), Min: 10, Max: 60, N: 3}
	if d := dqn.Reward; math.Abs(d.SD-want.SD) > 1e-9 || d.Mean != want.Mean || d.Min != want.Min || d.Max != want.Max || d.N != want.N {
		t.Fatalf("reward %+v, want %+v", d, want)
	}
	if h := dqn.HR; math.Abs(h.Mean-0.2) > 1e-12 || h.Min != 0.1 || h.Max != 0.3 {
		t.Fatalf("HR %+v", h)
	}
	if r := dqn.Recovery; r.N != 2 || r.Mean != 400 || r.Min != 300 || r.Max != 500 {
		t.Fatalf("recovery %+v, want over the 2 recovered seeds", r)
	}
	if one := Summarize(dqn.Runs[:1]).Reward; one.SD != 0 || one.Min != 10 || one.Max != 10 || one.N != 1 {
		t.Fatalf("one seed: %+v", one)
	}
	myopic := Summarize([]Result{run("dqn-myopic", 5, 0.1, 1), run("dqn-myopic", 20, 0.1, 1), run("dqn-myopic", 30, 0.1, 1)})
	if r := RewardRatio(dqn, myopic); r.N != 3 || r.Min != 1 || r.Max != 2 || math.Abs(r.Mean-5.0/3) > 1e-12 {
		t.Fatalf("ratio %+v, want seed by seed 2, 1, 2", r)
	}
	var b strings.Builder
	if err := Markdown(&b, []Summary{dqn, myopic}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| dqn | 3 | 30 [10, 60] | 0.200 [0.100, 0.300] |", "| 400 [300, 500] (2 of 3 seeds) |",
		"dqn ÷ dqn-myopic (its γ = 0 twin) cumulative reward, seed by seed: 1.667 [1.000, 2.000] (3 seeds)"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, b.String())
		}
	}
	rows := CSVRows([]Summary{dqn, myopic})
	if len(rows) != 2 || len(rows[0]) != len(CSVHeader) || rows[0][1] != "3" || rows[0][2] != "30.000000" || rows[0][4] != "10.000000" || rows[0][5] != "60.000000" {
		t.Fatalf("results.csv rows %v", rows)
	}
	if twin := rows[0][len(CSVHeader)-5]; twin != "dqn-myopic" || rows[1][len(CSVHeader)-5] != "" {
		t.Fatalf("twin columns %q and %q", twin, rows[1][len(CSVHeader)-5])
	}
	if runs := RunRows([]Summary{dqn}, []uint64{7, 8, 9}); len(runs) != 3 || runs[2][1] != "9" || runs[2][2] != "60.000000" {
		t.Fatalf("runs.csv rows %v", runs)
	}
}
