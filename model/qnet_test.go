package model

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// The training step (the kernel that runs the gorgonia graph's loss, see
// TestKernelMatchesGraph) and the plain-Go serving path compute the same
// Q(s, a) from the same weights.
func TestGraphMatchesServingForward(t *testing.T) {
	cfg := DefaultDQN()
	cfg.Rows, cfg.Hidden = 8, []int{16, 12}
	d := newDQN(t, cfg)
	var evs []feedback.Located
	for i := range 64 {
		evs = append(evs, feedback.Located{Event: feedback.Event{UserID: fmt.Sprint("u", i%5), SessionID: "s", ItemID: fmt.Sprint("i", i%13), Type: feedback.Type(1 + i%3), Value: 4, HasValue: true, TS: time.Unix(int64(i), 0)}})
	}
	b := feedback.BatchOf(evs...)
	defer b.Release()
	if _, err := d.Learn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	rows := append([]transition(nil), d.replay[20:20+cfg.Rows]...)
	want := make([]float32, len(rows))
	for r, tr := range rows {
		recent := tr.recent[:tr.n]
		d.features(recent, tr.types[:tr.n], d.x)
		alpha := d.net.forward(d.x, d.q, &d.scr)
		want[r] = d.qOf(d.q, alpha, recent, tr.pos)
	}
	if err := d.step(rows); err != nil {
		t.Fatal(err)
	}
	got := d.kernel.qpos
	for r := range want {
		if math.Abs(float64(got[r]-want[r])) > 1e-4*max(1, math.Abs(float64(want[r]))) {
			t.Fatalf("row %d: training Q %v, serving Q %v", r, got[r], want[r])
		}
	}
}

// TestModelsBuildTheirGraphsAtOnce: two models building their training
// graphs at the same time, as two workers of one process restoring
// snapshots together do, share none of gorgonia's globals unguarded. Under
// -race this fails without gorgoniaMu (gorgonia numbers node groups from
// a global counter).
func TestModelsBuildTheirGraphsAtOnce(t *testing.T) {
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			d, err := NewDQN(DefaultDQN())
			if err == nil {
				err = d.rebuild()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("model %d: %v", i, err)
		}
	}
}
