package model

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model/feedback"
)

// Item is one entry of a recommendation list.
type Item struct {
	ItemID string  `json:"item_id"`
	Score  float64 `json:"score"`
	// Propensity is the probability that the serving policy showed this item
	// at this position; 1 for a deterministic policy.
	Propensity float64 `json:"propensity"`
}

// Recommendation is the refreshed list of one user, as published on the
// recommendations topic. Partition and Offset name the last input event it
// reflects, so consumers can order lists and drop duplicates.
type Recommendation struct {
	UserID       string    `json:"user_id"`
	SessionID    string    `json:"session_id"`
	Items        []Item    `json:"items"`
	Partition    int32     `json:"partition"`
	Offset       int64     `json:"offset"`
	ModelVersion string    `json:"model_version"`
	TS           time.Time `json:"ts"`
}

// Recommender learns from feedback batches and serves lists.
//
// Learn handles the events of b in order: each event updates the state of its
// user at once, so later events of the same batch see it; model weights may
// move once per batch. It returns at most one Recommendation per user of the
// batch, reflecting that user's last event in it, in order of first
// appearance. Learn must not keep references into b after it returns.
// Implementations are not safe for concurrent use: one goroutine owns one.
type Recommender interface {
	Learn(ctx context.Context, b *feedback.Batch) ([]Recommendation, error)
	// Name is the model's name in configuration and outputs.
	Name() string
	// Params is the number of learned parameters (0 for count-based models).
	Params() int
}

// Snapshotter is a recommender whose learned state can be written to a
// snapshot and restored from one (the DQN and the adaptive model).
type Snapshotter interface {
	WriteSnapshot(w io.Writer, meta SnapshotMeta) (SnapshotMeta, error)
	Restore(s *Snapshot) error
}

// Observer is a recommender that can rebuild its users' session state
// from events without learning from them (the DQN and the adaptive model).
type Observer interface {
	Observe(b *feedback.Batch)
}

// Replica is a recommender whose replicas can be merged: Merge adds a
// peer's snapshot in (what is averaged gets weight w), MergeSums only what
// adds up (a replica that left long ago); Adopt takes a
// peer's networks, at its architecture (an architecture change of the
// group's decider).
type Replica interface {
	Snapshotter
	Merge(s *Snapshot, w float64) error
	MergeSums(s *Snapshot) error
	Adopt(s *Snapshot) error
	Widths() []int
}

// New builds the recommender that cfg.Recommender.Model names.
func New(cfg configs.Config) (Recommender, error) {
	m, err := Build(cfg.Recommender.Model, cfg)
	if err != nil {
		return nil, fmt.Errorf("recommender.model: %w", err)
	}
	return m, nil
}

// Names lists the models Build knows; "pop" is short for popularity.
var Names = []string{"dqn", "dqn-small", "dqn-medium", "dqn-large", "adaptive", "adaptive-rl", "adaptive-heuristic", "popularity", "pop", "itemknn"}

// FixedSizes are the hidden widths of the fixed-size DQNs the adaptive
// models are compared with.
var FixedSizes = map[string][]int{"dqn-small": {16}, "dqn-medium": {64}, "dqn-large": {256, 256}}

// Build returns a new model by name, configured from cfg.
func Build(name string, cfg configs.Config) (Probed, error) {
	switch name {
	case "popularity", "pop":
		return NewPopularity(PopularityConfig{
			HalfLife: cfg.Recommender.Popularity.HalfLife,
			TopN:     cfg.Recommender.TopN,
			MaxUsers: cfg.Recommender.MaxUsers,
			UserTTL:  cfg.Recommender.UserTTL,
		}), nil
	case "adaptive", "adaptive-rl", "adaptive-heuristic":
		ad := cfg.Recommender.Adaptive
		kind := ad.Controller
		if name != "adaptive" {
			kind = strings.TrimPrefix(name, "adaptive-")
		}
		var ctrl Controller = NewPolicyGradient(ad.LR, ad.Seed)
		if kind == "heuristic" {
			ctrl = &Heuristic{Plateau: ad.Plateau, IdleFrac: ad.IdleFraction}
		}
		return NewAdaptive(AdaptiveConfig{
			DQN: dqnConfig(cfg, cfg.Recommender.DQN.Hidden), EpochSessions: ad.EpochSessions, Step: ad.Step, Lambda: ad.Lambda, SampleEvery: ad.SampleEvery,
			Bounds: ArchBounds{MinWidth: ad.MinWidth, MaxWidth: ad.MaxWidth, MinDepth: ad.MinDepth, MaxDepth: ad.MaxDepth, MaxParams: ad.MaxParams},
		}, ctrl)
	case "dqn", "dqn-small", "dqn-medium", "dqn-large":
		hidden := cfg.Recommender.DQN.Hidden
		if w, ok := FixedSizes[name]; ok {
			hidden = w
		}
		m, err := NewDQN(dqnConfig(cfg, hidden))
		if err != nil {
			return nil, err
		}
		m.name = name
		return m, nil
	case "itemknn":
		return NewItemKNN(ItemKNNConfig{
			Window:   cfg.Recommender.ItemKNN.Window,
			Decay:    cfg.Recommender.ItemKNN.Decay,
			TopN:     cfg.Recommender.TopN,
			MaxUsers: cfg.Recommender.MaxUsers,
			UserTTL:  cfg.Recommender.UserTTL,
		}), nil
	}
	return nil, fmt.Errorf("unknown model %q (known: %s)", name, strings.Join(Names, ", "))
}

// dqnConfig maps the recommender.dqn keys to a DQNConfig with the given
// hidden widths.
func dqnConfig(cfg configs.Config, hidden []int) DQNConfig {
	q := cfg.Recommender.DQN
	return DQNConfig{
		Dim: q.Dim, Hidden: hidden, Window: q.Window, Decay: q.Decay, LR: q.LR, HeadLR: q.HeadLR,
		EmbLR: q.EmbLR, EmbNegatives: q.EmbNegatives, ZeroHead: true, Skip: true,
		Negatives: q.Negatives, Hard: q.HardNegatives, RowUniform: q.RowNegatives, Rows: q.Rows,
		StepsPerBatch: q.StepsPerBatch, Gamma: q.Gamma, TDWeight: q.TDWeight, TargetSync: q.TargetSync,
		Replay: q.Replay, AlphaInit: q.AlphaInit, EWCLambda: q.EWCLambda, EWCEvery: q.EWCEvery,
		Temperature: q.Temperature, ExploreTop: q.ExploreTop,
		Reward: Reward{Click: q.Reward.Click, View: q.Reward.View, ViewPerMinute: q.Reward.ViewPerMinute,
			RatingCenter: q.Reward.RatingCenter, RatingScale: q.Reward.RatingScale},
		TopN: cfg.Recommender.TopN, MaxUsers: cfg.Recommender.MaxUsers, UserTTL: cfg.Recommender.UserTTL, Seed: q.Seed,
	}
}
