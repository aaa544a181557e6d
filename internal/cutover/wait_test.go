package cutover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/status"
)

// fakeReader is a run's ledger as a wait reads it: each Refresh calls
// refreshFn, which may add entries to the tally or fail.
type fakeReader struct {
	mu        sync.Mutex
	tally     *ledger.Tally
	refreshes int
	refreshFn func(n int, t *ledger.Tally) error
}

func (r *fakeReader) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshes++
	if r.refreshFn == nil {
		return nil
	}
	return r.refreshFn(r.refreshes, r.tally)
}

func (r *fakeReader) Tally() *ledger.Tally { return r.tally }

// sentRun is a tally of a plan that ended having sent messages 1 to n.
func sentRun(n int64) *ledger.Tally {
	t := ledger.NewTally()
	t.SetRun(ledger.Run{ID: "R", Started: time.Now(), Ended: time.Now()})
	t.AddSent(ledger.Sent{Seqs: []ledger.Range{{1, n}}, Totals: ledger.Totals{Messages: n, Objects: n}})
	return t
}

// finish adds an entry of message seq to t.
func finish(t *ledger.Tally, seq int64) {
	t.AddSummary(ledger.Summary{Key: fmt.Sprint("entry-", seq), Journal: "j", Seq: seq, Copied: 1, Finished: time.Now()})
}

// spillOf is a spill that sent messages 1 to n.
func spillOf(t *testing.T, n int64) *spill {
	s := newTestSpill(t)
	var batch []plan.Body
	for seq := int64(1); seq <= n; seq++ {
		batch = append(batch, body(t, seq, plan.OpCopy, fmt.Sprint("a/", seq)))
	}
	if err := s.add(batch); err != nil {
		t.Fatal(err)
	}
	return s
}

// queueOf is a queue's depth: visible, in flight, and dead letters (-1:
// no dead-letter queue).
func queueOf(visible, inFlight, dead int64) depthFunc {
	return func(context.Context) *status.Depth {
		d := &status.Depth{Visible: visible, InFlight: inFlight}
		if dead >= 0 {
			d.DeadLettered = &dead
		}
		return d
	}
}

// bounded is a context a wait that should end by itself ends well within.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWaitForFleetEndsWhenTheTallySaysDone(t *testing.T) {
	t.Parallel()
	r := &fakeReader{tally: sentRun(2), refreshFn: func(n int, t *ledger.Tally) error {
		switch n {
		case 2:
			finish(t, 1)
		case 5:
			finish(t, 2)
		}
		return nil
	}}
	st, err := testPace().waitForFleet(bounded(t), r, spillOf(t, 2), idleQueue, 0, 0, zerolog.Nop())
	if err != nil || !st.Complete || st.Done != 2 || r.refreshes != 5 {
		t.Errorf("status %+v after %d readings, err %v: want complete at the fifth", st, r.refreshes, err)
	}
}

// TestWaitForFleetWaitsForWhatItSent: the ledger may say a run is complete
// while a message the cutover sent (its sent record lost) has no entry.
func TestWaitForFleetWaitsForWhatItSent(t *testing.T) {
	t.Parallel()
	tally := sentRun(2)
	finish(tally, 1)
	finish(tally, 2)
	st, err := testPace().waitForFleet(bounded(t), &fakeReader{tally: tally}, spillOf(t, 3), idleQueue, 0, 100*time.Millisecond, zerolog.Nop())
	if err == nil || err.Error() != "gave up waiting after --timeout 100ms: 2 of 2 messages done" {
		t.Errorf("err %v, want the timeout", err)
	}
	if !st.Complete {
		t.Errorf("status %+v: the ledger's run was complete", st)
	}
}

func TestWaitForFleetStopsWhenTheRunCannotFinish(t *testing.T) {
	t.Parallel()
	r := &fakeReader{tally: sentRun(3), refreshFn: func(n int, t *ledger.Tally) error {
		if n == 1 {
			finish(t, 1)
		}
		return nil
	}}
	started := time.Now()
	st, err := testPace().waitForFleet(bounded(t), r, spillOf(t, 3), queueOf(0, 0, 7), 5, 0, zerolog.Nop())
	want := "with 2 more messages in its dead-letter queue than before the plan: fix what the workers' log says, then planner redrive"
	if err == nil || !strings.HasPrefix(err.Error(), "the work queue has been empty for ") || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("err %v, want the stall", err)
	}
	if st.Done != 1 || st.Sent != 3 {
		t.Errorf("status %+v, want 1 of 3 done", st)
	}
	if took := time.Since(started); took < testPace().stallFor {
		t.Errorf("gave up after %s, before the queues looked stalled for %s", took, testPace().stallFor)
	}
}

// TestWaitForFleetWaitsWhileTheQueueMayFinish: no stall while messages
// wait or are in flight, while the dead letters are no more than before
// the plan, or while the queues cannot be read: the wait goes on until its
// timeout.
func TestWaitForFleetWaitsWhileTheQueueMayFinish(t *testing.T) {
	t.Parallel()
	for name, depth := range map[string]depthFunc{
		"visible":        queueOf(4, 0, 9),
		"in flight":      queueOf(0, 2, 9),
		"old letters":    queueOf(0, 0, 5),
		"no dead letter": queueOf(0, 0, -1),
		"unreadable":     func(context.Context) *status.Depth { return &status.Depth{Error: "AccessDenied"} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := testPace().waitForFleet(bounded(t), &fakeReader{tally: sentRun(2)}, spillOf(t, 2), depth, 5, 200*time.Millisecond, zerolog.Nop())
			if err == nil || err.Error() != "gave up waiting after --timeout 200ms: 0 of 2 messages done" {
				t.Errorf("err %v, want the timeout", err)
			}
		})
	}
}

func TestWaitForFleetGivesUpOnAnUnreadableLedger(t *testing.T) {
	t.Parallel()
	denied := errors.New("access denied")
	r := &fakeReader{tally: sentRun(1), refreshFn: func(n int, _ *ledger.Tally) error {
		if n == 3 { // a success in between starts the count again
			return nil
		}
		return denied
	}}
	_, err := testPace().waitForFleet(bounded(t), r, spillOf(t, 1), idleQueue, 0, 0, zerolog.Nop())
	if !errors.Is(err, denied) || !strings.HasPrefix(err.Error(), "reading the ledger failed 10 times in a row: ") || r.refreshes != 13 {
		t.Errorf("err %v after %d readings, want 10 failures in a row after the success (13 readings)", err, r.refreshes)
	}
}

func TestWaitForFleetStopsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	r := &fakeReader{tally: sentRun(1), refreshFn: func(n int, _ *ledger.Tally) error {
		if n == 3 {
			cancel()
		}
		return nil
	}}
	_, err := testPace().waitForFleet(ctx, r, spillOf(t, 1), idleQueue, 0, time.Hour, zerolog.Nop())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled (an interrupt is not a timeout)", err)
	}
}

func TestWaitForFollowEndsAtTheMark(t *testing.T) {
	t.Parallel()
	tally := ledger.NewTally() // follow's run never ends
	finish(tally, 1)
	finish(tally, 3) // past the mark, and 4 is missing: not waited for
	r := &fakeReader{tally: tally, refreshFn: func(n int, t *ledger.Tally) error {
		if n == 4 {
			finish(t, 2)
		}
		return nil
	}}
	_, err := testPace().waitForFollow(bounded(t), r, 3, 0, idleQueue, zerolog.Nop())
	if err != nil || r.refreshes != 4 {
		t.Errorf("err %v after %d readings, want the end at the fourth", err, r.refreshes)
	}
}

func TestWaitForFollowStopsWhenTheWorkCannotFinish(t *testing.T) {
	t.Parallel()
	tally := ledger.NewTally()
	finish(tally, 1)
	finish(tally, 3)
	_, err := testPace().waitForFollow(bounded(t), &fakeReader{tally: tally}, 3, 0, queueOf(0, 0, 1), zerolog.Nop())
	want := "with messages in its dead-letter queue, and messages [2] (of 1 to 3) are not done: fix what the workers' log says, then planner redrive"
	if err == nil || !strings.HasPrefix(err.Error(), "the work queue has been empty for ") || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("err %v, want the stall", err)
	}
}

func TestWaitForFollowTimesOut(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(bounded(t), 100*time.Millisecond)
	defer cancel()
	// A follow's dead-letter queue with old letters is not this window's
	// stall: with work still visible, the wait goes on to its timeout.
	_, err := testPace().waitForFollow(ctx, &fakeReader{tally: ledger.NewTally()}, 2, 100*time.Millisecond, queueOf(1, 0, 3), zerolog.Nop())
	if err == nil || err.Error() != "gave up waiting after --timeout 100ms: 0 of 0 messages done" {
		t.Errorf("err %v, want the timeout", err)
	}
}

func TestWaitEnded(t *testing.T) {
	t.Parallel()
	expired, cancel := context.WithTimeout(t.Context(), -time.Second)
	defer cancel()
	st := ledger.Status{Done: 2, Sent: 5}
	if err := waitEnded(expired, time.Minute, st); err == nil || err.Error() != "gave up waiting after --timeout 1m0s: 2 of 5 messages done" {
		t.Errorf("after --timeout: %v", err)
	}
	// A deadline not the --timeout's is the context's.
	if err := waitEnded(expired, 0, st); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("without --timeout: %v", err)
	}
	interrupted, stop := context.WithCancel(t.Context())
	stop()
	if err := waitEnded(interrupted, time.Minute, st); !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted: %v", err)
	}
}

func TestDeadLettered(t *testing.T) {
	t.Parallel()
	n := int64(4)
	for _, tc := range []struct {
		d    *status.Depth
		want int64
	}{{nil, 0}, {&status.Depth{}, 0}, {&status.Depth{DeadLettered: &n}, 4}} {
		if got := deadLettered(tc.d); got != tc.want {
			t.Errorf("deadLettered(%+v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// TestDefaultPace: the command's waits are the ones documented.
func TestDefaultPace(t *testing.T) {
	t.Parallel()
	p := defaultPace()
	if p.poll != 200*time.Millisecond || p.slowPoll != time.Second || p.refreshLimit != time.Minute ||
		p.depthEvery != 5*time.Second || p.stallFor != 30*time.Second || p.markPoll != 100*time.Millisecond {
		t.Errorf("default pace %+v", p)
	}
}
