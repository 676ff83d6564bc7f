package model

import (
	"strings"
	"testing"
)

// TestOptionsValidateNamesTheOption checks that the model refuses its
// own bad options, naming each by its key in the recommender section.
func TestOptionsValidateNamesTheOption(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("the default options are invalid: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Options)
		option string
	}{
		{"model", func(o *Options) { o.Model = "magic" }, "model"},
		{"top_n", func(o *Options) { o.TopN = 0 }, "top_n"},
		{"max_items", func(o *Options) { o.MaxItems = -1 }, "max_items"},
		{"max_new_users", func(o *Options) { o.MaxNewUsers = -1 }, "max_new_users"},
		{"max_new_users without compact users", func(o *Options) { o.MaxNewUsers, o.CompactUsers = 10, false }, "max_new_users"},
		{"adaptive max_new_users", func(o *Options) { o.Adaptive.MaxNewUsers = -1 }, "adaptive.max_new_users"},
		{"window", func(o *Options) { o.DQN.Window = maxWindow + 1 }, "dqn.window"},
		{"bias_lr", func(o *Options) { o.DQN.BiasLR = -1 }, "dqn.bias_lr"},
		{"context_negatives", func(o *Options) { o.DQN.ContextNegatives = -1 }, "dqn.context_negatives"},
		{"context_lr", func(o *Options) { o.DQN.ContextNegatives, o.DQN.ContextLR = 4, 0 }, "dqn.context_lr"},
		{"per-row negatives", func(o *Options) { o.DQN.RowUniform = maxHard + 1 }, "dqn.row_negatives"},
		{"mixture memory", func(o *Options) { o.DQN.MixMemory = 1 }, "dqn.mix_memory"},
		{"sequential rules decay", func(o *Options) { o.DQN.SRDecay = 0 }, "dqn.sr_decay"},
		{"trending half-life", func(o *Options) { o.DQN.TrendHalfLife = -1 }, "dqn.trend_half_life"},
		{"rating scale", func(o *Options) { o.DQN.Reward.RatingScale = 0 }, "dqn.reward.rating_scale"},
		{"itemknn", func(o *Options) { o.ItemKNN.Window = 0 }, "itemknn.window"},
		{"width bounds", func(o *Options) { o.Adaptive.Bounds.MaxWidth = 4 }, "adaptive.max_width"},
		{"controller", func(o *Options) { o.Controller.Kind = "oracle" }, "adaptive.controller"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			tt.change(&o)
			errs := OptionErrors(o.Validate())
			if len(errs) != 1 || errs[0].Option != tt.option {
				t.Fatalf("Validate reported %v, want one error of option %s", errs, tt.option)
			}
			if _, err := New(o); err == nil || !strings.HasPrefix(err.Error(), tt.option+": ") {
				t.Fatalf("New returned %v, want the error of %s", err, tt.option)
			}
		})
	}
}

// TestNewDQNValidates checks that the DQN refuses options it cannot
// honour however it is built.
func TestNewDQNValidates(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Window = maxWindow + 1
	if _, err := NewDQN(cfg); err == nil || !strings.Contains(err.Error(), "window: must be at most 32") {
		t.Fatalf("NewDQN with window %d returned %v", cfg.Window, err)
	}
}
