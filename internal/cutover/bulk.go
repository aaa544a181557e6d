package cutover

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
)

// bulkCheck is what the bulk copy before a follow leaves undone.
type bulkCheck struct {
	notRight []notRight
	why      string
	rate     float64 // the base run's objects a second
}

// checkBulk judges the bulk copy of the follow's pair: the newest full or
// diff run and every from-file run after it (ledger.Store.Bulk). Each must
// be complete, and its keys that failed must be ones follow covers: a key
// that changed after the bulk listing saw it has an event, or the catch-up
// found it, once follow is anchored. A dead-lettered message of the base
// run leaves it incomplete, whatever a from-file run did later.
func checkBulk(ctx context.Context, store *ledger.Store, followed *ledger.Run, log zerolog.Logger) bulkCheck {
	chain, err := store.Bulk(ctx, followed.Source, followed.Dest)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return bulkCheck{why: fmt.Sprintf("the ledger holds no bulk run (planner plan) of s3://%s/%s to s3://%s/%s: follow alone copies only what changed",
			followed.Source.Bucket, followed.Source.Prefix, followed.Dest.Bucket, followed.Dest.Prefix)}
	case err != nil:
		return bulkCheck{why: fmt.Sprintf("cannot list the ledger's runs to find the bulk copy: %v", err)}
	}
	var c bulkCheck
	for _, bulk := range chain {
		reader := store.Follow(bulk.ID)
		if err := reader.Refresh(ctx); err != nil {
			c.why = fmt.Sprintf("cannot read the bulk run %s: %v", bulk.ID, err)
			return c
		}
		st := reader.Tally().Status()
		if bulk == chain[len(chain)-1] {
			c.rate = st.Rate // the fleet copying as fast as it can
		}
		if !st.Complete {
			c.why = fmt.Sprintf("the bulk run %s is not done: %d of %d messages (planner status --run-id %s)", bulk.ID, st.Done, st.Sent, bulk.ID)
			return c
		}
		entries, err := reader.Failed(ctx, ledger.MaxFailures)
		if err != nil {
			c.why = fmt.Sprintf("cannot read the bulk run %s's failures: %v", bulk.ID, err)
			return c
		}
		for _, e := range entries {
			for _, f := range e.Failed {
				if f.Reason == string(copier.ReasonChanged) {
					continue // its change came as an event, or the catch-up found it
				}
				c.notRight = append(c.notRight, notRight{rec: e.Record(f), why: "bulk run " + bulk.ID + ": " + f.Reason})
			}
		}
	}
	if len(c.notRight) > 0 {
		log.Warn().Int("keys", len(c.notRight)).Msg("the bulk copy failed keys no event will mend")
	}
	return c
}
