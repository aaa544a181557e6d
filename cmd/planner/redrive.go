package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

const redriveUsage = `usage: planner redrive --dlq-url URL --queue-url URL [--ledger s3://BUCKET/PREFIX/] [--max N]
       planner redrive --ledger s3://BUCKET/PREFIX/ [--run-id ID] [--max N]

Moves dead-lettered messages back to the work queue after the cause is
fixed (a permission granted, a bucket created). Each message is sent to the
work queue before it is deleted from the dead-letter queue, so none is lost;
a crash in between leaves a duplicate, which the workers redo and the
ledger counts once. With --ledger, a message the ledger already holds an
entry for (finished, then dead-lettered when its delete failed) is dropped
instead of moved, and the queues default to the run's: its work queue and
that queue's dead-letter queue.`

func redriveCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		dlqURL, queueURL string
		led              config.Ledger
		runID            string
		limit            int
		conn             config.Connection
	)
	f := cli.NewFlags("planner redrive", redriveUsage, os.Stderr)
	f.StringVar(&dlqURL, "dlq-url", "", "URL of the dead-letter queue to empty (default with --ledger: the work queue's)")
	f.StringVar(&queueURL, "queue-url", "", "URL of the work queue to move the messages to (default with --ledger: the run's)")
	led.Register(f, "drop messages already done, and find the run's queues (default: none)")
	f.StringVar(&runID, "run-id", "", "with --ledger and no --queue-url: the run whose work queue to use (default: the latest)")
	f.IntVar(&limit, "max", 0, "move at most this many messages (0: all)")
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	led.Validate(&p, false)
	if queueURL == "" && !led.Set() {
		p.Addf("--queue-url is required (or --ledger, to use the run's): the work queue to move messages to")
	}
	if dlqURL == "" && !led.Set() {
		p.Addf("--dlq-url is required (or --ledger, to use the work queue's): the dead-letter queue to move messages from")
	}
	if dlqURL != "" && dlqURL == queueURL {
		p.Addf("--dlq-url and --queue-url are the same queue")
	}
	if runID != "" && (!led.Set() || queueURL != "") {
		p.Addf("--run-id goes with --ledger and no --queue-url: it picks the run whose queues to use")
	}
	config.CheckQueueURL(&p, "dlq-url", dlqURL)
	config.CheckQueueURL(&p, "queue-url", queueURL)
	if limit < 0 {
		p.Addf("--max %d: must not be negative", limit)
	}
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	log, awsCfg, err := conn.Open(ctx, 8)
	if err != nil {
		return err
	}
	client := conn.AWS.SQS(awsCfg)
	var done *doneMessages
	if led.Set() {
		store := led.Open(ctx, conn.AWS.Regions(awsCfg))
		done = &doneMessages{ctx: ctx, store: store, readers: map[string]*ledger.Reader{}}
		if queueURL == "" {
			if queueURL, err = runQueue(ctx, store, runID); err != nil {
				return err
			}
		}
	}
	work := queue.NewSQS(client, queueURL)
	if err := config.CheckQueue(ctx, work, "queue-url"); err != nil {
		return err
	}
	if dlqURL == "" {
		d, err := work.Depth(ctx)
		if err != nil {
			return err
		}
		if d.DeadLetterARN == "" {
			return cli.Usagef("--queue-url %s has no dead-letter queue: give --dlq-url", queueURL)
		}
		dlq, err := queue.FromARN(ctx, client, d.DeadLetterARN)
		if err != nil {
			return err
		}
		dlqURL = dlq.URL()
	}
	dlq := queue.NewSQS(client, dlqURL)
	if err := config.CheckQueue(ctx, dlq, "dlq-url"); err != nil {
		return err
	}
	var drop func(queue.Message) (bool, error)
	if done != nil {
		drop = done.has
	}
	moved, dropped, err := queue.Move(ctx, dlq, work, limit, time.Second, drop)
	fmt.Fprintf(stdout, "moved %d messages from %s to %s\n", moved, dlqURL, queueURL)
	if done != nil {
		fmt.Fprintf(stdout, "dropped %d messages the ledger shows done\n", dropped)
	}
	if err != nil {
		log.Error().Err(err).Msg("redrive stopped")
		return fmt.Errorf("redrive stopped after %d messages: %w", moved+dropped, err)
	}
	return nil
}

// runQueue is the work queue of a run in the ledger (the latest when runID
// is "").
func runQueue(ctx context.Context, store *ledger.Store, runID string) (string, error) {
	var err error
	if runID == "" {
		if runID, err = store.Latest(ctx); errors.Is(err, ledger.ErrNotFound) {
			return "", cli.Usagef("--ledger %s holds no run: give --queue-url", store)
		} else if err != nil {
			return "", config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
		}
	}
	run, err := store.Run(ctx, runID)
	if errors.Is(err, ledger.ErrNotFound) {
		return "", cli.Usagef("--run-id %s: no such run in %s", runID, store)
	} else if err != nil {
		return "", config.LedgerError(err, store, "s3:GetObject on "+config.LedgerARN(store, "runs/*"))
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
	readers map[string]*ledger.Reader
}

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
