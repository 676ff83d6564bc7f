package sim

import (
	"math"

	"github.com/adaptrec/adaptrec/configs"
)

// Seeded is cfg for seed k of a run over several seeds (k = 0 is cfg
// itself): the population's seed (sim.seed) and the models' seeds
// (recommender.dqn.seed, recommender.adaptive.seed) each move by k, so
// every seed draws other users, other sessions and other initial weights,
// and every model of a seed meets the same population.
func Seeded(cfg configs.Config, k int) configs.Config {
	cfg.Sim.Seed += uint64(k)
	cfg.Recommender.DQN.Seed += uint64(k)
	cfg.Recommender.Adaptive.Seed += uint64(k)
	return cfg
}

// Spread is a figure over seeds: the mean, the sample standard deviation
// (0 for one seed), the smallest and the largest value, and how many seeds
// it is over.
type Spread struct {
	Mean, SD, Min, Max float64
	N                  int
}

// SpreadOf is the spread of xs (the zero Spread for none).
func SpreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := Spread{N: len(xs), Min: math.Inf(1), Max: math.Inf(-1)}
	for _, x := range xs {
		s.Mean += x
		s.Min, s.Max = min(s.Min, x), max(s.Max, x)
	}
	s.Mean /= float64(len(xs))
	if len(xs) > 1 {
		ss := 0.0
		for _, x := range xs {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.SD = math.Sqrt(ss / float64(len(xs)-1))
	}
	return s
}

// Summary is a policy's figures over several seeds.
type Summary struct {
	Policy string
	// Runs are the runs, one per seed, in seed order.
	Runs []Result
	// Reward is the cumulative reward, HR the share of lists from which
	// the user picked an item (CTR), Length the mean session length
	// (lists), RegretPerList the oracle regret per list shown.
	Reward, HR, Length, RegretPerList Spread
	// Recovery is the events the reward per list took to recover after the
	// scheduled shift, over the seeds where it recovered (Recovery.N of
	// len(Runs); N = 0: none did, or there was no shift).
	Recovery Spread
}

// Summarize summarizes the runs of one policy, one per seed.
func Summarize(runs []Result) Summary {
	s := Summary{Runs: runs}
	if len(runs) > 0 {
		s.Policy = runs[0].Policy
	}
	s.Reward = spreadBy(runs, func(r Result) (float64, bool) { return r.CumulativeReward, true })
	s.HR = spreadBy(runs, func(r Result) (float64, bool) { return r.CTR, true })
	s.Length = spreadBy(runs, func(r Result) (float64, bool) { return r.MeanSessionLength, true })
	s.RegretPerList = spreadBy(runs, func(r Result) (float64, bool) { return r.Regret / float64(max(r.Shown, 1)), true })
	s.Recovery = spreadBy(runs, func(r Result) (float64, bool) { return float64(r.Recovery), r.ShiftEvent > 0 && r.Recovery >= 0 })
	return s
}

// spreadBy is the spread of f over the runs for which it is defined.
func spreadBy(runs []Result, f func(Result) (float64, bool)) Spread {
	var xs []float64
	for _, r := range runs {
		if x, ok := f(r); ok {
			xs = append(xs, x)
		}
	}
	return SpreadOf(xs)
}

// RewardRatio is the spread over seeds of a's cumulative reward over b's,
// seed by seed (the two ran the same seeds, in the same order); the
// zero Spread if they did not run the same number of seeds.
func RewardRatio(a, b Summary) Spread {
	if len(a.Runs) != len(b.Runs) {
		return Spread{}
	}
	var xs []float64
	for i, r := range a.Runs {
		if d := b.Runs[i].CumulativeReward; d != 0 {
			xs = append(xs, r.CumulativeReward/d)
		}
	}
	return SpreadOf(xs)
}
