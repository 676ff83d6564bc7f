package pipeline

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestBatcherFlushesOnCount(t *testing.T) {
	in := make(chan int, 10)
	for i := range 10 {
		in <- i
	}
	close(in)
	var got [][]int
	// MaxWait is long: only the count (and the final close) can flush.
	err := Batcher[int]{Size: 4, MaxWait: time.Hour}.Run(context.Background(), in, func(b []int) error {
		got = append(got, slices.Clone(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestBatcherFlushesOnTime(t *testing.T) {
	in := make(chan int)
	flushed := make(chan []int, 4)
	done := make(chan error, 1)
	go func() {
		done <- Batcher[int]{Size: 1000, MaxWait: 20 * time.Millisecond}.Run(context.Background(), in, func(b []int) error {
			flushed <- slices.Clone(b)
			return nil
		})
	}()
	in <- 1
	in <- 2
	// The size is never reached: only the timer can flush this batch.
	select {
	case b := <-flushed:
		if !slices.Equal(b, []int{1, 2}) {
			t.Fatalf("flushed %v", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timer never flushed a partial batch")
	}
	// The timer restarts with the next batch's first item.
	in <- 3
	select {
	case b := <-flushed:
		if !slices.Equal(b, []int{3}) {
			t.Fatalf("flushed %v", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timer did not restart for the second batch")
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(flushed) != 0 {
		t.Fatalf("empty batch flushed: %v", <-flushed)
	}
}

func TestBatcherStopsOnFlushError(t *testing.T) {
	in := make(chan int, 3)
	in <- 1
	in <- 2
	in <- 3
	boom := errors.New("boom")
	calls := 0
	err := Batcher[int]{Size: 1, MaxWait: time.Hour}.Run(context.Background(), in, func([]int) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}
