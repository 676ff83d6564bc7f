package wire_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/adaptrec/adaptrec/configs"
	"github.com/adaptrec/adaptrec/configs/wire"
	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/session"
)

// TestBadModelFixtures loads the fixtures of the recommender.* keys the
// way the binary does: the model validates its options, and the error
// names the config key.
func TestBadModelFixtures(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "config", "model")
	tests := []struct {
		file string
		want string
	}{
		{"model.bad.yaml", `recommender.model: must be one of dqn, adaptive, popularity, itemknn, sr, sknn, got "magic"`},
		{"top-n.bad.yaml", `recommender.top_n: must be at most 1000, got 1001`},
		{"popularity-half-life.bad.yaml", `recommender.popularity.half_life: must be a positive duration, got 0s`},
		{"itemknn-decay.bad.yaml", `recommender.itemknn.decay: must be within (0, 1], got 1.5`},
		{"sr-decay.bad.yaml", `recommender.sr.decay: must be within (0, 1], got 0`},
		{"sknn-neighbours.bad.yaml", `recommender.sknn.neighbours: must be at most sample (500), got 600`},
		{"sknn-max-sessions.bad.yaml", `recommender.sknn.max_sessions: must be positive, got 0`},
		{"dqn-hidden.bad.yaml", `recommender.dqn.hidden: widths must be within 1..4096, got [64 5000]`},
		{"dqn-window.bad.yaml", `recommender.dqn.window: must be at most 32, got 33`},
		{"dqn-n-step.bad.yaml", `recommender.dqn.n_step: must be within [0, 64] (0 and 1: one-step), got 65`},
		{"dqn-row-negatives.bad.yaml", `recommender.dqn.row_negatives: hard_negatives + row_negatives must be at most 64, got 68`},
		{"dqn-mix-every.bad.yaml", `recommender.dqn.mix_every: must be positive, got 0`},
		{"dqn-mix-learn.bad.yaml", `recommender.dqn.mix_learn: must not be negative, got -1`},
		{"dqn-trend-half-life.bad.yaml", `recommender.dqn.trend_half_life: must not be negative, got -5`},
		{"adaptive-controller.bad.yaml", `recommender.adaptive.controller: must be rl or heuristic, got "oracle"`},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			_, err := wire.Load(configs.LoadOptions{File: filepath.Join(dir, tt.file)})
			if err == nil {
				t.Fatalf("Load accepted a bad config")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	all, _ := filepath.Glob(filepath.Join(dir, "*.bad.yaml"))
	for _, f := range all {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no expected error in the table", f)
		}
	}
}

// TestDefaultsAgree checks that the defaults file and the defaults the
// model and session packages declare are the same values.
func TestDefaultsAgree(t *testing.T) {
	cfg := configs.Default()
	if err := wire.Check(cfg); err != nil {
		t.Fatalf("the defaults file is invalid: %v", err)
	}
	if got, want := wire.ModelOptions(cfg), model.DefaultOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("recommender.* of adaptrec.yaml differ from model.DefaultOptions():\nfile:  %+v\nmodel: %+v", got, want)
	}
	if got, want := wire.Session(cfg.Session), session.DefaultOptions(); got != want {
		t.Errorf("session.* of adaptrec.yaml differ from session.DefaultOptions(): file %+v, session %+v", got, want)
	}
}

// TestModelBuildsEveryName builds every model eval knows from the defaults.
func TestModelBuildsEveryName(t *testing.T) {
	cfg := configs.Default()
	for _, name := range model.Names {
		m, err := wire.Build(name, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c, ok := m.(interface{ Close() }); ok {
			c.Close()
		}
	}
	cfg.Recommender.Model = "itemknn"
	if m, err := wire.Model(cfg); err != nil || m.Name() != "itemknn" {
		t.Fatalf("Model built %v, %v; want itemknn", m, err)
	}
}
