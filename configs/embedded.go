package configs

// Embedded configures the in-process broker's synthetic event source.
type Embedded struct {
	Source            string  `mapstructure:"source"`
	Rate              float64 `mapstructure:"rate"`
	Users             int     `mapstructure:"users"`
	Items             int     `mapstructure:"items"`
	MalformedFraction float64 `mapstructure:"malformed_fraction"`
	Seed              int64   `mapstructure:"seed"`
}

// Sim is the simulated population (pipeline/sim) of eval --sim, simulate
// and make run.
type Sim struct {
	Users       int     `mapstructure:"users"`
	Items       int     `mapstructure:"items"`
	Topics      int     `mapstructure:"topics"`
	Dim         int     `mapstructure:"dim"`
	Concurrency int     `mapstructure:"concurrency"`
	Sessions    int     `mapstructure:"sessions"`
	Drift       float64 `mapstructure:"drift"`
	ShiftProb   float64 `mapstructure:"shift_prob"`
	ShiftAt     float64 `mapstructure:"shift_at"`
	NoChoice    float64 `mapstructure:"no_choice"`
	Temperature float64 `mapstructure:"temperature"`
	PopWeight   float64 `mapstructure:"pop_weight"`
	Fatigue     float64 `mapstructure:"fatigue"`
	Patience    float64 `mapstructure:"patience"`
	MaxSteps    int     `mapstructure:"max_steps"`
	ViewProb    float64 `mapstructure:"view_prob"`
	RatingProb  float64 `mapstructure:"rating_prob"`
	Quality     float64 `mapstructure:"quality"`
	Seed        uint64  `mapstructure:"seed"`
}

// check validates embedded.*.
func (e Embedded) check(p *problems) {
	if e.Source != "sim" && e.Source != "synth" {
		p.add("embedded.source", "must be sim or synth, got %q", e.Source)
	}
	if e.Rate <= 0 {
		p.add("embedded.rate", "must be positive, got %g", e.Rate)
	}
	if e.MalformedFraction < 0 || e.MalformedFraction > 1 {
		p.add("embedded.malformed_fraction", "must be within [0, 1], got %g", e.MalformedFraction)
	}
	positive(p, map[string]int{"embedded.users": e.Users, "embedded.items": e.Items})
}
