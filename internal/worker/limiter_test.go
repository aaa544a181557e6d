package worker

import (
	"context"
	"testing"
	"time"
)

func TestLimiterCutsOnThrottlingAndGrowsBackSlowly(t *testing.T) {
	t.Parallel()
	l := NewLimiter(100)
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }

	l.Throttled()
	if got := l.Limit(); got != 70 {
		t.Fatalf("after a throttle: limit %d, want 70", got)
	}
	l.Throttled() // the same burst: no second cut
	if got := l.Limit(); got != 70 {
		t.Fatalf("a second throttle within the cooldown cut again: %d", got)
	}
	clock = clock.Add(2 * time.Second)
	l.Throttled()
	if got := l.Limit(); got != 49 {
		t.Fatalf("after a later throttle: limit %d, want 49", got)
	}
	// About one slot per limit's worth of successes: slowly.
	for range 2 * 49 {
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		l.Release(true)
	}
	if got := l.Limit(); got < 50 || got > 51 {
		t.Fatalf("after 98 successes at 49: limit %d, want 50 or 51", got)
	}
	for range 10000 {
		_ = l.Acquire(context.Background()) // a free slot: never waits
		l.Release(true)
	}
	if got := l.Limit(); got != 100 {
		t.Fatalf("the limit grew to %d, past or short of its maximum 100", got)
	}
	if events, cuts := l.Throttles(); events != 3 || cuts != 2 {
		t.Fatalf("%d throttles, %d cuts", events, cuts)
	}
}

func TestLimiterBlocksAtTheLimit(t *testing.T) {
	t.Parallel()
	l := NewLimiter(2)
	for range 2 {
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Acquire(ctx); err == nil {
		t.Fatal("a third slot was granted under a limit of 2")
	}
	done := make(chan error, 1)
	go func() { done <- l.Acquire(context.Background()) }()
	l.Release(true)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a released slot did not wake the waiter")
	}
	for l.Throttled(); l.Limit() != 1; {
		t.Fatalf("limit %d after a throttle at 2, want 1", l.Limit())
	}
}
