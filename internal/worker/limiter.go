package worker

import (
	"context"
	"sync"
)

// Limiter bounds the copies in flight: a slot per copy, granted to waiters
// in the order they came. Throttling does not change it: S3's limit is a
// rate per prefix, which the pacer (pace.Pacer) keeps, and a key waits for
// its prefix's rate before it takes a slot. Safe for concurrent use.
type Limiter struct {
	mu      sync.Mutex
	waiters []chan struct{} // first come, first served; closed when granted
	limit   int
	inUse   int
}

// NewLimiter returns a limit of n slots.
func NewLimiter(n int) *Limiter {
	return &Limiter{limit: max(n, 1)}
}

// Acquire waits for a slot. Waiters are served in order, one per freed slot.
func (l *Limiter) Acquire(ctx context.Context) error {
	l.mu.Lock()
	if len(l.waiters) == 0 && l.inUse < l.limit {
		l.inUse++
		l.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ch {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return ctx.Err()
			}
		}
		// Granted as ctx ended: hand the slot on.
		l.inUse--
		l.grant()
		return ctx.Err()
	}
}

// Release returns a slot.
func (l *Limiter) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse--
	l.grant()
}

// grant gives free slots to the first waiters; the caller holds mu.
func (l *Limiter) grant() {
	for len(l.waiters) > 0 && l.inUse < l.limit {
		l.inUse++
		close(l.waiters[0])
		l.waiters = l.waiters[1:]
	}
}

// InUse is how many slots are taken: the requests in flight.
func (l *Limiter) InUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inUse
}

// Limit is the number of slots.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}
