package model

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// BenchmarkProbeRank is one prequential rank (state, Q of every item,
// rank of the chosen one) over 10,000 items, alone and paired with a
// reference network as the adaptive model's quality signal does it.
func BenchmarkProbeRank(b *testing.B) {
	cfg := DefaultDQN()
	cfg.Rows = 64
	d := newDQN(b, cfg)
	var evs []feedback.Located
	for i := range 20_000 {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%500), SessionID: "s", ItemID: fmt.Sprint("i", (i*7919)%10_000), Type: feedback.Click, TS: time.Unix(int64(i), 0)}})
	}
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
