// Package redrive moves dead-lettered messages back to the work queue once
// their cause is fixed (planner redrive). Each message is sent to the work
// queue before it is deleted from the dead-letter queue, so none is lost;
// with a run ledger, a message the ledger shows done is dropped instead.
package redrive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// Usage is planner redrive's usage text.
const Usage = `usage: planner redrive --dlq-url URL --queue-url URL [--ledger s3://BUCKET/PREFIX/] [--max N]
       planner redrive --ledger s3://BUCKET/PREFIX/ [--run-id ID] [--max N]

Moves dead-lettered messages back to the work queue after the cause is
fixed (a permission granted, a bucket created). Each message is sent to the
work queue before it is deleted from the dead-letter queue, so none is lost;
a crash in between leaves a duplicate, which the workers redo and the
ledger counts once. With --ledger, a message the ledger already holds an
entry for (finished, then dead-lettered when its delete failed) is dropped
instead of moved, and the queues default to the run's: its work queue and
that queue's dead-letter queue.`

// Options are planner redrive's flags.
type Options struct {
	DLQURL   string        // --dlq-url; "" with --ledger: the work queue's dead-letter queue
	QueueURL string        // --queue-url; "" with --ledger: the run's work queue
	Ledger   config.Ledger // --ledger, optional
	RunID    string        // --run-id: the run whose queue to use; "": the latest
	Max      int           // --max messages to move; 0: all
}

// Register defines the flags.
func (o *Options) Register(f *cli.Flags) {
	f.StringVar(&o.DLQURL, "dlq-url", "", "URL of the dead-letter queue to empty (default with --ledger: the work queue's)")
	f.StringVar(&o.QueueURL, "queue-url", "", "URL of the work queue to move the messages to (default with --ledger: the run's)")
	o.Ledger.Register(f, "drop messages already done, and find the run's queues (default: none)")
	f.StringVar(&o.RunID, "run-id", "", "with --ledger and no --queue-url: the run whose work queue to use (default: the latest)")
	f.IntVar(&o.Max, "max", 0, "move at most this many messages (0: all)")
}

// Validate parses --ledger and adds a problem for each missing, malformed
// or conflicting flag.
func (o *Options) Validate(p *cli.Problems) {
	o.Ledger.Validate(p, false)
	if o.QueueURL == "" && !o.Ledger.Set() {
		p.Addf("--queue-url is required (or --ledger, to use the run's): the work queue to move messages to")
	}
	if o.DLQURL == "" && !o.Ledger.Set() {
		p.Addf("--dlq-url is required (or --ledger, to use the work queue's): the dead-letter queue to move messages from")
	}
	if o.DLQURL != "" && o.DLQURL == o.QueueURL {
		p.Addf("--dlq-url and --queue-url are the same queue")
	}
	if o.RunID != "" && (!o.Ledger.Set() || o.QueueURL != "") {
		p.Addf("--run-id goes with --ledger and no --queue-url: it picks the run whose queues to use")
	}
	config.CheckQueueURL(p, "dlq-url", o.DLQURL)
	config.CheckQueueURL(p, "queue-url", o.QueueURL)
	if o.Max < 0 {
		p.Addf("--max %d: must not be negative", o.Max)
	}
}

// Run finds the queues (from the ledger when not given), moves the
// messages and says how many on w. store is the ledger when --ledger was
// given, nil otherwise. Queues that do not exist, a run the ledger does
// not hold, or a work queue without a dead-letter queue are
// cli.UsageErrors; a move that stopped part way says how far it got.
func (o *Options) Run(ctx context.Context, api queue.API, store *ledger.Store, w io.Writer, log zerolog.Logger) error {
	queueURL, dlqURL := o.QueueURL, o.DLQURL
	var done *doneMessages
	if store != nil {
		done = newDoneMessages(ctx, store)
		if queueURL == "" {
			var err error
			if queueURL, err = runQueue(ctx, store, o.RunID); err != nil {
				return err
			}
		}
	}
	work := queue.NewSQS(api, queueURL)
	if err := config.CheckQueue(ctx, work, "queue-url"); err != nil {
		return err
	}
	if dlqURL == "" {
		var err error
		if dlqURL, err = deadLetterQueue(ctx, api, work); err != nil {
			return err
		}
	}
	dlq := queue.NewSQS(api, dlqURL)
	if err := config.CheckQueue(ctx, dlq, "dlq-url"); err != nil {
		return err
	}
	var drop func(queue.Message) (bool, error)
	if done != nil {
		drop = done.has
	}
	moved, dropped, err := queue.Move(ctx, dlq, work, o.Max, time.Second, drop)
	fmt.Fprintf(w, "moved %d messages from %s to %s\n", moved, dlqURL, queueURL)
	if done != nil {
		fmt.Fprintf(w, "dropped %d messages the ledger shows done\n", dropped)
	}
	if err != nil {
		log.Error().Err(err).Msg("redrive stopped")
		return fmt.Errorf("redrive stopped after %d messages: %w", moved+dropped, err)
	}
	return nil
}

// deadLetterQueue is the URL of work's dead-letter queue (its redrive
// policy's target).
func deadLetterQueue(ctx context.Context, api queue.API, work *queue.SQS) (string, error) {
	d, err := work.Depth(ctx)
	if err != nil {
		return "", err
	}
	if d.DeadLetterARN == "" {
		return "", cli.Usagef("--queue-url %s has no dead-letter queue: give --dlq-url", work.URL())
	}
	dlq, err := queue.FromARN(ctx, api, d.DeadLetterARN)
	if err != nil {
		return "", err
	}
	return dlq.URL(), nil
}

// runQueue is the work queue of a run in the ledger (the latest when runID
// is "").
func runQueue(ctx context.Context, store *ledger.Store, runID string) (string, error) {
	var err error
	if runID == "" {
		if runID, err = store.Latest(ctx); errors.Is(err, ledger.ErrNotFound) {
			return "", cli.Usagef("--ledger %s holds no run: give --queue-url", store)
		} else if err != nil {
			return "", config.LedgerError(err, store)
		}
	}
	run, err := store.Run(ctx, runID)
	if errors.Is(err, ledger.ErrNotFound) {
		return "", cli.Usagef("--run-id %s: no such run in %s", runID, store)
	} else if err != nil {
		return "", config.LedgerError(err, store)
	}
	if run.Queue == "" {
		return "", cli.Usagef("run %s used no work queue (planner run): give --queue-url", runID)
	}
	return run.Queue, nil
}

// doneMessages answers whether the ledger holds an entry for a message,
// reading each run it meets once.
type doneMessages struct {
	ctx     context.Context
	store   *ledger.Store
	readers map[string]*ledger.Reader // nil: a run the ledger does not hold
}

func newDoneMessages(ctx context.Context, store *ledger.Store) *doneMessages {
	return &doneMessages{ctx: ctx, store: store, readers: map[string]*ledger.Reader{}}
}

// has reports whether m's batch is done in the ledger: false for a body
// that is no batch of a run (moved as it is) and for a run the ledger
// does not hold.
func (d *doneMessages) has(m queue.Message) (bool, error) {
	b, err := plan.Decode(m.Body)
	if err != nil || b.Op == plan.OpProbe {
		return false, nil // not ours to judge: moved as it is
	}
	r, ok := d.readers[b.Run]
	if !ok {
		r = d.store.Follow(b.Run)
		if err := r.Refresh(d.ctx); errors.Is(err, ledger.ErrNotFound) {
			r = nil // a run the ledger does not hold: nothing to drop
		} else if err != nil {
			return false, fmt.Errorf("read run %s in the ledger: %w", b.Run, err)
		}
		d.readers[b.Run] = r
	}
	return r != nil && r.Tally().Has(b.Seq), nil
}
