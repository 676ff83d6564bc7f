package model

import (
	"math"
	"math/rand/v2"
)

// Observation is what an architecture controller sees at a decision epoch.
type Observation struct {
	Widths       []int   // hidden layer widths
	NetParams    int     // Q-network weights
	Quality      float64 // prequential NDCG@10 over the last epoch
	QualityTrend float64 // change of Quality since the previous epoch
	LossTrend    float64 // relative change of the training loss over the epoch
	DataRate     float64 // events in the epoch
	VocabGrowth  float64 // new items in the epoch / items known
	IdleUnits    float64 // fraction of hidden units that never fired in the epoch
}

// Controller chooses an architecture action at each decision epoch and
// learns from the reward of its previous choice.
//
// Decide is called with the current observation and the actions allowed
// by the bounds; Feedback with the reward of the action Decide returned
// last. Not safe for concurrent use.
type Controller interface {
	Decide(obs Observation, allowed []Action) Action
	Feedback(reward float64)
	Name() string
}

// ArchReward is the controller's reward for a decision: the quality gain
// over the epoch after it (the network's quality minus the reference's:
// Adaptive uses the network before the decision, frozen, on the same
// events), minus λ per thousand parameters added.
func ArchReward(qualityBefore, qualityAfter float64, paramsAdded int, lambda float64) (reward, gain, cost float64) {
	gain = qualityAfter - qualityBefore
	cost = lambda * float64(paramsAdded) / 1000
	return gain - cost, gain, cost
}

// Candidates enumerates the actions within bounds: keep, widen and narrow
// every layer by step units, add a layer after the last, remove any layer.
func Candidates(n *qnet, b ArchBounds, step int) []Action {
	acts := []Action{{Kind: Keep}}
	for l := range n.hidden {
		for _, a := range []Action{{Kind: Widen, Layer: l, K: step}, {Kind: Narrow, Layer: l, K: step}, {Kind: RemoveLayer, Layer: l}} {
			if n.valid(a, b) == nil {
				acts = append(acts, a)
			}
		}
	}
	if len(n.hidden) > 0 {
		if a := (Action{Kind: AddLayer, Layer: len(n.hidden) - 1}); n.valid(a, b) == nil {
			acts = append(acts, a)
		}
	}
	return acts
}

// PolicyGradient is the learned controller: a softmax policy over the
// allowed actions, linear in features of the observation and the action,
// trained by REINFORCE with a learned linear value baseline (the scheme
// Reinforced Continual Learning uses with its LSTM controller, with a
// linear model in place of the LSTM). Rewards are standardised by their
// running mean and spread before the baseline is taken off.
type PolicyGradient struct {
	rng      *rand.Rand
	lr       float64
	theta    []float64 // policy weights over joint features
	value    []float64 // baseline weights over observation features
	lastFeat [][]float64
	lastObs  []float64
	lastPick int
	lastProb []float64
	decided  bool
	// running mean and variance of rewards (Welford): advantages are in
	// units of the reward's spread, so the step size does not depend on λ
	// or on how much NDCG moves.
	n        int
	mean, m2 float64
}

// NewPolicyGradient returns an untrained controller (uniform policy).
func NewPolicyGradient(lr float64, seed uint64) *PolicyGradient {
	return &PolicyGradient{rng: rand.New(rand.NewPCG(seed, 0xc0)), lr: lr}
}

// Name implements Controller.
func (p *PolicyGradient) Name() string { return "rl" }

func obsFeatures(o Observation) []float64 {
	depth := float64(len(o.Widths))
	return []float64{
		1,
		math.Log1p(float64(o.NetParams)) / 10,
		depth / 4,
		o.Quality * 10,
		o.QualityTrend * 100,
		math.Max(-1, math.Min(1, o.LossTrend)),
		math.Log1p(o.DataRate) / 10,
		math.Min(1, o.VocabGrowth*10),
		o.IdleUnits,
	}
}

// jointFeatures crosses the observation with a one-hot of the action kind,
// so each kind gets its own weights over the observation.
func jointFeatures(obs []float64, a Action) []float64 {
	kinds := []ActionKind{Keep, Widen, Narrow, AddLayer, RemoveLayer, TiersNarrower, TiersWider}
	f := make([]float64, len(obs)*len(kinds))
	for k, kind := range kinds {
		if kind == a.Kind {
			copy(f[k*len(obs):], obs)
		}
	}
	return f
}

// Decide implements Controller: it samples an action from the policy.
func (p *PolicyGradient) Decide(o Observation, allowed []Action) Action {
	obs := obsFeatures(o)
	feats := make([][]float64, len(allowed))
	logits := make([]float64, len(allowed))
	for i, a := range allowed {
		feats[i] = jointFeatures(obs, a)
		if p.theta == nil {
			p.theta = make([]float64, len(feats[i]))
			p.value = make([]float64, len(obs))
		}
		logits[i] = dot(p.theta, feats[i])
	}
	probs := softmax(logits)
	u, pick := p.rng.Float64(), len(probs)-1
	for i, pr := range probs {
		if u < pr {
			pick = i
			break
		}
		u -= pr
	}
	p.lastFeat, p.lastObs, p.lastPick, p.lastProb, p.decided = feats, obs, pick, probs, true
	return allowed[pick]
}

// Feedback implements Controller: one REINFORCE step with the baseline.
func (p *PolicyGradient) Feedback(reward float64) {
	if !p.decided {
		return
	}
	p.decided = false
	p.n++
	delta := reward - p.mean
	p.mean += delta / float64(p.n)
	p.m2 += delta * (reward - p.mean)
	if p.n < 2 {
		return // no spread yet to measure the reward against
	}
	z := (reward - p.mean) / math.Max(math.Sqrt(p.m2/float64(p.n-1)), 1e-6)
	adv := math.Max(-3, math.Min(3, z-dot(p.value, p.lastObs)))
	// Baseline: gradient step on (z - V(s))².
	for j, x := range p.lastObs {
		p.value[j] += p.lr * adv * x
	}
	// Policy: ∇ log π(a) = φ(a) − Σ π(b) φ(b).
	for j := range p.theta {
		g := p.lastFeat[p.lastPick][j]
		for i, pr := range p.lastProb {
			g -= pr * p.lastFeat[i][j]
		}
		p.theta[j] += p.lr * adv * g
	}
}

// Probabilities returns the policy's action probabilities for o.
func (p *PolicyGradient) Probabilities(o Observation, allowed []Action) []float64 {
	obs := obsFeatures(o)
	logits := make([]float64, len(allowed))
	for i, a := range allowed {
		if p.theta != nil {
			logits[i] = dot(p.theta, jointFeatures(obs, a))
		}
	}
	return softmax(logits)
}

// Heuristic is the hand-written controller the learned one is compared
// with: grow the last layer when the training loss has plateaued and
// quality is not improving, prune it when many of its units are idle,
// otherwise keep.
type Heuristic struct {
	Plateau  float64 // |relative loss change| below which the loss has plateaued
	IdleFrac float64 // fraction of idle units above which to prune
}

// Name implements Controller.
func (h *Heuristic) Name() string { return "heuristic" }

// Feedback implements Controller: the heuristic does not learn.
func (h *Heuristic) Feedback(float64) {}

// Decide implements Controller.
func (h *Heuristic) Decide(o Observation, allowed []Action) Action {
	last := len(o.Widths) - 1
	want := func(kind ActionKind) (Action, bool) {
		for _, a := range allowed {
			if a.Kind == kind && (a.Layer == last || kind == Keep) {
				return a, true
			}
		}
		return Action{}, false
	}
	if o.IdleUnits > h.IdleFrac {
		if a, ok := want(Narrow); ok {
			return a
		}
	}
	if math.Abs(o.LossTrend) < h.Plateau && o.QualityTrend <= 0 {
		if a, ok := want(Widen); ok {
			return a
		}
	}
	return Action{Kind: Keep}
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func softmax(x []float64) []float64 {
	if len(x) == 0 {
		return nil
	}
	m := x[0]
	for _, v := range x {
		m = math.Max(m, v)
	}
	out := make([]float64, len(x))
	total := 0.0
	for i, v := range x {
		out[i] = math.Exp(v - m)
		total += out[i]
	}
	for i := range out {
		out[i] /= total
	}
	return out
}
