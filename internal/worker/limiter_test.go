package worker

import (
	"context"
	"runtime"
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

func TestLimiterWaitersGiveUpAndQueueInOrder(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A waiter that gives up leaves no slot taken.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Acquire(ctx); err == nil {
		t.Fatal("acquired past the limit")
	}
	// Two waiters are served in the order they came.
	order := make(chan int, 2)
	for i := range 2 {
		go func() {
			if err := l.Acquire(context.Background()); err == nil {
				order <- i
			}
		}()
		waitForWaiters(t, l, i+1) // waiter i is queued before the next comes
	}
	l.Release(true)
	if first := <-order; first != 0 {
		t.Fatalf("waiter %d served first", first)
	}
	l.Release(true)
	if second := <-order; second != 1 {
		t.Fatalf("waiter %d served second", second)
	}
	l.Release(true)
	if err := l.Acquire(context.Background()); err != nil { // nothing leaked
		t.Fatal(err)
	}
}

// waitForWaiters waits until n callers are queued in l.
func waitForWaiters(t *testing.T, l *Limiter, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; runtime.Gosched() {
		l.mu.Lock()
		queued := len(l.waiters)
		l.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters queued, want %d", queued, n)
		}
	}
}
