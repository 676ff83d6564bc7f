package eval_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/eval"
)

// BenchmarkSnapshot reports the size and the encode, decode and restore
// times of the default DQN's snapshot after learning ml-latest-small.
func BenchmarkSnapshot(b *testing.B) {
	events, err := eval.Load("../../../shared/data/ml-latest-small/ratings.csv", "movielens-csv")
	if err != nil {
		b.Skipf("ml-latest-small not available: %v", err)
	}
	d, err := model.NewDQN(model.DefaultDQN())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if _, err := eval.Run(context.Background(), events, d, eval.Options{Batch: 256}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var buf bytes.Buffer
		t0 := time.Now()
		if _, err := d.WriteSnapshot(&buf, model.SnapshotMeta{Version: "bench"}); err != nil {
			b.Fatal(err)
		}
		enc := time.Since(t0)
		t0 = time.Now()
		s, err := model.ReadSnapshot(bytes.NewReader(buf.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		dec := time.Since(t0)
		r, err := model.NewDQN(model.DefaultDQN())
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := r.Restore(s); err != nil {
			b.Fatal(err)
		}
		res := time.Since(t0)
		r.Close()
		b.ReportMetric(float64(buf.Len())/(1<<20), "MiB")
		b.ReportMetric(float64(enc.Microseconds())/1000, "encode_ms")
		b.ReportMetric(float64(dec.Microseconds())/1000, "decode_ms")
		b.ReportMetric(float64(res.Microseconds())/1000, "restore_ms")
		b.Logf("snapshot of the default DQN after ml-latest-small (%d items, %d parameters): %.2f MiB; encode %v, decode and verify %v, restore %v",
			s.Meta.Items, d.Params(), float64(buf.Len())/(1<<20), enc.Round(time.Millisecond), dec.Round(time.Millisecond), res.Round(time.Millisecond))
	}
}

// BenchmarkSnapshotAfterRestart reports the size of the default DQN's
// snapshot after ml-latest-small for a worker that stopped cleanly half
// way and restarted from its final snapshot: its earlier co-occurrence
// counts travel in the legacy beside its new own counts.
func BenchmarkSnapshotAfterRestart(b *testing.B) {
	events, err := eval.Load("../../../shared/data/ml-latest-small/ratings.csv", "movielens-csv")
	if err != nil {
		b.Skipf("ml-latest-small not available: %v", err)
	}
	for b.Loop() {
		first, err := model.NewDQN(model.DefaultDQN())
		if err != nil {
			b.Fatal(err)
		}
		first.SetReplica("worker")
		half := len(events) / 2
		if _, err := eval.Run(context.Background(), events[:half], first, eval.Options{Batch: 256}); err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := first.WriteSnapshot(&buf, model.SnapshotMeta{Version: "bench", Replica: "worker", Final: true}); err != nil {
			b.Fatal(err)
		}
		first.Close()
		s, err := model.ReadSnapshot(&buf)
		if err != nil {
			b.Fatal(err)
		}
		again, err := model.NewDQN(model.DefaultDQN())
		if err != nil {
			b.Fatal(err)
		}
		again.SetReplica("worker")
		if err := again.Restore(s); err != nil {
			b.Fatal(err)
		}
		if _, err := eval.Run(context.Background(), events[half:], again, eval.Options{Batch: 256}); err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		if _, err := again.WriteSnapshot(&buf, model.SnapshotMeta{Version: "bench", Replica: "worker"}); err != nil {
			b.Fatal(err)
		}
		again.Close()
		b.ReportMetric(float64(buf.Len())/(1<<20), "MiB")
		b.Logf("snapshot of the default DQN after ml-latest-small, restarted half way: %.2f MiB", float64(buf.Len())/(1<<20))
	}
}
