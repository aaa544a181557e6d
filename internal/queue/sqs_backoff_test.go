package queue

import (
	"testing"
	"time"
)

// TestBackoffGrowsWithJitter: each wait lies in [d/2, d] of an exponential
// d capped at 10s, and waits of one attempt differ (jitter).
func TestBackoffGrowsWithJitter(t *testing.T) {
	for attempt := range 12 {
		d := min(50*time.Millisecond<<min(attempt, 8), 10*time.Second)
		seen := map[time.Duration]bool{}
		for range 50 {
			w := backoff(attempt)
			if w < d/2 || w > d {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, w, d/2, d)
			}
			seen[w] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) always %v: no jitter", attempt, seen)
		}
	}
}
