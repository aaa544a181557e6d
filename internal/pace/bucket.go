package pace

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket that serves its waiters in order: a request
// goes when a token is there, tokens come at rate a second, and at most
// burst of them gather. It has two lines: requests of calls under way
// (retries, parts, the end of a multipart copy) go before keys not yet
// started, which would otherwise queue them behind a worker's whole
// backlog. Safe for concurrent use.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens a second; > 0
	burst  float64 // ≥ 1
	tokens float64
	at     time.Time // when tokens was last brought up to date
	// urgent and waiters are closed when granted, each first come first
	// served, urgent first.
	urgent, waiters []chan struct{}
	timer           *time.Timer // set while a grant is scheduled
	lastWait        time.Time   // when a request last had to wait
}

// burstTime is how much of its rate a bucket lets go at once: small, so
// that a fleet's sum of buckets stays close to one smooth rate.
const burstTime = 50 * time.Millisecond

// whole is a token, give or take the float arithmetic of a refill timed
// to make exactly one.
const whole = 1 - 1e-9

func newBucket(rate float64, now time.Time) *bucket {
	b := &bucket{at: now}
	b.setLocked(rate, now)
	b.tokens = 1
	return b
}

// refill brings tokens up to now; the caller holds mu.
func (b *bucket) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
		b.at = now
	}
}

// Set changes the rate from now on.
func (b *bucket) Set(rate float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.refill(now)
	b.setLocked(rate, now)
	if b.timer != nil && b.timer.Stop() {
		b.timer = nil
		b.schedule(now)
	}
}

func (b *bucket) setLocked(rate float64, now time.Time) {
	b.rate = max(rate, minLocal)
	b.burst = max(1, b.rate*burstTime.Seconds())
	b.tokens = min(b.tokens, b.burst)
	b.at = now
}

// Rate is the current rate.
func (b *bucket) Rate() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate
}

// Wait takes a token, waiting in turn for one; urgent requests (of calls
// under way) are served before the others.
func (b *bucket) Wait(ctx context.Context, urgent bool) error {
	b.mu.Lock()
	now := time.Now()
	b.refill(now)
	if len(b.urgent) == 0 && (urgent || len(b.waiters) == 0) && b.tokens >= whole {
		b.tokens--
		b.mu.Unlock()
		return nil
	}
	b.lastWait = now
	ch := make(chan struct{})
	line := &b.waiters
	if urgent {
		line = &b.urgent
	}
	*line = append(*line, ch)
	b.schedule(now)
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		for i, w := range *line {
			if w == ch {
				*line = append((*line)[:i], (*line)[i+1:]...)
				return ctx.Err()
			}
		}
		b.tokens++ // granted as ctx ended: the token is not spent
		return ctx.Err()
	}
}

// queued is how many wait; the caller holds mu.
func (b *bucket) queued() int { return len(b.urgent) + len(b.waiters) }

// schedule arms the timer for the next grant; the caller holds mu.
func (b *bucket) schedule(now time.Time) {
	if b.timer != nil || b.queued() == 0 {
		return
	}
	wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	b.timer = time.AfterFunc(max(wait, 0), b.grant)
}

// grant hands the tokens there are to the first waiters, urgent first.
func (b *bucket) grant() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timer = nil
	now := time.Now()
	b.refill(now)
	for _, line := range []*[]chan struct{}{&b.urgent, &b.waiters} {
		for len(*line) > 0 && b.tokens >= whole {
			b.tokens--
			close((*line)[0])
			*line = (*line)[1:]
		}
	}
	b.schedule(now)
}

// WaitedSince reports whether a request had to wait since t: the demand
// was at the rate then.
func (b *bucket) WaitedSince(t time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued() > 0 || b.lastWait.After(t)
}
