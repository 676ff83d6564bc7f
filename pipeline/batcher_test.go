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

func TestBatcherCallsOnIdleOnlyWhenIdle(t *testing.T) {
	in := make(chan int)
	idles := make(chan int, 100)
	flushed := 0
	done := make(chan error, 1)
	go func() {
		done <- Batcher[int]{Size: 100, MaxWait: time.Hour, Idle: 5 * time.Millisecond, OnIdle: func() error {
			idles <- flushed
			return nil
		}}.Run(context.Background(), in, func(b []int) error { flushed += len(b); return nil })
	}()
	<-idles // idle from the start
	in <- 1 // opens a batch that only the close flushes: no idle call meanwhile
	deadline := time.After(50 * time.Millisecond)
	drain := true
	for drain {
		select {
		case <-idles: // calls queued before the item arrived
		case <-deadline:
			drain = false
		}
	}
	select {
	case n := <-idles:
		t.Fatalf("OnIdle called with a batch open (%d flushed)", n)
	default:
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	err := Batcher[int]{Size: 1, MaxWait: time.Hour, Idle: time.Millisecond, OnIdle: func() error { return stop }}.Run(context.Background(), make(chan int), func([]int) error { return nil })
	if !errors.Is(err, stop) {
		t.Fatalf("OnIdle's error not returned: %v", err)
	}
}
