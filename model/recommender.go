package model

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

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

// SessionCounter is a recommender that counts the sessions it closed: by a
// change of session id, by the idle gap (Options.IdleGap) and by the
// eviction of their user. SessionsClosed is safe to call from any
// goroutine, while another one learns (the worker's metrics read it).
type SessionCounter interface {
	SessionsClosed() int64
}

// ItemExpirer is a recommender that expires items past
// recommender.max_items (the DQN and the adaptive model). ItemsExpired is
// safe to call from any goroutine, while another one learns.
type ItemExpirer interface {
	ItemsExpired() int64
}

// UserEvicter is a recommender that counts the users it forgot: past
// recommender.max_users, idle past user_ttl, or new past max_new_users
// (the DQN and the adaptive model). UsersEvicted is safe to call from any
// goroutine, while another one learns.
type UserEvicter interface {
	UsersEvicted() int64
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

// New builds the recommender that opts.Model names, after validating opts.
func New(opts Options) (Recommender, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return Build(opts.Model, opts)
}

// Names lists the models Build knows; "pop" is short for popularity.
var Names = []string{"dqn", "dqn-small", "dqn-medium", "dqn-large", "dqn-noexperts", "dqn-nonet", "dqn-myopic", "dqn-slim", "dqn-slim-full", "dqn-slim-narrow", "adaptive", "adaptive-rl", "adaptive-heuristic", "popularity", "pop", "itemknn", "sr", "sknn"}

// FixedSizes are the hidden widths of the fixed-size DQNs the adaptive
// models are compared with.
var FixedSizes = map[string][]int{"dqn-small": {16}, "dqn-medium": {64}, "dqn-large": {256, 256}}

// Ablations are the DQN's ablation models, each the dqn options with one
// part taken out, so that anyone can check where quality comes from:
// dqn-noexperts is the network alone (no co-occurrence term, no mixture),
// dqn-nonet the experts (co-occurrence and sequential rules) with fixed,
// equal weights and no network, dqn-myopic the dqn with γ = 0 (no TD
// bootstrapping). Not ablations but the same device: dqn-slim serves each
// session at the nested width its policy picks (issue 16), dqn-slim-full
// and dqn-slim-narrow the same weights always at the full and the
// narrowest width.
var Ablations = map[string]func(*DQNConfig){
	"dqn-noexperts":   func(c *DQNConfig) { c.NoKNN, c.Mix = true, false },
	"dqn-slim":        func(c *DQNConfig) { slim(c, WidthLearned) },
	"dqn-slim-full":   func(c *DQNConfig) { slim(c, WidthFull) },
	"dqn-slim-narrow": func(c *DQNConfig) { slim(c, WidthNarrowest) },
	"dqn-nonet":       func(c *DQNConfig) { c.Mix, c.NoNet, c.MixRate = true, true, 0 },
	"dqn-myopic":      func(c *DQNConfig) { c.Gamma = 0 },
}

// Build returns a new model by name (one of Names), configured from opts
// but for opts.Model.
func Build(name string, opts Options) (Probed, error) {
	switch name {
	case "popularity", "pop":
		return NewPopularity(opts.popularity()), nil
	case "adaptive", "adaptive-rl", "adaptive-heuristic":
		ctrl := opts.Controller
		if name != "adaptive" {
			ctrl.Kind = strings.TrimPrefix(name, "adaptive-")
		}
		return NewAdaptive(opts.adaptive(), ctrl.New())
	case "dqn", "dqn-small", "dqn-medium", "dqn-large", "dqn-noexperts", "dqn-nonet", "dqn-myopic", "dqn-slim", "dqn-slim-full", "dqn-slim-narrow":
		hidden := opts.DQN.Hidden
		if w, ok := FixedSizes[name]; ok {
			hidden = w
		}
		cfg := opts.dqn(hidden)
		if ablate, ok := Ablations[name]; ok {
			ablate(&cfg)
		}
		m, err := NewDQN(cfg)
		if err != nil {
			return nil, err
		}
		m.name = name
		return m, nil
	case "itemknn":
		return NewItemKNN(opts.itemKNN()), nil
	case "sr":
		return NewSR(opts.sr()), nil
	case "sknn":
		return NewSKNN(opts.sknn()), nil
	}
	return nil, fmt.Errorf("unknown model %q (known: %s)", name, strings.Join(Names, ", "))
}

// SlimWidths are the nested widths of the dqn-slim models when
// recommender.dqn.nested is empty.
var SlimWidths = []int{16, 32}

// slim makes c serve at nested widths with the width policy p: the
// configured nested widths, or SlimWidths below Dim.
func slim(c *DQNConfig, p string) {
	if len(c.Nested) == 0 {
		for _, w := range SlimWidths {
			if w < c.Dim {
				c.Nested = append(c.Nested, w)
			}
		}
	}
	c.WidthPolicy = p
}
