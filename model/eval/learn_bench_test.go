package eval_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/eval"
	"github.com/adaptrec/adaptrec/model/session"
)

// BenchmarkLearn reports the events/s of the default DQN learning
// ml-latest-small in batches of 256 made by the worker's assembler
// (sessions, then learning, the mixture's checks and serving every
// touched user), in-process: the model's share of the worker's end-to-end
// rate, without Kafka. One iteration is the whole log from a fresh model;
// heap_MB is the live heap the model holds after it (after a GC).
func BenchmarkLearn(b *testing.B) {
	events, err := eval.Load("../../../shared/data/ml-latest-small/ratings.csv", "movielens-csv")
	if err != nil {
		b.Skipf("ml-latest-small not available: %v", err)
	}
	ctx := context.Background()
	var heap int64
	for b.Loop() {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d, err := model.NewDQN(model.DefaultDQN())
		if err != nil {
			b.Fatal(err)
		}
		asm := session.NewAssembler(session.DefaultOptions())
		b.StartTimer()
		for i, e := range events {
			asm.Add(e, 0, int64(i), e.TS)
			if asm.Len() == 256 || i == len(events)-1 {
				batch := asm.Flush()
				if _, err := d.Learn(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch.Release()
			}
		}
		b.StopTimer()
		asm.Release()
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		d.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(heap)/1e6, "heap_MB")
}
