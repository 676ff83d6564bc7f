package feedback

import (
	"testing"
	"time"
)

func TestBatchRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 28, 10, 0, 0, 123000, time.UTC)
	in := []Located{
		{Event: Event{EventID: "e1", UserID: "u1", SessionID: "s1", ItemID: "i1", Type: Rating, Value: 4, HasValue: true, TS: ts, RecID: "r1", Position: 2, HasPos: true}, Partition: 3, Offset: 17, KafkaTime: ts.Add(time.Second)},
		{Event: Event{UserID: "u2", SessionID: "u2@1", ItemID: "i2", Type: Click, TS: ts}, Partition: 0, Offset: 0, KafkaTime: ts},
	}
	b := NewBuilder(nil)
	defer b.Release()
	for round := range 2 { // the builder is reusable
		for _, e := range in {
			b.Append(e)
		}
		batch := b.NewBatch()
		if batch.Len() != len(in) {
			t.Fatalf("round %d: len %d", round, batch.Len())
		}
		for i, want := range in {
			got := batch.Event(i)
			if !got.TS.Equal(want.TS) || !got.KafkaTime.Equal(want.KafkaTime) {
				t.Fatalf("times: got %v %v want %v %v", got.TS, got.KafkaTime, want.TS, want.KafkaTime)
			}
			got.TS, got.KafkaTime, want.TS, want.KafkaTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if got != want {
				t.Fatalf("row %d: got %+v want %+v", i, got, want)
			}
		}
		batch.Release()
	}
}
