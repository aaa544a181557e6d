package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// history is what planner follow reads in the ledger of the runs before
// it: the last follow of its change queue, and the pair's bulk copy.
type history interface {
	LastFollow(ctx context.Context, changesURL string) (*ledger.Run, *ledger.Follow, error)
	Bulk(ctx context.Context, src, dst plan.Location) ([]*ledger.Run, error)
	String() string
}

var _ history = (*ledger.Store)(nil)

// runProgress is a run's progress, read on from the ledger each Refresh.
type runProgress interface {
	Refresh(ctx context.Context) error
	Tally() *ledger.Tally
}

var _ runProgress = (*ledger.Reader)(nil)

// Poll intervals of planner follow's reads of the ledger.
const (
	nextCyclePoll = 30 * time.Second // a follow waiting for the next clone
	bulkDonePoll  = 5 * time.Second  // the catch-up waiting for the bulk run to be done
)

// awaitNextCycle keeps a follow from undoing a clone: when the last follow
// of this change queue stopped at a cutover's mark, the destination is the
// source as of that freeze, and the events waiting on the queue are
// production's since. A follow started again (by hand, or by ECS
// restarting the stack's service) takes them only once a new bulk plan of
// the pair has begun the next clone; until then it waits, reading the
// ledger every poll, and takes nothing. It returns nil when ctx ends, and
// a *LedgerError when the last follow cannot be read.
func awaitNextCycle(ctx context.Context, runs history, src, dst plan.Location, changesURL string, poll time.Duration, stdout io.Writer, log zerolog.Logger) error {
	_, last, err := runs.LastFollow(ctx, changesURL)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil
	case err != nil:
		return &LedgerError{Err: err}
	case last.StoppedAt == "":
		return nil
	}
	said := false
	for {
		chain, err := runs.Bulk(ctx, src, dst)
		if err == nil && chain[0].Started.After(last.Stopped) {
			log.Info().Str("bulk", chain[0].ID).Msg("a new bulk plan began the next clone: following again")
			return nil
		}
		if !said {
			said = true
			fmt.Fprintf(stdout, "waiting   follow %s stopped at cutover %s's mark: the destination is the source as of that freeze, and the changes since wait on the queue.\n"+
				"          Following again starts with the next clone: a new planner plan of s3://%s/%s -> s3://%s/%s (this follow then catches up). Until then it takes nothing.\n",
				last.Run, last.StoppedAt, src.Bucket, src.Prefix, dst.Bucket, dst.Prefix)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// catchUp finds the changes follow's events began too late for: when the
// bulk run of the pair began before them, a key the bulk listing passed
// may have changed before events flowed.
type catchUp struct {
	runs history
	// progress reads a run's progress (the store's Follow).
	progress func(run string) runProgress
	// diff lists both buckets side by side and calls found with each key
	// that differs (plan.Diff).
	diff     func(ctx context.Context, counts *plan.DiffCounts, found func(context.Context, plan.Finding) error) error
	src, dst plan.Location
	poll     time.Duration // how often the bulk run's progress is read
	log      zerolog.Logger
}

// run waits until subscribed (when the notification configuration is in
// effect everywhere). When the bulk run began before then, once it is done
// both buckets are listed once (outside any window) and every source key
// that differs is taken as a change. A bulk run begun after subscribed
// needs none (every change after its listing has an event), nor does a
// bulk plan yet to start.
func (c *catchUp) run(ctx context.Context, subscribed time.Time, take func(string)) error {
	if wait := time.Until(subscribed); wait > 0 {
		c.log.Info().Time("until", subscribed).Msg("waiting for the notification configuration to be in effect everywhere before anchoring")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	chain, err := c.runs.Bulk(ctx, c.src, c.dst)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil // the bulk plan is yet to start: its listing follows the events
	case err != nil:
		return err
	case chain[len(chain)-1].Started.After(subscribed):
		return nil
	}
	base := chain[len(chain)-1]
	c.log.Info().Str("bulk", base.ID).Msg("the bulk run began before follow's events did: once it is done, both buckets are listed once to catch up")
	reader := c.progress(base.ID)
	for {
		if err := reader.Refresh(ctx); err != nil {
			c.log.Warn().Err(err).Msg("reading the bulk run failed; trying again")
		} else if reader.Tally().Status().Complete {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.poll):
		}
	}
	var counts plan.DiffCounts
	err = c.diff(ctx, &counts, func(_ context.Context, f plan.Finding) error {
		take(c.src.Prefix + f.Key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("catch-up listing: %w", err)
	}
	c.log.Info().Int64("compared", counts.Compared.Load()).Int64("missing", counts.Missing.Load()).Int64("different", counts.Different.Load()).
		Int64("extra", counts.Extra.Load()).Msg("caught up: every key that differed is sent as sync work")
	return nil
}

// bridgeOwned reads, in the ledger (runs; nil without --ledger), whether
// the last follow of the change queue turned the source's EventBridge
// delivery on. Without a ledger, or with no follow recorded, it cannot
// tell, and says so (a cli.UsageError); a *LedgerError when the ledger
// cannot be read.
func bridgeOwned(ctx context.Context, runs history, changesURL string) (bool, error) {
	if runs == nil {
		return false, cli.Usagef("--unsubscribe --via eventbridge needs --ledger: follow's record says whether it turned EventBridge on (it is left on otherwise)")
	}
	_, last, err := runs.LastFollow(ctx, changesURL)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return false, cli.Usagef("no follow of %s in the ledger %s: nothing says follow turned EventBridge on", changesURL, runs)
	case err != nil:
		return false, &LedgerError{Err: err}
	}
	return last.BridgeOwned, nil
}
