package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/pipeline/sim"
)

// evalSim runs the simulated population against every model over seeds
// seeds (seed k: sim.Seeded(cfg, k), the same for every model) and reports
// the closed-loop figures' mean and spread.
func (a *app) evalSim(ctx context.Context, cfg configs.Config, models []string, seeds int, out string) error {
	if err := sim.FromConfig(cfg.Sim).Check(); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "eval --sim: %d models × %d seeds = %d runs\n", len(models), seeds, len(models)*seeds)
	runs := make([][]sim.Result, len(models))
	var simSeeds []uint64
	for k := range seeds {
		kcfg := sim.Seeded(cfg, k)
		simSeeds = append(simSeeds, kcfg.Sim.Seed)
		for i, name := range models {
			t0 := time.Now()
			r, err := a.simRun(ctx, kcfg, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "eval --sim: run %d of %d: %s, seed %d of %d (sim.seed %d): cumulative reward %.0f over %d sessions in %v\n",
				k*len(models)+i+1, len(models)*seeds, name, k+1, seeds, kcfg.Sim.Seed, r.CumulativeReward, r.Sessions, time.Since(t0).Round(time.Millisecond))
			runs[i] = append(runs[i], r)
		}
	}
	sums := make([]sim.Summary, len(models))
	for i := range models {
		sums[i] = sim.Summarize(runs[i])
	}
	if err := sim.Markdown(a.stdout, sums); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(out, "results.csv"), sim.CSVHeader, sim.CSVRows(sums)); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(out, "runs.csv"), sim.RunsHeader, sim.RunRows(sums, simSeeds)); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "eval --sim: wrote results.csv and runs.csv in %s\n", out)
	return nil
}

// simRun runs model name (or the random control) against the population
// of cfg.Sim, built from cfg's seeds.
func (a *app) simRun(ctx context.Context, cfg configs.Config, name string) (sim.Result, error) {
	scfg := sim.FromConfig(cfg.Sim)
	s, err := sim.New(scfg)
	if err != nil {
		return sim.Result{}, err
	}
	s.Oracle = true
	var p sim.Policy
	switch name {
	case "random":
		p = sim.NewRandom(cfg.Recommender.TopN, scfg.Seed)
	case "oracle":
		p = sim.Oracle{S: s, N: cfg.Recommender.TopN}
	default:
		m, err := wire.Build(name, cfg)
		if err != nil {
			return sim.Result{}, fmt.Errorf("--models: %w", err)
		}
		p = sim.NewModelPolicy(m, cfg.Session)
	}
	bar := newProgress(a.stderr, p.Name())
	r, err := sim.Run(ctx, s, p, func(sim.Tick) { bar.update(s.Started(), scfg.Sessions) })
	bar.done()
	r.Policy = name
	return r, err
}

// writeCSV writes header and rows to path.
func writeCSV(path string, header []string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write(header)
	_ = w.WriteAll(rows) // WriteAll flushes
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
