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
	waiters []chan struct{} // first come, first served; closed when granted
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
	return &Limiter{limit: float64(max), max: float64(max), now: time.Now}
}

// Acquire waits for a slot under the current limit. Waiters are served in
// order, one per freed slot.
func (l *Limiter) Acquire(ctx context.Context) error {
	l.mu.Lock()
	if len(l.waiters) == 0 && l.inUse < int(l.limit) {
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

// Release returns a slot; ok says whether its request succeeded.
func (l *Limiter) Release(ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse--
	if ok && l.limit < l.max {
		l.limit = min(l.max, l.limit+1/l.limit)
	}
	l.grant()
}

// grant gives free slots to the first waiters; the caller holds mu.
func (l *Limiter) grant() {
	for len(l.waiters) > 0 && l.inUse < int(l.limit) {
		l.inUse++
		close(l.waiters[0])
		l.waiters = l.waiters[1:]
	}
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
}

// InUse is how many slots are taken: the requests in flight.
func (l *Limiter) InUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inUse
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
