package worker

import (
	"context"
	"sync"
	"time"
)

// Limiter is the worker's adaptive concurrency limit (additive increase,
// multiplicative decrease): a throttling answer from S3 (503 SlowDown) cuts
// the limit to 70%, at most once a second so that one burst of throttling
// counts once; each success adds 1/limit, about one slot per limit's worth of
// successes, up to the maximum. Safe for concurrent use.
type Limiter struct {
	mu      sync.Mutex
	changed chan struct{}
	limit   float64
	max     float64
	inUse   int
	lastCut time.Time
	now     func() time.Time
	cuts    int64
	events  int64
}

// Limiter tuning.
const (
	cutFactor   = 0.7
	cutCooldown = time.Second
	minLimit    = 1
)

// NewLimiter returns a limit starting at, and never above, max.
func NewLimiter(max int) *Limiter {
	return &Limiter{changed: make(chan struct{}), limit: float64(max), max: float64(max), now: time.Now}
}

// Acquire waits for a slot under the current limit.
func (l *Limiter) Acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.inUse < int(l.limit) {
			l.inUse++
			l.mu.Unlock()
			return nil
		}
		wait := l.changed
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Release returns a slot; ok says whether its request succeeded.
func (l *Limiter) Release(ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse--
	if ok && l.limit < l.max {
		l.limit = min(l.max, l.limit+1/l.limit)
	}
	l.notify()
}

// Throttled records a throttling answer.
func (l *Limiter) Throttled() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events++
	now := l.now()
	if now.Sub(l.lastCut) < cutCooldown {
		return
	}
	l.lastCut = now
	l.cuts++
	l.limit = max(minLimit, l.limit*cutFactor)
	l.notify()
}

// notify wakes waiters; the caller holds mu.
func (l *Limiter) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Limit is the current limit.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.limit)
}

// Throttles returns how many throttling answers were seen and how many times
// the limit was cut.
func (l *Limiter) Throttles() (events, cuts int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events, l.cuts
}
