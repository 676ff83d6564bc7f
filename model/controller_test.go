package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestCandidatesRespectBounds(t *testing.T) {
	n := newQNet(12, 8, []int{32}, rand.New(rand.NewPCG(1, 1)))
	acts := Candidates(n, ArchBounds{MinWidth: 16, MaxWidth: 48, MinDepth: 1, MaxDepth: 2}, 16)
	want := map[string]bool{"keep": true, "widen(layer 0, 16)": true, "narrow(layer 0, 16)": true, "add_layer(0)": true}
	if len(acts) != len(want) {
		t.Fatalf("candidates %v", acts)
	}
	for _, a := range acts {
		if !want[a.String()] {
			t.Fatalf("unexpected candidate %s in %v", a, acts)
		}
	}
}

// The policy-gradient controller learns, from rewards alone, to prefer the
// action that pays: here widening pays 1, anything else 0, with noise.
// The policy learns which action pays, whatever the scale of the rewards
// (NDCG gains are of the order of 1e-3): advantages are standardised.
func TestPolicyGradientLearnsTheRewardingAction(t *testing.T) {
	for _, scale := range []float64{1, 1e-3} {
		p := NewPolicyGradient(0.1, 3)
		noise := rand.New(rand.NewPCG(5, 5))
		allowed := []Action{{Kind: Keep}, {Kind: Widen, Layer: 0, K: 16}, {Kind: Narrow, Layer: 0, K: 16}, {Kind: AddLayer, Layer: 0}}
		obs := Observation{Widths: []int{32}, NetParams: 3000, Quality: 0.05, DataRate: 5000}
		for range 200 {
			a := p.Decide(obs, allowed)
			r := noise.NormFloat64() * 0.3
			if a.Kind == Widen {
				r++
			}
			p.Feedback(r * scale)
		}
		probs := p.Probabilities(obs, allowed)
		if probs[1] < 0.8 {
			t.Fatalf("reward scale %g: P(widen) = %.2f after 200 epochs, want > 0.8 (%v)", scale, probs[1], probs)
		}
	}
}

func TestHeuristicGrowsOnPlateauAndPrunesIdleUnits(t *testing.T) {
	h := &Heuristic{Plateau: 0.01, IdleFrac: 0.3}
	allowed := []Action{{Kind: Keep}, {Kind: Widen, Layer: 0, K: 16}, {Kind: Narrow, Layer: 0, K: 16}}
	base := Observation{Widths: []int{32}}
	plateau := base
	plateau.LossTrend, plateau.QualityTrend = 0.001, -0.001
	if a := h.Decide(plateau, allowed); a.Kind != Widen {
		t.Fatalf("plateau: %s, want widen", a)
	}
	idle := base
	idle.IdleUnits, idle.LossTrend = 0.5, -0.2
	if a := h.Decide(idle, allowed); a.Kind != Narrow {
		t.Fatalf("idle units: %s, want narrow", a)
	}
	learning := base
	learning.LossTrend, learning.QualityTrend = -0.2, 0.01
	if a := h.Decide(learning, allowed); a.Kind != Keep {
		t.Fatalf("still learning: %s, want keep", a)
	}
}

func TestArchReward(t *testing.T) {
	r, gain, cost := ArchReward(0.10, 0.125, 4000, 0.005)
	if math.Abs(gain-0.025) > 1e-12 || math.Abs(cost-0.02) > 1e-12 || math.Abs(r-0.005) > 1e-12 {
		t.Fatalf("reward %v gain %v cost %v", r, gain, cost)
	}
	if r, _, _ := ArchReward(0.1, 0.1, -2000, 0.005); r <= 0 {
		t.Fatalf("removing parameters at equal quality must pay, got %v", r)
	}
}
