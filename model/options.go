package model

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Options selects and configures the model New builds. It mirrors the
// recommender section of the config file: the binary maps those keys onto
// it in one place (configs/wire), and Validate names each bad option by its
// key within that section (dqn.hidden).
type Options struct {
	// Model is one of Models.
	Model string
	// Shared overrides the Shared options of every model's config below.
	Shared

	Popularity PopularityConfig
	ItemKNN    ItemKNNConfig
	SR         SRConfig
	SKNN       SKNNConfig
	DQN        DQNConfig
	// Adaptive configures the adaptive model, whose network is DQN's
	// (Adaptive.DQN is ignored), and Controller its architecture controller.
	Adaptive   AdaptiveConfig
	Controller ControllerConfig
}

// Models lists the values Options.Model accepts: the models a worker serves.
// Build knows variants of them too (Names).
var Models = []string{"dqn", "adaptive", "popularity", "itemknn", "sr", "sknn"}

// DefaultOptions is the configuration of the defaults file
// (configs/adaptrec.yaml, recommender.*); a test checks that they agree.
func DefaultOptions() Options {
	return Options{
		Model: "dqn", Shared: Shared{TopN: 10, MaxUsers: 1_000_000, IdleGap: 30 * time.Minute, CompactUsers: true, MaxItems: 1_000_000},
		Popularity: DefaultPopularity(), ItemKNN: DefaultItemKNN(), SR: DefaultSR(), SKNN: DefaultSKNN(), DQN: DefaultDQN(),
		Adaptive: DefaultAdaptive(), Controller: DefaultController(),
	}
}

// Shared are the options every model's config has, which Options sets on
// each.
type Shared struct {
	// TopN is the length of each list.
	TopN int
	// MaxUsers bounds the users a model remembers (least recently seen go
	// first); UserTTL forgets users idle for this long in event time (0:
	// never).
	MaxUsers int
	UserTTL  time.Duration
	// IdleGap closes a user's session after this much event time without
	// an event of the user, as the session package's idle gap starts a new
	// one (configs/wire maps session.idle_gap onto it); 0: sessions close
	// only on a change of session id or the eviction of their user.
	IdleGap time.Duration
	// CompactUsers keeps each user with one event so far as a compact
	// record until its second event (liteusers.go): the same lists and
	// learning in a fraction of the memory.
	CompactUsers bool
	// MaxNewUsers bounds the compact users, the users with one event so
	// far (0: only MaxUsers does): a user is remembered past its first
	// event only if its second comes before MaxNewUsers other users'
	// first events (UserStore.SetMaxNew). Needs CompactUsers.
	MaxNewUsers int
	// MaxItems bounds the items the DQN and the adaptive model hold (0: no
	// bound); past it the least recently seen expire (expire.go).
	MaxItems int
}

// popularity, itemKNN, sr, sknn, dqn and adaptive return the model configs
// of o, with the options shared by every model set.
func (o Options) popularity() PopularityConfig {
	c := o.Popularity
	c.Shared = o.Shared
	return c
}

func (o Options) itemKNN() ItemKNNConfig {
	c := o.ItemKNN
	c.Shared = o.Shared
	return c
}

func (o Options) sr() SRConfig {
	c := o.SR
	c.Shared = o.Shared
	return c
}

func (o Options) sknn() SKNNConfig {
	c := o.SKNN
	c.Shared = o.Shared
	return c
}

func (o Options) dqn(hidden []int) DQNConfig {
	c := o.DQN
	c.Shared, c.Hidden = o.Shared, hidden
	return c
}

func (o Options) adaptive() AdaptiveConfig {
	c := o.Adaptive
	c.DQN = o.dqn(o.DQN.Hidden)
	return c
}

// Validate reports every invalid option of o, as OptionErrors joined.
func (o Options) Validate() error {
	var errs []error
	if !slices.Contains(Models, o.Model) {
		errs = append(errs, optionErr("model", "must be one of %s, got %q", strings.Join(Models, ", "), o.Model))
	}
	errs = checkPositive(errs, []string{"max_users", "top_n"}, o.MaxUsers, o.TopN)
	if o.MaxItems < 0 {
		errs = append(errs, optionErr("max_items", "must be 0 (no bound) or positive, got %d", o.MaxItems))
	}
	switch {
	case o.MaxNewUsers < 0:
		errs = append(errs, optionErr("max_new_users", "must be 0 (no bound but max_users) or positive, got %d", o.MaxNewUsers))
	case o.MaxNewUsers > 0 && !o.CompactUsers:
		errs = append(errs, optionErr("max_new_users", "bounds the compact users: needs compact_users true, or 0"))
	}
	if o.TopN > 1000 {
		errs = append(errs, optionErr("top_n", "must be at most 1000, got %d", o.TopN))
	}
	if o.UserTTL < 0 {
		errs = append(errs, optionErr("user_ttl", "must not be negative"))
	}
	errs = append(errs, within("popularity.", o.Popularity.Validate())...)
	errs = append(errs, within("itemknn.", o.ItemKNN.Validate())...)
	errs = append(errs, within("sr.", o.SR.Validate())...)
	errs = append(errs, within("sknn.", o.SKNN.Validate())...)
	errs = append(errs, within("dqn.", o.DQN.Validate())...)
	errs = append(errs, within("adaptive.", o.Adaptive.Validate())...)
	if a := o.Adaptive; len(a.Tiers) > 0 || len(a.TierAt) > 0 {
		d := o.DQN
		d.Tiers, d.TierAt = a.Tiers, a.TierAt
		errs = append(errs, within("adaptive.", errors.Join(checkTiers(nil, d)...))...)
	}
	errs = append(errs, within("adaptive.", o.Controller.Validate())...)
	return errors.Join(errs...)
}

// OptionError is an invalid option: Option is its key (dqn.hidden), Err
// what is wrong with it.
type OptionError struct {
	Option string
	Err    error
}

// Error implements error.
func (e *OptionError) Error() string { return e.Option + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *OptionError) Unwrap() error { return e.Err }

// OptionErrors lists the OptionErrors err holds (err is one, or errors
// joined); an error that is none is returned with an empty Option.
func OptionErrors(err error) []*OptionError {
	if err == nil {
		return nil
	}
	var oe *OptionError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*OptionError
		for _, e := range j.Unwrap() {
			out = append(out, OptionErrors(e)...)
		}
		return out
	}
	if errors.As(err, &oe) {
		return []*OptionError{oe}
	}
	return []*OptionError{{Err: err}}
}

// within returns the option errors of err with prefix added to their keys.
func within(prefix string, err error) []error {
	var errs []error
	for _, oe := range OptionErrors(err) {
		errs = append(errs, &OptionError{Option: prefix + oe.Option, Err: oe.Err})
	}
	return errs
}

func optionErr(option, format string, args ...any) error {
	return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
}

// checkPositive appends an error for each option of names (in order) whose
// value is not positive.
func checkPositive[T int | float64](errs []error, names []string, values ...T) []error {
	for i, v := range values {
		if v <= 0 {
			errs = append(errs, optionErr(names[i], "must be positive, got %v", v))
		}
	}
	return errs
}

// checkWindow appends an error if window, a number of recent items, is
// not within 1..1000.
func checkWindow(errs []error, window int) []error {
	if window <= 0 || window > 1000 {
		errs = append(errs, optionErr("window", "must be within 1..1000, got %d", window))
	}
	return errs
}

// checkDecay appends an error if decay, a recency weight, is not within
// (0, 1].
func checkDecay(errs []error, decay float64) []error {
	if decay <= 0 || decay > 1 {
		errs = append(errs, optionErr("decay", "must be within (0, 1], got %g", decay))
	}
	return errs
}

// DefaultPopularity is the popularity section of the defaults file.
func DefaultPopularity() PopularityConfig {
	return PopularityConfig{HalfLife: 720 * time.Hour, Shared: Shared{TopN: 10, MaxUsers: 1_000_000}}
}

// Validate reports the invalid options of c, but TopN, MaxUsers and
// UserTTL, which Options validates.
func (c PopularityConfig) Validate() error {
	if c.HalfLife <= 0 {
		return optionErr("half_life", "must be a positive duration, got %v", c.HalfLife)
	}
	return nil
}

// DefaultItemKNN is the itemknn section of the defaults file.
func DefaultItemKNN() ItemKNNConfig {
	return ItemKNNConfig{Window: 10, Decay: 0.9, Shared: Shared{TopN: 10, MaxUsers: 1_000_000}}
}

// Validate reports the invalid options of c, but TopN, MaxUsers and
// UserTTL, which Options validates.
func (c ItemKNNConfig) Validate() error {
	return errors.Join(checkDecay(checkWindow(nil, c.Window), c.Decay)...)
}

// DefaultSR is the sr section of the defaults file. Window and Decay were
// chosen on the first half (by time) of ml-latest-small only (README,
// Evaluation).
func DefaultSR() SRConfig {
	return SRConfig{Window: 10, Decay: 0.8, Shared: Shared{TopN: 10, MaxUsers: 1_000_000}}
}

// Validate reports the invalid options of c, but TopN, MaxUsers, UserTTL
// and IdleGap, which Options validates.
func (c SRConfig) Validate() error {
	return errors.Join(checkDecay(checkWindow(nil, c.Window), c.Decay)...)
}

// DefaultSKNN is the sknn section of the defaults file. Window and
// Neighbours were chosen on the first half (by time) of ml-latest-small
// only; Sample is the paper's (README, Evaluation).
func DefaultSKNN() SKNNConfig {
	return SKNNConfig{Window: 5, Neighbours: 50, Sample: 500, MaxSessions: 100_000, Shared: Shared{TopN: 10, MaxUsers: 1_000_000}}
}

// Validate reports the invalid options of c, but TopN, MaxUsers, UserTTL
// and IdleGap, which Options validates.
func (c SKNNConfig) Validate() error {
	errs := checkPositive(checkWindow(nil, c.Window), []string{"max_sessions", "neighbours", "sample"}, c.MaxSessions, c.Neighbours, c.Sample)
	if c.Neighbours > c.Sample && c.Sample > 0 {
		errs = append(errs, optionErr("neighbours", "must be at most sample (%d), got %d", c.Sample, c.Neighbours))
	}
	return errors.Join(errs...)
}

// Validate reports the invalid options of c, but TopN, MaxUsers and
// UserTTL, which Options validates.
func (c DQNConfig) Validate() error {
	errs := checkPositive(nil, []string{"dim", "explore_top", "replay", "rows", "steps_per_batch", "target_sync", "window"},
		c.Dim, c.ExploreTop, c.Replay, c.Rows, c.StepsPerBatch, c.TargetSync, c.Window)
	if c.Engine != EngineKernel && c.Engine != EngineGorgonia {
		errs = append(errs, optionErr("engine", "must be %q or %q, got %q", EngineKernel, EngineGorgonia, c.Engine))
	}
	if c.Window > maxWindow {
		errs = append(errs, optionErr("window", "must be at most %d, got %d", maxWindow, c.Window))
	}
	for _, w := range c.Hidden {
		if w <= 0 || w > 4096 {
			errs = append(errs, optionErr("hidden", "widths must be within 1..4096, got %v", c.Hidden))
			break
		}
	}
	if c.Negatives < 0 || c.Hard < 0 || c.RowUniform < 0 || c.Negatives+c.Hard+c.RowUniform == 0 {
		errs = append(errs, optionErr("negatives", "negatives, hard_negatives and row_negatives must not be negative and not all 0"))
	}
	if c.Hard+c.RowUniform > maxHard {
		errs = append(errs, optionErr("row_negatives", "hard_negatives + row_negatives must be at most %d, got %d", maxHard, c.Hard+c.RowUniform))
	}
	errs = checkPositive(errs, []string{"alpha_init", "emb_lr", "head_lr", "lr"}, c.AlphaInit, c.EmbLR, c.HeadLR, c.LR)
	if !(c.BiasLR >= 0) {
		errs = append(errs, optionErr("bias_lr", "must not be negative, got %v", c.BiasLR))
	}
	if c.ContextNegatives < 0 || c.ContextNegatives > 1024 {
		errs = append(errs, optionErr("context_negatives", "must be within 0..1024, got %d", c.ContextNegatives))
	}
	if !(c.ContextLR >= 0) || (c.ContextNegatives > 0 && c.ContextLR == 0) {
		errs = append(errs, optionErr("context_lr", "must be positive when context_negatives is, got %v", c.ContextLR))
	}
	if c.EmbNegatives < 0 || c.EmbNegatives+c.Hard == 0 {
		errs = append(errs, optionErr("emb_negatives", "emb_negatives + hard_negatives must be positive, got %d", c.EmbNegatives+c.Hard))
	}
	errs = checkDecay(errs, c.Decay)
	if c.Gamma < 0 || c.Gamma >= 1 {
		errs = append(errs, optionErr("gamma", "must be within [0, 1), got %g", c.Gamma))
	}
	if c.NStep < 0 || c.NStep > maxNStep {
		errs = append(errs, optionErr("n_step", "must be within [0, %d] (0 and 1: one-step), got %d", maxNStep, c.NStep))
	}
	if c.EWCLambda < 0 || c.EWCEvery <= 0 {
		errs = append(errs, optionErr("ewc_lambda", "ewc_lambda must not be negative and ewc_every must be positive"))
	}
	if c.TDWeight < 0 || c.Temperature < 0 {
		errs = append(errs, optionErr("td_weight", "td_weight and temperature must not be negative"))
	}
	if c.Mix {
		errs = checkMix(errs, c)
	}
	errs = checkTiers(errs, c)
	errs = checkNested(errs, c)
	if c.Reward.RatingScale <= 0 {
		errs = append(errs, optionErr("reward.rating_scale", "must be positive, got %g", c.Reward.RatingScale))
	}
	return errors.Join(errs...)
}

// checkMix appends the errors of the mixture's options to errs.
func checkMix(errs []error, c DQNConfig) []error {
	if c.MixRate < 0 {
		errs = append(errs, optionErr("mix_rate", "must not be negative, got %g", c.MixRate))
	}
	if c.MixMemory < 0 || c.MixMemory >= 1 {
		errs = append(errs, optionErr("mix_memory", "must be within [0, 1), got %g", c.MixMemory))
	}
	if c.MixEvery <= 0 {
		errs = append(errs, optionErr("mix_every", "must be positive, got %d", c.MixEvery))
	}
	if c.MixLearn < 0 {
		errs = append(errs, optionErr("mix_learn", "must not be negative, got %g", c.MixLearn))
	}
	if c.PopHalfLife <= 0 {
		errs = append(errs, optionErr("pop_half_life", "must be positive, got %g", c.PopHalfLife))
	}
	if c.TrendHalfLife < 0 {
		errs = append(errs, optionErr("trend_half_life", "must not be negative, got %g", c.TrendHalfLife))
	}
	if c.SRDecay <= 0 || c.SRDecay > 1 {
		errs = append(errs, optionErr("sr_decay", "must be within (0, 1], got %g", c.SRDecay))
	}
	return errs
}

// DefaultAdaptive is the adaptive section of the defaults file, but the
// controller's own options (DefaultController); its DQN is DefaultDQN.
func DefaultAdaptive() AdaptiveConfig {
	return AdaptiveConfig{
		DQN: DefaultDQN(), EpochSessions: 100, Step: 16, Lambda: 0.005, SampleEvery: 16, Tiers: []int{26}, TierAt: []float64{50}, Revert: true, MaxNewUsers: 100_000,
		Bounds: ArchBounds{MinWidth: 8, MaxWidth: 256, MinDepth: 1, MaxDepth: 3},
	}
}

// Validate reports the invalid options of c, but those of c.DQN.
func (c AdaptiveConfig) Validate() error {
	b := c.Bounds
	errs := checkPositive(nil, []string{"epoch_sessions", "max_depth", "min_width", "sample_every", "step"},
		c.EpochSessions, b.MaxDepth, b.MinWidth, c.SampleEvery, c.Step)
	if c.EpochEvents < 0 {
		errs = append(errs, optionErr("epoch_events", "must not be negative, got %d", c.EpochEvents))
	}
	if c.MaxNewUsers < 0 {
		errs = append(errs, optionErr("max_new_users", "must be 0 (recommender.max_new_users's) or positive, got %d", c.MaxNewUsers))
	}
	if b.MaxWidth < b.MinWidth {
		errs = append(errs, optionErr("max_width", "must be at least min_width (%d), got %d", b.MinWidth, b.MaxWidth))
	}
	if b.MinDepth < 0 || b.MinDepth > b.MaxDepth {
		errs = append(errs, optionErr("min_depth", "must be within 0..max_depth (%d), got %d", b.MaxDepth, b.MinDepth))
	}
	if c.Lambda < 0 || b.MaxParams < 0 {
		errs = append(errs, optionErr("lambda", "lambda and max_params must not be negative"))
	}
	return errors.Join(errs...)
}

// ControllerConfig configures the adaptive model's architecture controller.
type ControllerConfig struct {
	// Kind is rl (policy gradient, learning rate LR, seeded by Seed) or
	// heuristic (grow on a loss Plateau, prune above IdleFraction idle units).
	Kind         string
	LR           float64
	Seed         uint64
	Plateau      float64
	IdleFraction float64
}

// DefaultController is the controller of the defaults file.
func DefaultController() ControllerConfig {
	return ControllerConfig{Kind: "rl", LR: 0.1, Seed: 1, Plateau: 0.02, IdleFraction: 0.25}
}

// Validate reports the invalid options of c, keyed as in the adaptive
// section (controller, lr).
func (c ControllerConfig) Validate() error {
	var errs []error
	if c.Kind != "rl" && c.Kind != "heuristic" {
		errs = append(errs, optionErr("controller", "must be rl or heuristic, got %q", c.Kind))
	}
	return errors.Join(checkPositive(errs, []string{"lr"}, c.LR)...)
}

// New returns the controller c configures, of kind c.Kind.
func (c ControllerConfig) New() Controller {
	if c.Kind == "heuristic" {
		return &Heuristic{Plateau: c.Plateau, IdleFrac: c.IdleFraction}
	}
	return NewPolicyGradient(c.LR, c.Seed)
}

// checkTiers checks tiers and tier_at: narrower widths than dim,
// ascending, one threshold each (positive, ascending), tied tables only.
func checkTiers(errs []error, c DQNConfig) []error {
	if len(c.Tiers) == 0 && len(c.TierAt) == 0 {
		return errs
	}
	switch {
	case !c.Tied:
		return append(errs, optionErr("tiers", "needs tied item tables (tied: true)"))
	case len(c.TierAt) != len(c.Tiers):
		return append(errs, optionErr("tier_at", "needs one threshold per tier: %d tiers, %d thresholds", len(c.Tiers), len(c.TierAt)))
	}
	for i, w := range c.Tiers {
		if w <= 0 || w >= c.Dim || i > 0 && w <= c.Tiers[i-1] {
			return append(errs, optionErr("tiers", "widths must be ascending, positive and below dim %d, got %v", c.Dim, c.Tiers))
		}
	}
	for i, a := range c.TierAt {
		if !(a > 0) || i > 0 && a <= c.TierAt[i-1] {
			return append(errs, optionErr("tier_at", "thresholds must be positive and ascending, got %v", c.TierAt))
		}
	}
	return errs
}
