package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/eval"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline/sim"
)

// simModels are the models eval --sim runs by default: the control, the
// baselines, the default dqn beside its γ = 0 twin, and the adaptive model.
const simModels = "random,pop,itemknn,dqn,dqn-myopic,adaptive-rl"

// evalFlags are the flags of adaptrec eval.
type evalFlags struct {
	data, format, models, out string
	batch, k, seeds           int
	from, to                  float64
	simulate                  bool
	anonymous                 time.Duration
	shuffleTies               uint64
	topItems, sessionEvents   int
}

func (a *app) evalCmd() *cobra.Command {
	var ef evalFlags
	cmd := &cobra.Command{
		Use:   "eval (--data PATH --format FORMAT | --sim) [--models pop,itemknn,sr,sknn] [--seeds N] [--batch 256] [--k 10] [--from 0 --to 1] [--anonymous-sessions GAP] [--session-events N] [--shuffle-ties SEED] [--top-items N] [--out DIR]",
		Short: "Evaluate models on a feedback log (prequential) or in the simulated closed loop (--sim), all in one run",
		Long: `eval replays a feedback log in timestamp order through the worker's own
batching and each model, test-then-train: every event whose item the model
knows and the user has not consumed is first ranked against all known items
minus the user's consumed ones, then learned. It prints a Markdown table of
HR@K, NDCG@K, parameters, events/s (ranking for the metric excluded) and
training time per batch, and each model's HR@K over that of the best baseline
in the run (the best of ` + strings.Join(eval.Baselines, ", ") + ` that were
run, named below the table); --from and --to replay only that part of the log,
as fractions of its events in time order (--to 0.5: the first half, from a
fresh model; --from 0.5: the second). --anonymous-sessions GAP makes every
session (a user's events split at idle gaps over GAP or where the session id
changes) a user of its own before that: a rating log replayed as anonymous
visitors, who never return, as in e-commerce click logs; --session-events N
then keeps each visitor's first N events (short visits). --shuffle-ties SEED
puts every run of events of one timestamp in an order drawn from SEED instead
of the file's, and --top-items N keeps only the events of the N items with the
most: views of a log that check what a model owes to either. With --out it writes
DIR/results.csv, DIR/curve.png (rolling HR@K over the stream), DIR/pareto.png
(HR@K against mean parameters), DIR/pareto-flops.png (HR@K against MFLOP per
list, for models with nested widths, such as dqn-slim; only when one ran) and
DIR/architecture.png (the adaptive models' network size over the stream, and
the parameters of each tier of their item embeddings). --seeds N (default 1 on
a log) runs every model N times, seed k adding k to recommender.dqn.seed and
recommender.adaptive.seed: the table is the first seed's, a second table gives
HR@K, NDCG@K, mean parameters and (nested widths) MFLOP per list as mean [min,
max] over the seeds, and --out adds DIR/seeds.csv (per model and seed).

With --sim it runs no log: the simulated population (sim.* keys) reacts to
each model's lists in a closed loop, once per seed (--seeds N; seed k adds
k to sim.seed, recommender.dqn.seed and recommender.adaptive.seed), every
model with the same seeds. eval reports, as the mean and [min, max] over
the seeds, cumulative reward, HR (the share of lists the user picked
from), mean session length, regret per list against an oracle that knows
the users' preferences, and how many events after the scheduled interest
shift (sim.shift_at) the reward per list took to recover; then the
cumulative reward of dqn over that of dqn-myopic, its γ = 0 twin, seed by
seed. --out writes DIR/results.csv (per model: mean, sd, min and max of
each figure) and DIR/runs.csv (per model and seed). "random" is the
control policy; "oracle" shows each user the list of highest expected
reward for the user's true preferences (the myopic upper bound).

Formats: ` + strings.Join(eval.Formats, ", ") + `.
Models: ` + strings.Join(model.Names, ", ") + `; configured by the recommender.* keys.`,
		Example: `  adaptrec eval --data ../shared/data/ml-latest-small/ratings.csv --format movielens-csv --out out/ml
  adaptrec eval --data ../shared/data/ml-latest-small/ratings.csv --format movielens-csv --models pop,itemknn,sr,sknn,dqn --from 0.5
  adaptrec eval --data ../shared/data/ml-latest-small/ratings.csv --format movielens-csv --models itemknn,dqn,adaptive-rl --seeds 3
  adaptrec eval --sim --seeds 3 --out out/sim`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("seeds") {
				ef.seeds = 1 // on a log, the defaults' run alone
				if ef.simulate {
					ef.seeds = 3
				}
			}
			if ef.simulate {
				if !cmd.Flags().Changed("models") {
					ef.models = simModels
				}
				return a.evalSimulated(cmd.Context(), ef)
			}
			return a.evalLog(cmd.Context(), ef)
		},
	}
	ef.register(cmd.Flags())
	return cmd
}

// register defines eval's flags on f.
func (ef *evalFlags) register(f *pflag.FlagSet) {
	f.StringVar(&ef.data, "data", "", "feedback log to replay")
	f.StringVar(&ef.format, "format", "", "log format: "+strings.Join(eval.Formats, ", "))
	f.StringVar(&ef.models, "models", "pop,itemknn,sr,sknn", "comma-separated models to evaluate in this run")
	f.IntVar(&ef.batch, "batch", 256, "events per batch, as the worker's batch.size")
	f.IntVar(&ef.k, "k", 10, "cut-off of HR@K and NDCG@K")
	f.Float64Var(&ef.from, "from", 0, "replay the log from this fraction of its events, in time order")
	f.Float64Var(&ef.to, "to", 1, "replay the log up to this fraction of its events, in time order")
	f.DurationVar(&ef.anonymous, "anonymous-sessions", 0, "make each user's sessions (split at this idle gap or a session id change) users of their own, as in a log of anonymous visitors (0: off)")
	f.StringVar(&ef.out, "out", "", "directory for results.csv and curve.png")
	f.BoolVar(&ef.simulate, "sim", false, "run the simulated population (sim.* keys) against each model instead of a log (default models: "+simModels+"; also oracle)")
	f.IntVar(&ef.seeds, "seeds", 0, "run every model with this many seeds (seed k: recommender.dqn.seed, recommender.adaptive.seed and with --sim sim.seed, plus k) and report mean and spread (default 3 with --sim, 1 on a log)")
	f.Uint64Var(&ef.shuffleTies, "shuffle-ties", 0, "put the events of each timestamp in an order drawn from this seed instead of the file's (0: off)")
	f.IntVar(&ef.topItems, "top-items", 0, "keep only the events of this many most frequent items (0: all)")
	f.IntVar(&ef.sessionEvents, "session-events", 0, "keep only each user's first N events; with --anonymous-sessions, each visitor's (0: all)")
}

// modelNames splits --models and checks that cfg builds each model
// (the simulator's policies "random" and "oracle" only where simulated is true).
func modelNames(models string, cfg configs.Config, simulated bool) ([]string, error) {
	names := strings.Split(models, ",")
	for i, n := range names {
		names[i] = strings.TrimSpace(n)
		if simulated && (names[i] == "random" || names[i] == "oracle") {
			continue
		}
		if _, err := wire.Build(names[i], cfg); err != nil {
			return nil, fmt.Errorf("--models: %w", err)
		}
	}
	return names, nil
}

// evalSimulated runs eval --sim.
func (a *app) evalSimulated(ctx context.Context, ef evalFlags) error {
	if ef.data != "" {
		return fmt.Errorf("--sim runs the simulated population: drop --data")
	}
	if ef.seeds <= 0 {
		return fmt.Errorf("--seeds: must be positive, got %d", ef.seeds)
	}
	cfg, err := a.load()
	if err != nil {
		return err
	}
	names, err := modelNames(ef.models, cfg, true)
	if err != nil {
		return err
	}
	return a.evalSim(ctx, cfg, names, ef.seeds, ef.out)
}

// evalEvents loads --data, its ties shuffled (--shuffle-ties), cut to the
// most frequent items (--top-items), anonymous (--anonymous-sessions), cut
// to each user's first --session-events and to --from and --to.
func (a *app) evalEvents(ef evalFlags) ([]feedback.Event, error) {
	t0 := time.Now()
	events, err := eval.Load(ef.data, ef.format)
	if err != nil {
		return nil, err
	}
	all := len(events)
	if ef.shuffleTies != 0 {
		events = eval.ShuffleTies(events, ef.shuffleTies)
	}
	if ef.topItems > 0 {
		if events, err = eval.TopItems(events, ef.topItems); err != nil {
			return nil, err
		}
	}
	if ef.anonymous > 0 {
		if events, err = eval.Anonymize(events, ef.anonymous); err != nil {
			return nil, err
		}
	}
	if ef.sessionEvents > 0 {
		if events, err = eval.FirstEvents(events, ef.sessionEvents); err != nil {
			return nil, err
		}
	}
	if events, err = eval.Span(events, ef.from, ef.to); err != nil {
		return nil, fmt.Errorf("--from, --to: %w", err)
	}
	fmt.Fprintf(a.stderr, "eval: %d of %d events from %s in %v\n", len(events), all, ef.data, time.Since(t0).Round(time.Millisecond))
	return events, nil
}

// evalLog runs eval on the log --data, prints the table and writes --out.
func (a *app) evalLog(ctx context.Context, ef evalFlags) error {
	if ef.data == "" || ef.format == "" {
		return fmt.Errorf("--data and --format are required (or --sim)")
	}
	if ef.batch <= 0 || ef.k <= 0 {
		return fmt.Errorf("--batch and --k must be positive")
	}
	if ef.anonymous < 0 {
		return fmt.Errorf("--anonymous-sessions: must not be negative, got %v", ef.anonymous)
	}
	if ef.topItems < 0 {
		return fmt.Errorf("--top-items: must not be negative, got %d", ef.topItems)
	}
	if ef.sessionEvents < 0 {
		return fmt.Errorf("--session-events: must not be negative, got %d", ef.sessionEvents)
	}
	if ef.seeds <= 0 {
		return fmt.Errorf("--seeds: must be positive, got %d", ef.seeds)
	}
	cfg, err := a.load()
	if err != nil {
		return err
	}
	names, err := modelNames(ef.models, cfg, false)
	if err != nil {
		return err
	}
	events, err := a.evalEvents(ef)
	if err != nil {
		return err
	}
	runs := make([][]eval.Result, len(names)) // per model, one per seed
	for k := range ef.seeds {
		kcfg := sim.Seeded(cfg, k)
		for i, n := range names {
			m, _ := wire.Build(n, kcfg)
			bar := newProgress(a.stderr, m.Name())
			r, err := eval.Run(ctx, events, m, eval.Options{Batch: ef.batch, K: ef.k, Session: wire.Session(kcfg.Session), Progress: bar.update})
			bar.done()
			if err != nil {
				return err
			}
			seed := ""
			if ef.seeds > 1 {
				seed = fmt.Sprintf(", seed %d of %d", k+1, ef.seeds)
			}
			fmt.Fprintf(a.stderr, "eval: %s%s HR@%d %.4f in %v\n", r.Model, seed, ef.k, r.HR, r.Wall.Round(time.Millisecond))
			runs[i] = append(runs[i], r)
		}
	}
	results := make([]eval.Result, len(names)) // the first seed's: the defaults
	for i := range runs {
		results[i] = runs[i][0]
	}
	if err := eval.Markdown(a.stdout, ef.k, results); err != nil {
		return err
	}
	if ef.seeds > 1 {
		if err := seedsMarkdown(a.stdout, ef.k, runs); err != nil {
			return err
		}
	}
	if ef.out == "" {
		return nil
	}
	if err := writeEval(ef, results); err != nil {
		return err
	}
	if ef.seeds > 1 {
		if err := writeCSV(filepath.Join(ef.out, "seeds.csv"), seedsHeader, seedRows(runs, cfg)); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "eval: wrote seeds.csv in %s\n", ef.out)
	}
	fmt.Fprintf(a.stderr, "eval: wrote results.csv, decisions.jsonl, curve.png, pareto.png (and pareto-flops.png with nested widths) and architecture.png in %s\n", ef.out)
	return nil
}

// writeEval writes the files of eval --out.
func writeEval(ef evalFlags, results []eval.Result) error {
	out, k := ef.out, ef.k
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := eval.WriteCSV(filepath.Join(out, "results.csv"), k, results); err != nil {
		return err
	}
	title := fmt.Sprintf("%s, batch %d", filepath.Base(ef.data), ef.batch)
	if err := eval.PlotCurves(filepath.Join(out, "curve.png"), title, k, 2000, results); err != nil {
		return err
	}
	if err := eval.PlotPareto(filepath.Join(out, "pareto.png"), title, k, results); err != nil {
		return err
	}
	if _, err := eval.PlotFLOPs(filepath.Join(out, "pareto-flops.png"), title, k, results); err != nil {
		return err
	}
	if err := eval.PlotArchitecture(filepath.Join(out, "architecture.png"), title, results); err != nil {
		return err
	}
	return eval.WriteDecisions(filepath.Join(out, "decisions.jsonl"), results)
}

// progress draws a bar on a terminal and nothing elsewhere.
type progress struct {
	w     io.Writer
	name  string
	tty   bool
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, name string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, name: name, tty: tty, start: time.Now()}
}

func (p *progress) update(done, total int) {
	if !p.tty || (time.Since(p.last) < 100*time.Millisecond && done < total) {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := width * done / max(total, 1)
	fmt.Fprintf(p.w, "\r%-12s [%s%s] %3d%% %d/%d events, %s", p.name, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		100*done/max(total, 1), done, total, time.Since(p.start).Round(time.Second))
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

// seedsMarkdown prints, under eval's table of the first seed, each model's
// HR@K, NDCG@K, mean parameters and, for models with nested widths, MFLOP
// per list as mean [min, max] over the seeds.
func seedsMarkdown(w io.Writer, k int, runs [][]eval.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n| model | seeds | HR@%d | HR@%d sd | NDCG@%d | parameters (mean) | MFLOP/list |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n", k, k, k)
	for _, rs := range runs {
		hr, ndcg, params := seedSpread(rs, func(r eval.Result) float64 { return r.HR }),
			seedSpread(rs, func(r eval.Result) float64 { return r.NDCG }),
			seedSpread(rs, func(r eval.Result) float64 { return r.ParamsMean })
		flops := ""
		if f := seedSpread(rs, func(r eval.Result) float64 { return r.FLOPsPerList / 1e6 }); f.Max > 0 {
			flops = sim.Cell(f, 3)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.4f | %s | %s | %s |\n", rs[0].Model, len(rs), sim.Cell(hr, 4), hr.SD, sim.Cell(ndcg, 4), sim.Cell(params, 0), flops)
	}
	b.WriteString("\nmean [min, max] over the seeds (seed k: recommender.dqn.seed and recommender.adaptive.seed plus k); the table above is the first seed's.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// seedSpread is f's spread over the runs.
func seedSpread(rs []eval.Result, f func(eval.Result) float64) sim.Spread {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return sim.SpreadOf(xs)
}

// seedsHeader and seedRows are seeds.csv: one row per model and seed.
var seedsHeader = []string{"model", "seed", "dqn_seed", "adaptive_seed", "hr", "ndcg", "params_mean", "net_params_mean", "flops_per_list"}

func seedRows(runs [][]eval.Result, cfg configs.Config) [][]string {
	var rows [][]string
	for _, rs := range runs {
		for k, r := range rs {
			kcfg := sim.Seeded(cfg, k)
			rows = append(rows, []string{r.Model, strconv.Itoa(k + 1),
				strconv.FormatUint(kcfg.Recommender.DQN.Seed, 10), strconv.FormatUint(kcfg.Recommender.Adaptive.Seed, 10),
				strconv.FormatFloat(r.HR, 'g', -1, 64), strconv.FormatFloat(r.NDCG, 'g', -1, 64),
				strconv.FormatFloat(r.ParamsMean, 'g', -1, 64), strconv.FormatFloat(r.NetParamsMean, 'g', -1, 64),
				strconv.FormatFloat(r.FLOPsPerList, 'g', -1, 64)})
		}
	}
	return rows
}
