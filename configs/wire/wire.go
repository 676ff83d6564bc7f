// Package wire maps the config keys (configs.Config) onto the options the
// other packages own and validate: model.Options for recommender.* and
// session.Options for session.*. It is the one place that knows both
// sides, so configs names no model and model reads no config; the binary,
// the simulator and the tests build their models through it.
package wire

import (
	"errors"
	"fmt"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/session"
)

// Load is configs.Load followed by Check: the whole configuration the
// binary starts with, every invalid value named by its key.
func Load(opts configs.LoadOptions) (configs.Config, error) {
	cfg, err := configs.Load(opts)
	if err != nil {
		return cfg, err
	}
	return cfg, Check(cfg)
}

// Check validates the options cfg maps onto, naming each bad value by its
// config key (recommender.dqn.hidden: ...).
func Check(cfg configs.Config) error {
	if err := keyed(ModelOptions(cfg).Validate()); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	return nil
}

// keyed names each option error of err by its config key.
func keyed(err error) error {
	var errs []error
	for _, oe := range model.OptionErrors(err) {
		errs = append(errs, fmt.Errorf("recommender.%s: %w", oe.Option, oe.Err))
	}
	return errors.Join(errs...)
}

// Model builds the recommender cfg selects (recommender.model).
func Model(cfg configs.Config) (model.Recommender, error) {
	opts := ModelOptions(cfg)
	if err := keyed(opts.Validate()); err != nil {
		return nil, err
	}
	return model.New(opts)
}

// Build builds the model named name (one of model.Names), configured by
// the recommender.* keys of cfg but recommender.model.
func Build(name string, cfg configs.Config) (model.Probed, error) {
	opts := ModelOptions(cfg)
	opts.Model = model.Models[0] // the name chosen, not recommender.model, is built
	if err := keyed(opts.Validate()); err != nil {
		return nil, err
	}
	return model.Build(name, opts)
}

// ModelOptions maps the recommender.* keys onto model.Options. Options
// without a key keep model.DefaultOptions().
func ModelOptions(cfg configs.Config) model.Options {
	r := cfg.Recommender
	o := model.DefaultOptions()
	o.Model, o.TopN, o.MaxUsers, o.UserTTL = r.Model, r.TopN, r.MaxUsers, r.UserTTL
	o.IdleGap, o.CompactUsers, o.MaxItems, o.MaxNewUsers = cfg.Session.IdleGap, r.CompactUsers, r.MaxItems, r.MaxNewUsers
	o.Popularity.HalfLife = r.Popularity.HalfLife
	o.ItemKNN.Window, o.ItemKNN.Decay = r.ItemKNN.Window, r.ItemKNN.Decay
	o.SR.Window, o.SR.Decay = r.SR.Window, r.SR.Decay
	o.SKNN.Window, o.SKNN.Neighbours, o.SKNN.Sample, o.SKNN.MaxSessions = r.SKNN.Window, r.SKNN.Neighbours, r.SKNN.Sample, r.SKNN.MaxSessions
	o.DQN = dqnOptions(o.DQN, r.DQN)
	ad := r.Adaptive
	o.Adaptive.EpochEvents = ad.EpochEvents
	o.Adaptive.Tiers, o.Adaptive.TierAt, o.Adaptive.Revert, o.Adaptive.MaxNewUsers = ad.Tiers, ad.TierAt, ad.Revert, ad.MaxNewUsers
	o.Adaptive.EpochSessions, o.Adaptive.Step, o.Adaptive.Lambda, o.Adaptive.SampleEvery = ad.EpochSessions, ad.Step, ad.Lambda, ad.SampleEvery
	o.Adaptive.Bounds = model.ArchBounds{MinWidth: ad.MinWidth, MaxWidth: ad.MaxWidth, MinDepth: ad.MinDepth, MaxDepth: ad.MaxDepth, MaxParams: ad.MaxParams}
	o.Controller = model.ControllerConfig{Kind: ad.Controller, LR: ad.LR, Seed: ad.Seed, Plateau: ad.Plateau, IdleFraction: ad.IdleFraction}
	return o
}

// dqnOptions sets the options of o that recommender.dqn.* keys name.
func dqnOptions(o model.DQNConfig, q configs.DQN) model.DQNConfig {
	o.Dim, o.Hidden, o.Window, o.Decay, o.LR, o.HeadLR = q.Dim, q.Hidden, q.Window, q.Decay, q.LR, q.HeadLR
	o.BiasLR, o.ContextNegatives, o.ContextLR = q.BiasLR, q.ContextNegatives, q.ContextLR
	o.EmbLR, o.EmbNegatives, o.Negatives, o.Hard, o.RowUniform, o.Rows = q.EmbLR, q.EmbNegatives, q.Negatives, q.HardNegatives, q.RowNegatives, q.Rows
	o.Engine, o.Tied = q.Engine, q.Tied
	if len(q.Tiers) > 0 || len(q.TierAt) > 0 { // empty lists: no tiers, as the defaults' nil
		o.Tiers, o.TierAt = q.Tiers, q.TierAt
	}
	if len(q.Nested) > 0 {
		o.Nested = q.Nested
	}
	o.NestedWeight, o.WidthPolicy, o.WidthLambda, o.WidthProbeEvery = q.NestedWeight, q.WidthPolicy, q.WidthLambda, q.WidthProbeEvery
	o.StepsPerBatch, o.Gamma, o.TDWeight, o.TargetSync, o.Replay = q.StepsPerBatch, q.Gamma, q.TDWeight, q.TargetSync, q.Replay
	o.NStep = q.NStep
	o.AlphaInit, o.EWCLambda, o.EWCEvery, o.Temperature, o.ExploreTop, o.Seed = q.AlphaInit, q.EWCLambda, q.EWCEvery, q.Temperature, q.ExploreTop, q.Seed
	o.Mix, o.MixRate, o.MixMemory, o.MixEvery, o.SRDecay, o.PopHalfLife = q.Mix, q.MixRate, q.MixMemory, q.MixEvery, q.SRDecay, q.PopHalfLife
	o.MixLearn, o.TrendHalfLife = q.MixLearn, q.TrendHalfLife
	o.Reward = Reward(q.Reward)
	return o
}

// Reward maps the recommender.dqn.reward.* keys onto model.Reward: the
// reward the DQN learns from and the one the worker's quality metrics
// report.
func Reward(r configs.DQNReward) model.Reward {
	return model.Reward{Click: r.Click, View: r.View, ViewPerMinute: r.ViewPerMinute, RatingCenter: r.RatingCenter, RatingScale: r.RatingScale}
}

// Session maps the session.* keys onto session.Options.
func Session(s configs.Session) session.Options {
	return session.Options{IdleGap: s.IdleGap, TTL: s.TTL, MaxSessions: s.MaxSessions}
}
