package cutover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/status"
)

// pace is how a cutover waits: how often it reads the ledger and the
// queues, and how long it lets a run look stalled before it gives up.
// defaultPace is the command's; tests take shorter ones.
type pace struct {
	// poll is how often the ledger is read while the fleet works: the
	// verdict comes a fraction of a second after the last entry is written.
	poll time.Duration
	// slowPoll is how often the ledger is read once no entry has come in
	// for ten seconds: each read lists the run's journals, and a long wait
	// need not cost hundreds of LIST requests a second.
	slowPoll time.Duration
	// refreshLimit bounds one reading of the ledger.
	refreshLimit time.Duration
	// depthEvery is how often the queues are read, to notice a run that
	// cannot finish (its work queue empty, messages in its dead-letter
	// queue); stallFor is how long that must last, with no entry coming
	// in, before the wait gives up: SQS's counts are approximate.
	depthEvery, stallFor time.Duration
	// markPoll is how often follow's mark is looked for.
	markPoll time.Duration
}

// defaultPace is the pace of planner cutover.
func defaultPace() pace {
	return pace{
		poll: 200 * time.Millisecond, slowPoll: time.Second, refreshLimit: time.Minute,
		depthEvery: 5 * time.Second, stallFor: 30 * time.Second, markPoll: 100 * time.Millisecond,
	}
}

// quiet is how long without a new entry makes a wait read the ledger
// slowly, and log that it waits.
const quiet = 10 * time.Second

// tallyReader is what a wait reads of a run in the ledger: a
// *ledger.Reader.
type tallyReader interface {
	Refresh(ctx context.Context) error
	Tally() *ledger.Tally
}

var _ tallyReader = (*ledger.Reader)(nil)

// depthFunc reads the work queue's depth and its dead-letter queue's
// (status.ReadDepth): never nil, Error set when it could not.
type depthFunc func(ctx context.Context) *status.Depth

// waitForFleet reads the ledger until every message the plan sent (those
// spill holds) has an entry. It polls every p.poll while entries come in,
// and every p.slowPoll when none has for a while. It gives up when the run
// cannot finish (the work queue empty, nothing in flight and more dead
// letters than baseline, for p.stallFor with no entry coming in), after
// timeout (if not 0), or when ctx ends; it returns the last status and why
// it stopped early.
func (p pace) waitForFleet(ctx context.Context, reader tallyReader, spill *spill, depth depthFunc, baseline int64, timeout time.Duration, log zerolog.Logger) (ledger.Status, error) {
	started := time.Now()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var (
		st           ledger.Status
		lastEntry    = started // when the number of entries last went up
		entries      = int64(-1)
		lastDepth    time.Time
		stalledSince time.Time // since when the queues have looked stalled
		lastLog      = started
		failedRead   int
	)
	for {
		refresh, cancel := context.WithTimeout(ctx, p.refreshLimit)
		err := reader.Refresh(refresh)
		cancel()
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return st, waitEnded(ctx, timeout, st)
		case err != nil:
			if failedRead++; failedRead >= 10 {
				return st, fmt.Errorf("reading the ledger failed 10 times in a row: %w", err)
			}
			log.Warn().Err(err).Msg("reading the ledger failed; trying again")
		default:
			failedRead = 0
			st = reader.Tally().Status()
			if st.Done != entries {
				entries, lastEntry, stalledSince = st.Done, now, time.Time{}
			}
			if st.Complete && spill.allDone(reader.Tally()) {
				return st, nil
			}
		}
		if now.Sub(lastDepth) >= p.depthEvery {
			lastDepth = now
			d := depth(ctx)
			switch dead := deadLettered(d); {
			case d.Error != "" || d.Visible > 0 || d.InFlight > 0 || dead <= baseline:
				stalledSince = time.Time{}
			case stalledSince.IsZero():
				stalledSince = now
			case now.Sub(stalledSince) >= p.stallFor && now.Sub(lastEntry) >= p.stallFor:
				return st, fmt.Errorf("the work queue has been empty for %s with %d more messages in its dead-letter queue than before the plan: fix what the workers' log says, then planner redrive",
					now.Sub(stalledSince).Round(time.Second), dead-baseline)
			}
		}
		if now.Sub(lastLog) >= quiet {
			lastLog = now
			msg := log.Info().Int64("done", st.Done).Int64("sent", int64(spill.sent())).Int64("keys_done", st.DoneObjects).Int64("keys", st.Planned.Objects)
			switch {
			case st.Done == 0:
				msg.Msg("waiting for the fleet: no message finished yet (is a worker running?)")
			case now.Sub(lastEntry) >= time.Minute:
				msg.Dur("since_last", now.Sub(lastEntry).Round(time.Second)).Msg("waiting for the fleet: no message finished lately (a large copy, or a stuck worker?)")
			default:
				msg.Msg("waiting for the fleet")
			}
		}
		poll := p.poll
		if now.Sub(lastEntry) >= quiet {
			poll = p.slowPoll // nothing has come in for a while: read the ledger less often
		}
		select {
		case <-ctx.Done():
			return st, waitEnded(ctx, timeout, st)
		case <-time.After(poll):
		}
	}
}

// waitForFollow reads the follow run's ledger until every work message up
// to seq has an entry, or ctx ends. It gives up when the work cannot
// finish: the work queue empty, nothing in flight and messages in its
// dead-letter queue, for p.stallFor with no entry coming in.
func (p pace) waitForFollow(ctx context.Context, reader tallyReader, seq int64, timeout time.Duration, depth depthFunc, log zerolog.Logger) (ledger.Status, error) {
	var st ledger.Status
	started := time.Now()
	lastLog, lastDepth, lastEntry := started, time.Time{}, started
	var stalledSince time.Time
	entries, through := int64(-1), int64(0)
	for {
		refresh, cancel := context.WithTimeout(ctx, p.refreshLimit)
		err := reader.Refresh(refresh)
		cancel()
		now := time.Now()
		var missing []int64
		switch {
		case ctx.Err() != nil:
			return st, waitEnded(ctx, timeout, st)
		case err != nil:
			log.Warn().Err(err).Msg("reading the ledger failed; trying again")
		default:
			st = reader.Tally().Status()
			if st.Done != entries {
				entries, lastEntry, stalledSince = st.Done, now, time.Time{}
			}
			missing, through = follow.Missing(reader.Tally(), through+1, seq, 10)
			if len(missing) == 0 {
				return st, nil
			}
		}
		if now.Sub(lastDepth) >= p.depthEvery {
			lastDepth = now
			d := depth(ctx)
			switch {
			case d.Error != "" || d.Visible > 0 || d.InFlight > 0 || deadLettered(d) == 0:
				stalledSince = time.Time{}
			case stalledSince.IsZero():
				stalledSince = now
			case now.Sub(stalledSince) >= p.stallFor && now.Sub(lastEntry) >= p.stallFor:
				return st, fmt.Errorf("the work queue has been empty for %s with messages in its dead-letter queue, and messages %v (of 1 to %d) are not done: fix what the workers' log says, then planner redrive",
					now.Sub(stalledSince).Round(time.Second), missing, seq)
			}
		}
		if now.Sub(lastLog) >= quiet {
			lastLog = now
			log.Info().Ints64("waiting_for", missing).Int64("up_to", seq).Msg("waiting for the fleet to finish follow's work up to the mark (is a worker running?)")
		}
		select {
		case <-ctx.Done():
			return st, waitEnded(ctx, timeout, st)
		case <-time.After(p.poll):
		}
	}
}

// waitEnded says why ctx ended a wait.
func waitEnded(ctx context.Context, timeout time.Duration, st ledger.Status) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
		return fmt.Errorf("gave up waiting after --timeout %s: %d of %d messages done", timeout, st.Done, st.Sent)
	}
	return ctx.Err()
}

// deadLettered is how many messages wait in the dead-letter queue, 0 when
// there is none or it cannot be read.
func deadLettered(d *status.Depth) int64 {
	if d == nil || d.DeadLettered == nil {
		return 0
	}
	return *d.DeadLettered
}
