package model

import (
	"context"
	"testing"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// BenchmarkProbeRank is one prequential rank (state, Q of every item,
// rank of the chosen one) over 10,000 items, alone and paired with a
// reference network as the adaptive model's quality signal does it.
func BenchmarkProbeRank(b *testing.B) {
	cfg := DefaultDQN()
	cfg.Rows = 64
	d := newDQN(b, cfg)
	evs := clicks(0, 20_000, 500, func(i int) int { return (i * 7919) % 10_000 })
	for lo := 0; lo < len(evs); lo += 2000 {
		batch := feedback.BatchOf(evs[lo : lo+2000]...)
		if _, err := d.Learn(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		batch.Release()
	}
	u, _ := d.users.Lookup("u7")
	ref := d.net.clone()
	b.Run("single", func(b *testing.B) {
		for b.Loop() {
			d.scoreAll(u)
			_ = order{score: d.scores}.rank(3, u.Consumed)
		}
	})
	b.Run("paired", func(b *testing.B) {
		for b.Loop() {
			d.rankPair(ref, u, 3)
		}
	})
}
