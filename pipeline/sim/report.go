package sim

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// GammaZeroTwins maps a model to its γ = 0 twin (same configuration and
// temperature, no discount): the pair whose reward ratio says what the TD
// objective earns in the closed loop.
var GammaZeroTwins = map[string]string{"dqn": "dqn-myopic"}

// Markdown writes one row per summary: each figure as its mean and, in
// brackets, its smallest and largest value over the seeds; then, for each
// model whose γ = 0 twin ran too, the ratio of their cumulative rewards.
func Markdown(w io.Writer, sums []Summary) error {
	var b strings.Builder
	b.WriteString("| model | seeds | cumulative reward | HR (picks per list) | mean session length | regret per list | recovery after the shift (events) |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range sums {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", s.Policy, len(s.Runs), Cell(s.Reward, 0), Cell(s.HR, 3),
			Cell(s.Length, 2), Cell(s.RegretPerList, 3), recoveryCell(s))
	}
	b.WriteString("\nmean [min, max] over the seeds; recovery over the seeds that recovered.\n")
	for _, s := range sums {
		if t, ok := twinOf(s, sums); ok {
			r := RewardRatio(s, t)
			fmt.Fprintf(&b, "%s ÷ %s (its γ = 0 twin) cumulative reward, seed by seed: %s (%d seeds)\n", s.Policy, t.Policy, Cell(r, 3), r.N)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// twinOf is the summary of s's γ = 0 twin in sums, if it ran.
func twinOf(s Summary, sums []Summary) (Summary, bool) {
	name, ok := GammaZeroTwins[s.Policy]
	if !ok {
		return Summary{}, false
	}
	for _, t := range sums {
		if t.Policy == name {
			return t, true
		}
	}
	return Summary{}, false
}

// Cell is "mean [min, max]" with prec decimals, or "mean" for one seed.
func Cell(s Spread, prec int) string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', prec, 64) }
	if s.N <= 1 {
		return f(s.Mean)
	}
	return fmt.Sprintf("%s [%s, %s]", f(s.Mean), f(s.Min), f(s.Max))
}

func recoveryCell(s Summary) string {
	switch {
	case len(s.Runs) == 0 || s.Runs[0].ShiftEvent == 0:
		return "no shift"
	case s.Recovery.N == 0:
		return "not recovered"
	case s.Recovery.N < len(s.Runs):
		return fmt.Sprintf("%s (%d of %d seeds)", Cell(s.Recovery, 0), s.Recovery.N, len(s.Runs))
	}
	return Cell(s.Recovery, 0)
}

// spreadCols names the four columns of a Spread in CSV.
func spreadCols(name string) []string {
	return []string{name + "_mean", name + "_sd", name + "_min", name + "_max"}
}

func spreadVals(s Spread) []string {
	return []string{ff(s.Mean), ff(s.SD), ff(s.Min), ff(s.Max)}
}

func ff(x float64) string { return strconv.FormatFloat(x, 'f', 6, 64) }

// CSVHeader is the header of eval --sim's results.csv: per model, the
// seeds, then mean, sample standard deviation, min and max over the seeds
// of cumulative reward, HR (picks per list), mean session length, regret
// per list and recovery (over the recovered seeds, recovered_seeds of
// them), and the cumulative reward over that of the model's γ = 0 twin
// (empty without one).
var CSVHeader = slices.Concat([]string{"model", "seeds"}, spreadCols("cumulative_reward"), spreadCols("hr"),
	spreadCols("mean_session_length"), spreadCols("regret_per_list"), []string{"recovered_seeds"},
	spreadCols("recovery_events"), []string{"gamma0_twin"}, spreadCols("reward_vs_gamma0"))

// CSVRows are the rows of results.csv under CSVHeader, one per summary.
func CSVRows(sums []Summary) [][]string {
	var rows [][]string
	for _, s := range sums {
		twin, ratio := []string{"", "", "", "", ""}, Spread{}
		if t, ok := twinOf(s, sums); ok {
			ratio = RewardRatio(s, t)
			twin = append([]string{t.Policy}, spreadVals(ratio)...)
		}
		rows = append(rows, slices.Concat([]string{s.Policy, strconv.Itoa(len(s.Runs))}, spreadVals(s.Reward), spreadVals(s.HR),
			spreadVals(s.Length), spreadVals(s.RegretPerList), []string{strconv.Itoa(s.Recovery.N)}, spreadVals(s.Recovery), twin))
	}
	return rows
}

// RunsHeader is the header of eval --sim's runs.csv: one row per model
// and seed (sim.seed of the run).
var RunsHeader = []string{"model", "seed", "cumulative_reward", "hr", "mean_session_length", "regret_per_list", "events", "sessions", "lists", "shift_event", "recovery_events"}

// RunRows are the rows of runs.csv under RunsHeader.
func RunRows(sums []Summary, seeds []uint64) [][]string {
	var rows [][]string
	for _, s := range sums {
		for k, r := range s.Runs {
			rows = append(rows, []string{r.Policy, strconv.FormatUint(seeds[k], 10), ff(r.CumulativeReward), ff(r.CTR), ff(r.MeanSessionLength),
				ff(r.Regret / float64(max(r.Shown, 1))), strconv.Itoa(r.Events), strconv.Itoa(r.Sessions), strconv.Itoa(r.Shown),
				strconv.Itoa(r.ShiftEvent), strconv.Itoa(r.Recovery)})
		}
	}
	return rows
}
