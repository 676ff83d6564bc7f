package sim

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSimulator is the population's own speed: events per second
// generated against the random policy (no oracle), so that the simulator
// is never what limits a benchmark of the worker.
func BenchmarkSimulator(b *testing.B) {
	for b.Loop() {
		s, err := New(Default())
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		r, err := Run(context.Background(), s, NewRandom(10, 1), nil)
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(t0)
		b.ReportMetric(float64(r.Events)/el.Seconds(), "events/s")
		b.Logf("%d events, %d sessions in %v: %.0f events/s", r.Events, r.Sessions, el.Round(time.Millisecond), float64(r.Events)/el.Seconds())
	}
}
