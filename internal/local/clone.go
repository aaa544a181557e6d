package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/status"
	"github.com/s3clone/s3clone/internal/worker"
)

// MaxReceives is how often run tries a message before giving up on it,
// like an SQS redrive policy's maxReceiveCount.
const MaxReceives = 5

// progressEvery is how often the progress line is redrawn.
const progressEvery = 500 * time.Millisecond

// clone is one plan and its copies in this process: the plan sends to mem,
// the worker w copies from it, and tally counts what both did.
type clone struct {
	sum      *plan.Summary
	mem      *queue.Memory
	w        *worker.Worker
	tally    *ledger.Tally
	runLog   *ledger.RunLog   // nil without a ledger
	progress *status.Progress // nil off a terminal
	listed   atomic.Bool      // the plan has ended
}

// newQueue is the in-memory queue of a run: room for a few rounds of work
// ahead of the copiers, no more, so that the listing waits for the copies
// and memory stays bounded.
func newQueue(concurrency, batchKeys int) *queue.Memory {
	mem := queue.NewMemory(max(64, 4*concurrency/batchKeys))
	mem.MaxReceives = MaxReceives
	return mem
}

// copyAll runs the plan (enqueue, with c's send and sent) while the worker
// copies from the queue, and waits for both. It records the plan's end in
// the run record rec (and the ledger's run, if any), and returns the plan's
// error (or the ledger refusing its end) and the worker's.
func (c *clone) copyAll(ctx context.Context, enqueue func(context.Context, plan.SendFunc, plan.SentFunc) error, rec ledger.Run) (planErr, workErr error) {
	workerDone := make(chan error, 1)
	go func() { workerDone <- c.w.Run(ctx) }()
	if c.progress != nil {
		c.progress.Start()
		defer c.progress.Stop(false)
	}
	planErr = enqueue(ctx, c.send, c.sent)
	if c.runLog != nil {
		if err := c.runLog.End(ctx, c.sum.Seq.Load(), planErr); err != nil && planErr == nil {
			planErr = err
		}
	}
	rec.Ended = time.Now().UTC()
	if planErr != nil {
		rec.Stopped = planErr.Error()
	}
	c.tally.SetRun(rec)
	c.listed.Store(true)
	c.mem.Close()
	workErr = <-workerDone
	if c.progress != nil {
		c.progress.Stop(true) // the last counts stay above the summary
	}
	return planErr, workErr
}

// send puts a plan's messages on the in-memory queue.
func (c *clone) send(ctx context.Context, bodies [][]byte) error {
	msgs := make([]queue.Outgoing, len(bodies))
	for i, b := range bodies {
		msgs[i] = queue.Outgoing{Body: b}
	}
	return c.mem.Send(ctx, msgs)
}

// sent counts the messages the queue accepted, and records them in the
// ledger's run, if any.
func (c *clone) sent(batch []plan.Body) {
	seqs, t := job.SentGroup(batch)
	c.tally.AddSent(ledger.Sent{Seqs: ledger.Ranges(seqs), Totals: t})
	if c.runLog != nil {
		c.runLog.Sent(seqs, t, nil)
	}
}

// report prints the plan's summary (how it listed) and the run's counts to
// w, and returns the run's outcome.
func (c *clone) report(w io.Writer, how string, planErr, workErr error, unknown int64) error {
	job.PrintPlan(w, c.sum, how, false)
	st := c.tally.Status()
	if err := status.New(c.sum.Run, st, nil, 0).Print(w); err != nil {
		return err
	}
	fmt.Fprintf(w, "elapsed     %s\n", time.Since(c.sum.Started).Round(time.Millisecond))
	return outcome(planErr, workErr, len(c.mem.Dead()), st, unknown)
}

// outcome is how a run ended: the plan's or the worker's error; dead
// messages (still failing after MaxReceives tries) or failed objects
// (cli.ErrObjectsFailed); messages never finished; or keys a --diff could
// not inspect (cli.ErrMismatch). Nil when every object was done.
func outcome(planErr, workErr error, dead int, st ledger.Status, unknown int64) error {
	if err := errors.Join(planErr, workErr); err != nil {
		return err
	}
	if dead > 0 {
		return fmt.Errorf("%w: %d messages still failing after %d tries (see the log)", cli.ErrObjectsFailed, dead, MaxReceives)
	}
	if !st.Complete {
		return fmt.Errorf("%d of %d messages were not finished", st.Sent-st.Done, st.Sent)
	}
	if st.Failed > 0 {
		return fmt.Errorf("%w: %d of %d", cli.ErrObjectsFailed, st.Failed, st.Planned.Objects)
	}
	if unknown > 0 {
		return fmt.Errorf("%w: the diff could not inspect %d keys (listed above; enqueued as copies)", cli.ErrMismatch, unknown)
	}
	return nil
}

// counts is what the progress line shows of the run (see runCounts).
func (c *clone) counts() status.Counts {
	return runCounts(&c.w.Stats, c.sum, c.tally, c.listed.Load())
}

// runCounts is what the progress line shows of a local run: keys finished
// (copied, deleted, skipped or failed for good), per key as the worker
// finishes them, against what the plan has listed.
func runCounts(st *worker.Stats, sum *plan.Summary, tally *ledger.Tally, listed bool) status.Counts {
	c := status.Counts{
		Done:         st.Copied.Load() + st.Deleted.Load() + st.Skipped.Load() + st.Failed.Load(),
		Bytes:        st.Bytes.Load(),
		Failed:       st.Failed.Load(),
		Planned:      sum.Objects.Load(),
		PlannedBytes: sum.Bytes.Load(),
		PlanFinished: listed,
		Complete:     listed && tally.Status().Complete,
	}
	// A message tried again counts its keys again: the line never shows
	// more done than planned (the summary's counts are exact).
	c.Done, c.Bytes = min(c.Done, c.Planned), min(c.Bytes, c.PlannedBytes)
	return c
}
