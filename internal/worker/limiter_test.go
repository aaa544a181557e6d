package worker

import (
	"context"
	"runtime"
	"testing"
	"time"
)

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
	l.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a released slot did not wake the waiter")
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
	l.Release()
	if first := <-order; first != 0 {
		t.Fatalf("waiter %d served first", first)
	}
	l.Release()
	if second := <-order; second != 1 {
		t.Fatalf("waiter %d served second", second)
	}
	l.Release()
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
