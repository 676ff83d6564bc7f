package model

import (
	"math"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// sessionClicks are one event per item of user in session sid, a minute apart
// from minute start, at offsets from off.
func sessionClicks(user, sid string, start int, off int64, items ...string) []feedback.Located {
	var out []feedback.Located
	for k, it := range items {
		out = append(out, feedback.Located{Event: feedback.Event{UserID: user, SessionID: sid, ItemID: it, Type: feedback.Click,
			TS: t0.Add(time.Duration(start+k) * time.Minute)}, Offset: off + int64(k)})
	}
	return out
}

// scored is a list as item → score.
func scored(r Recommendation) map[string]float64 {
	m := map[string]float64{}
	for _, it := range r.Items {
		m[it.ItemID] = it.Score
	}
	return m
}

func checkList(t *testing.T, r Recommendation, want []string, scores map[string]float64) {
	t.Helper()
	if got := ids(r); len(got) != len(want) || !equalStrings(got, want) {
		t.Fatalf("%s's list %v, want %v", r.UserID, got, want)
	}
	got := scored(r)
	for it, s := range scores {
		if math.Abs(got[it]-s) > 1e-9 {
			t.Fatalf("%s's score of %s %v, want %v (list %v)", r.UserID, it, got[it], s, got)
		}
	}
}

func equalStrings(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// SR on a stream worked out by hand (window 2, decay 0.5):
//
//	u: A B C  → rules A→B 1 (gap 1), B→C 1 (gap 1), A→C 1/2 (gap 2)
//	v: A      → v's list: B 1, C 0.5 (what follows A, directional)
//	w: B A    → rule B→A 1; w's list, from A (weight 1) and B (0.5):
//	            C = 1·(A→C 0.5) + 0.5·(B→C 1) = 1; A and B consumed.
func TestSRHandComputed(t *testing.T) {
	opts := DefaultOptions()
	opts.SR.Window, opts.SR.Decay = 2, 0.5
	m := NewSR(opts.sr())
	learn(t, m, sessionClicks("u", "u", 0, 0, "A", "B", "C")...)
	out := learn(t, m, sessionClicks("v", "v", 3, 3, "A")...)
	checkList(t, out[0], []string{"B", "C"}, map[string]float64{"B": 1, "C": 0.5})
	out = learn(t, m, sessionClicks("w", "w", 4, 4, "B", "A")...)
	checkList(t, out[0], []string{"C"}, map[string]float64{"C": 1})
	if got := m.rules.nbrs[m.mustItem(t, "B")].count[0]; got != 1 {
		t.Fatalf("rule B→C %v, want 1", got)
	}
	if m.Params() != 4+3 { // rules A→B, B→C, A→C, B→A and three items
		t.Fatalf("params %d, want 7", m.Params())
	}
}

func (m *baseline) mustItem(t *testing.T, id string) int32 {
	t.Helper()
	x, ok := m.items.Lookup(id)
	if !ok {
		t.Fatalf("item %s unknown", id)
	}
	return x
}

// sknnStream is three past sessions, then q consumes A:
//
//	s1 (a): A B C    s2 (b): A D    s3 (c): E F
//
// q's query is {A}; the sessions holding A are s1 (sim 1/√3) and s2 (sim
// 1/√2, the more recent); s3 shares nothing.
func sknnStream(t *testing.T, m *SKNN) Recommendation {
	learn(t, m, sessionClicks("a", "s1", 0, 0, "A", "B", "C")...)
	learn(t, m, sessionClicks("b", "s2", 3, 3, "A", "D")...)
	learn(t, m, sessionClicks("c", "s3", 5, 5, "E", "F")...)
	return learn(t, m, sessionClicks("q", "s4", 7, 7, "A")...)[0]
}

// SKNN on sknnStream, worked out by hand: with both neighbours, D scores
// 1/√2 and B, C 1/√3 each (B before C: equal scores and counts, lower
// index first); with one neighbour (k = 1), or one candidate (the most
// recent, M = 1), only s2 scores; with room for three sessions, s1 is
// forgotten when q's session opens.
func TestSKNNHandComputed(t *testing.T) {
	r2, r3 := 1/math.Sqrt2, 1/math.Sqrt(3)
	for _, c := range []struct {
		name                         string
		neighbours, sample, sessions int
		want                         []string
		scores                       map[string]float64
	}{
		{"both", 2, 10, 100, []string{"D", "B", "C"}, map[string]float64{"D": r2, "B": r3, "C": r3}},
		{"k=1", 1, 10, 100, []string{"D", "B", "C"}, map[string]float64{"D": r2, "B": 0, "C": 0}},
		{"M=1", 1, 1, 100, []string{"D", "B", "C"}, map[string]float64{"D": r2, "B": 0, "C": 0}},
		{"3 sessions kept", 2, 10, 3, []string{"D", "B", "C"}, map[string]float64{"D": r2, "B": 0, "C": 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.TopN, opts.IdleGap = 3, 0
			opts.SKNN = SKNNConfig{Window: 3, Neighbours: c.neighbours, Sample: c.sample, MaxSessions: c.sessions}
			m := NewSKNN(opts.sknn())
			checkList(t, sknnStream(t, m), c.want, c.scores)
		})
	}
}
