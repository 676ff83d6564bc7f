package configs

import "time"

// Recommender selects and configures the model the worker serves. Its
// values are decoded here and checked by model.Options.Validate, onto which
// configs/wire maps them.
type Recommender struct {
	Model    string        `mapstructure:"model"`
	TopN     int           `mapstructure:"top_n"`
	MaxUsers int           `mapstructure:"max_users"`
	UserTTL  time.Duration `mapstructure:"user_ttl"`
	// MaxItems bounds the items the DQN models hold (0: no bound).
	MaxItems int `mapstructure:"max_items"`
	// CompactUsers keeps users with one event as compact records.
	CompactUsers bool `mapstructure:"compact_users"`
	// MaxNewUsers bounds the compact users (0: only max_users does).
	MaxNewUsers int        `mapstructure:"max_new_users"`
	Popularity  Popularity `mapstructure:"popularity"`
	ItemKNN     ItemKNN    `mapstructure:"itemknn"`
	SR          SR         `mapstructure:"sr"`
	SKNN        SKNN       `mapstructure:"sknn"`
	DQN         DQN        `mapstructure:"dqn"`
	Adaptive    Adaptive   `mapstructure:"adaptive"`
}

// Adaptive configures the architecture controller of the adaptive DQN.
type Adaptive struct {
	Controller    string    `mapstructure:"controller"`
	EpochSessions int       `mapstructure:"epoch_sessions"`
	EpochEvents   int       `mapstructure:"epoch_events"`
	Step          int       `mapstructure:"step"`
	Lambda        float64   `mapstructure:"lambda"`
	SampleEvery   int       `mapstructure:"sample_every"`
	MinWidth      int       `mapstructure:"min_width"`
	MaxWidth      int       `mapstructure:"max_width"`
	MinDepth      int       `mapstructure:"min_depth"`
	MaxDepth      int       `mapstructure:"max_depth"`
	MaxParams     int       `mapstructure:"max_params"`
	LR            float64   `mapstructure:"lr"`
	Plateau       float64   `mapstructure:"plateau"`
	IdleFraction  float64   `mapstructure:"idle_fraction"`
	Seed          uint64    `mapstructure:"seed"`
	Tiers         []int     `mapstructure:"tiers"`
	TierAt        []float64 `mapstructure:"tier_at"`
	Revert        bool      `mapstructure:"revert"`
	MaxNewUsers   int       `mapstructure:"max_new_users"`
}

// DQN configures the deep RL recommender (see model.DQNConfig).
type DQN struct {
	Dim              int       `mapstructure:"dim"`
	Hidden           []int     `mapstructure:"hidden"`
	Window           int       `mapstructure:"window"`
	Decay            float64   `mapstructure:"decay"`
	LR               float64   `mapstructure:"lr"`
	HeadLR           float64   `mapstructure:"head_lr"`
	EmbLR            float64   `mapstructure:"emb_lr"`
	BiasLR           float64   `mapstructure:"bias_lr"`
	ContextNegatives int       `mapstructure:"context_negatives"`
	ContextLR        float64   `mapstructure:"context_lr"`
	EmbNegatives     int       `mapstructure:"emb_negatives"`
	Tied             bool      `mapstructure:"tied"`
	Tiers            []int     `mapstructure:"tiers"`
	TierAt           []float64 `mapstructure:"tier_at"`
	Nested           []int     `mapstructure:"nested"`
	NestedWeight     float64   `mapstructure:"nested_weight"`
	WidthPolicy      string    `mapstructure:"width_policy"`
	WidthLambda      float64   `mapstructure:"width_lambda"`
	WidthProbeEvery  int       `mapstructure:"width_probe_every"`
	Negatives        int       `mapstructure:"negatives"`
	HardNegatives    int       `mapstructure:"hard_negatives"`
	RowNegatives     int       `mapstructure:"row_negatives"`
	Rows             int       `mapstructure:"rows"`
	StepsPerBatch    int       `mapstructure:"steps_per_batch"`
	Engine           string    `mapstructure:"engine"`
	Gamma            float64   `mapstructure:"gamma"`
	NStep            int       `mapstructure:"n_step"`
	TDWeight         float64   `mapstructure:"td_weight"`
	TargetSync       int       `mapstructure:"target_sync"`
	Replay           int       `mapstructure:"replay"`
	AlphaInit        float64   `mapstructure:"alpha_init"`
	EWCLambda        float64   `mapstructure:"ewc_lambda"`
	EWCEvery         int       `mapstructure:"ewc_every"`
	Temperature      float64   `mapstructure:"temperature"`
	ExploreTop       int       `mapstructure:"explore_top"`
	Mix              bool      `mapstructure:"mix"`
	MixRate          float64   `mapstructure:"mix_rate"`
	MixMemory        float64   `mapstructure:"mix_memory"`
	MixEvery         int       `mapstructure:"mix_every"`
	SRDecay          float64   `mapstructure:"sr_decay"`
	PopHalfLife      float64   `mapstructure:"pop_half_life"`
	TrendHalfLife    float64   `mapstructure:"trend_half_life"`
	MixLearn         float64   `mapstructure:"mix_learn"`
	Seed             uint64    `mapstructure:"seed"`
	Reward           DQNReward `mapstructure:"reward"`
}

// DQNReward maps feedback to reward.
type DQNReward struct {
	Click         float64 `mapstructure:"click"`
	View          float64 `mapstructure:"view"`
	ViewPerMinute float64 `mapstructure:"view_per_minute"`
	RatingCenter  float64 `mapstructure:"rating_center"`
	RatingScale   float64 `mapstructure:"rating_scale"`
}

// ItemKNN configures the incremental item-to-item recommender.
type ItemKNN struct {
	Window int     `mapstructure:"window"`
	Decay  float64 `mapstructure:"decay"`
}

// SR configures the sequential-rules recommender (see model.SRConfig).
type SR struct {
	Window int     `mapstructure:"window"`
	Decay  float64 `mapstructure:"decay"`
}

// SKNN configures the session-based kNN recommender (see
// model.SKNNConfig).
type SKNN struct {
	Window      int `mapstructure:"window"`
	Neighbours  int `mapstructure:"neighbours"`
	Sample      int `mapstructure:"sample"`
	MaxSessions int `mapstructure:"max_sessions"`
}

// Popularity configures the recency-weighted popularity recommender.
type Popularity struct {
	HalfLife time.Duration `mapstructure:"half_life"`
}
