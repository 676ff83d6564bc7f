package pipeline

import (
	"context"
	"time"
)

// Batcher groups a stream into batches by count or time, whichever comes
// first, with one timer that starts when a batch receives its first item.
type Batcher[T any] struct {
	Size    int
	MaxWait time.Duration
	// OnIdle, if set, is called every Idle while no item arrives and no
	// batch is open.
	Idle   time.Duration
	OnIdle func() error
}

// Run reads in until it is closed, calling flush with each batch in order; a
// closed input flushes what is left, then Run returns nil. The slice given to
// flush is reused once flush returns. An error from flush stops Run and is
// returned. ctx cancellation also stops Run, without flushing: the caller
// drains by closing in instead.
func (b Batcher[T]) Run(ctx context.Context, in <-chan T, flush func([]T) error) error {
	buf := make([]T, 0, b.Size)
	timer := time.NewTimer(b.MaxWait)
	timer.Stop()
	var idle <-chan time.Time
	if b.OnIdle != nil && b.Idle > 0 {
		t := time.NewTicker(b.Idle)
		defer t.Stop()
		idle = t.C
	}
	active := false // an item arrived since the last tick
	emit := func() error {
		timer.Stop()
		if len(buf) == 0 {
			return nil
		}
		err := flush(buf)
		clear(buf)
		buf = buf[:0]
		return err
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case x, ok := <-in:
			if !ok {
				return emit()
			}
			active = true
			buf = append(buf, x)
			if len(buf) == 1 {
				timer.Reset(b.MaxWait)
			}
			if len(buf) >= b.Size {
				if err := emit(); err != nil {
					return err
				}
			}
		case <-timer.C:
			if err := emit(); err != nil {
				return err
			}
		case <-idle:
			if active || len(buf) > 0 {
				active = false
				continue
			}
			if err := b.OnIdle(); err != nil {
				return err
			}
		}
	}
}
