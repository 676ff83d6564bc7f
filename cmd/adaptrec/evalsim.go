package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/pipeline/sim"
)

// evalSim runs the simulated population against every model, each with
// the same seeds, and reports the closed-loop figures.
func (a *app) evalSim(ctx context.Context, cfg configs.Config, models []string, out string) error {
	scfg := sim.FromConfig(cfg.Sim)
	if err := scfg.Check(); err != nil {
		return err
	}
	var results []sim.Result
	for _, name := range models {
		s, err := sim.New(scfg)
		if err != nil {
			return err
		}
		s.Oracle = true
		var p sim.Policy
		if name == "random" {
			p = sim.NewRandom(cfg.Recommender.TopN, scfg.Seed)
		} else {
			m, err := wire.Build(name, cfg)
			if err != nil {
				return fmt.Errorf("--models: %w", err)
			}
			p = sim.NewModelPolicy(m, cfg.Session)
		}
		bar := newProgress(a.stderr, p.Name())
		t0 := time.Now()
		r, err := sim.Run(ctx, s, p, func(sim.Tick) { bar.update(s.Started(), scfg.Sessions) })
		bar.done()
		if err != nil {
			return err
		}
		r.Policy = name
		fmt.Fprintf(a.stderr, "eval --sim: %s cumulative reward %.0f over %d sessions in %v\n", name, r.CumulativeReward, r.Sessions, time.Since(t0).Round(time.Millisecond))
		results = append(results, r)
	}
	var b strings.Builder
	b.WriteString("| model | cumulative reward | mean session length | CTR | regret | regret per list | events | recovery after the shift (events) |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.3f | %.0f | %.3f | %d | %s |\n", r.Policy, r.CumulativeReward, r.MeanSessionLength,
			r.CTR, r.Regret, r.Regret/float64(max(r.Shown, 1)), r.Events, recovery(r))
	}
	fmt.Fprint(a.stdout, b.String())
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(out, "results.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	ff := func(x float64) string { return strconv.FormatFloat(x, 'f', 6, 64) }
	_ = w.Write([]string{"model", "cumulative_reward", "mean_session_length", "ctr", "regret", "regret_per_list", "events", "sessions", "lists", "shift_event", "recovery_events"})
	for _, r := range results {
		_ = w.Write([]string{r.Policy, ff(r.CumulativeReward), ff(r.MeanSessionLength), ff(r.CTR), ff(r.Regret),
			ff(r.Regret / float64(max(r.Shown, 1))), strconv.Itoa(r.Events), strconv.Itoa(r.Sessions), strconv.Itoa(r.Shown),
			strconv.Itoa(r.ShiftEvent), strconv.Itoa(r.Recovery)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "eval --sim: wrote results.csv in %s\n", out)
	return nil
}

func recovery(r sim.Result) string {
	switch {
	case r.ShiftEvent == 0:
		return "no shift"
	case r.Recovery < 0:
		return "not recovered"
	}
	return strconv.Itoa(r.Recovery)
}
