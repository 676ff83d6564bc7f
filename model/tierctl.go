package model

import (
	"fmt"
	"slices"
)

// The architecture controller acts on the item tables too (issue 16): its
// tier actions scale the interaction counts at which an item's embedding
// moves up a tier, and every row is moved to the tier its item's evidence
// now earns, narrowed (its prefix kept) or widened (Net2Net-like, the new
// values near 0). The reward prices the parameters this adds or frees.

// Bounds of the first tier threshold the tier actions keep within.
const (
	minTierAt = 1
	maxTierAt = 1 << 20
)

// movedRow is an item's row as it was before a tier action moved it.
type movedRow struct {
	x   int32
	old []float32
}

// tierActions are the tier actions allowed now: none without tiers.
func (d *DQN) tierActions() []Action {
	if d.tab == nil {
		return nil
	}
	var acts []Action
	if d.tierAt[0]*2 <= maxTierAt {
		acts = append(acts, Action{Kind: TiersNarrower})
	}
	if d.tierAt[0]/2 >= minTierAt {
		acts = append(acts, Action{Kind: TiersWider})
	}
	return acts
}

// scaleTiers doubles (TiersNarrower) or halves (TiersWider) the tier
// thresholds and moves every row to its tier under them; it returns the
// rows moved, as they were.
func (d *DQN) scaleTiers(kind ActionKind) ([]movedRow, error) {
	if d.tab == nil {
		return nil, fmt.Errorf("architecture action %s: the item tables have no tiers (recommender.dqn.tiers)", kind)
	}
	f := 2.0
	if kind == TiersWider {
		f = 0.5
	}
	at := slices.Clone(d.tierAt)
	for i := range at {
		at[i] *= f
	}
	if at[0] < minTierAt || at[0] > maxTierAt {
		return nil, fmt.Errorf("architecture action %s: the first tier threshold %g would leave [%d, %d]", kind, at[0], minTierAt, maxTierAt)
	}
	return d.setTierAt(at), nil
}

// setTierAt makes at the tier thresholds and moves every row to the tier
// its item's interactions earn under them, returning the rows moved as
// they were.
func (d *DQN) setTierAt(at []float64) []movedRow {
	d.tierAt = slices.Clone(at)
	var moved []movedRow
	for x := range int32(d.tab.len()) {
		if to := d.tierOf(d.co.count[x]); to != int(d.tab.tier[x]) {
			moved = append(moved, movedRow{x: x, old: slices.Clone(d.tab.row(x))})
			d.tab.move(x, to, widenSigma, d.rng)
		}
	}
	return moved
}

// TierAt is the tier thresholds now (nil without tiers).
func (d *DQN) TierAt() []float64 { return slices.Clone(d.tierAt) }

// refScores corrects d.scores, the scores of the reference network's q
// (its prefix at the list's width) for the pending decision, for the rows a tier action moved: each is scored
// with its row as it was, so the paired quality gain of a tier action is
// that of the rows it changed.
func (d *DQN) refScores(q []float32, moved []movedRow) {
	for _, m := range moved {
		if int(m.x) >= len(d.scores) {
			continue
		}
		d.scores[m.x] += float64(prefixDot(q, m.old) - prefixDot(q, d.erow(m.x)))
	}
}

// TierParams is the parameters each tier's rows hold, by width (nil
// without tiers).
func (d *DQN) TierParams() (widths, params []int) {
	if d.tab == nil {
		return nil, nil
	}
	for t, w := range d.tab.widths {
		widths, params = append(widths, w), append(params, len(d.tab.data[t]))
	}
	return widths, params
}

// prefixDot is the dot product of q and row over the shorter of the two.
func prefixDot(q, row []float32) float32 {
	var s float32
	for j, v := range row[:min(len(q), len(row))] {
		s += q[j] * v
	}
	return s
}
