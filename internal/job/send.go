package job

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// BeginPlan checks the work queue and the ledger, records the run, and
// checks on a sample key that the fleet may copy (deleting too when rec
// says the run deletes): what every plan that sends to a fleet does before
// sending. It returns work and store as given, and the run's record to
// send through (SendPlan); a refused permission is a cli.UsageError, and a
// failed preflight ends the run's record saying why.
func BeginPlan(ctx context.Context, j *Job, sum *plan.Summary, rec ledger.Run, work *queue.SQS, store *ledger.Store, log zerolog.Logger) (*queue.SQS, *ledger.Store, *ledger.RunLog, error) {
	if err := config.CheckQueue(ctx, work, "queue-url"); err != nil {
		return nil, nil, nil, err
	}
	if err := store.CheckBucket(ctx); err != nil {
		return nil, nil, nil, config.LedgerError(err, store)
	}
	runLog, err := store.BeginRun(ctx, rec)
	if err != nil {
		return nil, nil, nil, config.LedgerError(err, store)
	}
	if err := preflight(ctx, j, work, sum, rec.Delete, log); err != nil {
		EndEarly(ctx, runLog, fmt.Errorf("preflight: %w", err), log)
		return nil, nil, nil, err
	}
	return work, store, runLog, nil
}

// SendPlan runs the plan into the work queue and ends the run's record.
// Each group of messages the queue accepts is recorded in the ledger;
// accepted, if not nil, hears of it at once (its error stops the plan), and
// recorded, if not nil, once the ledger holds it. A failed ledger write
// stops the plan too.
func SendPlan(ctx context.Context, j *Job, from *From, sum *plan.Summary, work *queue.SQS, runLog *ledger.RunLog,
	accepted func([]plan.Body) error, recorded func([]plan.Body), log zerolog.Logger) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	runLog.OnError = func(err error) { stop(fmt.Errorf("the ledger: %w", err)) }
	sent := func(batch []plan.Body) {
		if accepted != nil {
			if err := accepted(batch); err != nil {
				stop(err)
			}
		}
		seqs, t := SentGroup(batch)
		var then func()
		if recorded != nil {
			then = func() { recorded(batch) }
		}
		runLog.Sent(seqs, t, then)
	}
	err := j.Enqueue(ctx, from.Source(j, log), sum, sendTo(work, sum.Run), sent, log)
	if endErr := runLog.End(ctx, sum.Seq.Load(), err); endErr != nil && err == nil {
		err = endErr
	}
	return err
}

// sendTo sends a plan's message bodies to the work queue.
func sendTo(work *queue.SQS, run string) plan.SendFunc {
	return func(ctx context.Context, bodies [][]byte) error {
		msgs := make([]queue.Outgoing, len(bodies))
		for i, b := range bodies {
			msgs[i] = queue.Outgoing{Body: b, Run: run, Kind: "batch"}
		}
		return work.Send(ctx, msgs)
	}
}

// EndEarly ends the ledger's record of a run that stops before planning,
// saying why, so it does not read as a plan still running; runLog may be
// nil (no ledger). A failure to record it is logged.
func EndEarly(ctx context.Context, runLog *ledger.RunLog, why error, log zerolog.Logger) {
	if runLog == nil {
		return
	}
	if err := runLog.End(ctx, 0, why); err != nil {
		log.Warn().Err(err).Msg("could not record in the ledger why the run stopped")
	}
}

// summaryTotals is what the plan counted as enqueued.
func summaryTotals(sum *plan.Summary) ledger.Totals {
	return ledger.Totals{Messages: sum.Messages.Load(), Objects: sum.Objects.Load(), Bytes: sum.Bytes.Load(), Deletes: sum.Deletes.Load()}
}

// SentGroup is what a group of accepted messages holds, for the ledger:
// their sequence numbers, and their totals.
func SentGroup(batch []plan.Body) ([]int64, ledger.Totals) {
	seqs := make([]int64, len(batch))
	var t ledger.Totals
	for i, b := range batch {
		seqs[i] = b.Seq
		t.Messages++
		t.Objects += b.Objects
		t.Bytes += b.Bytes
		if b.Delete {
			t.Deletes += b.Objects
		}
	}
	return seqs, t
}

// PrintPlan writes the plan's summary to w: the run, the locations, what
// was (or, dryRun, would be) enqueued, and how the keys were found (how,
// From.Describe).
func PrintPlan(w io.Writer, sum *plan.Summary, how string, dryRun bool) {
	verb := "enqueued"
	if dryRun {
		verb = "would enqueue (dry run)"
	}
	p := summaryTotals(sum)
	fmt.Fprintf(w, "run       %s\n", sum.Run)
	fmt.Fprintf(w, "source    %s\n", sum.Source)
	fmt.Fprintf(w, "dest      %s\n", sum.Dest)
	fmt.Fprintf(w, "%s %d objects, %s (%d bytes), in %d messages\n", verb, p.Objects-p.Deletes, cli.FormatSize(p.Bytes), p.Bytes, p.Messages)
	if p.Deletes > 0 {
		fmt.Fprintf(w, "deletes   %d destination objects not in the source\n", p.Deletes)
	}
	fmt.Fprintln(w, how)
}

// newEstimate counts what a run writing as c will cost, its workers
// copying with the default multipart settings.
func newEstimate(c plan.Copy) *plan.Estimate {
	return &plan.Estimate{Copy: c, Threshold: copier.MaxCopyObjectSize, Now: time.Now(), Parts: estimateParts}
}

// estimateParts is how many parts a copy of size bytes takes with the
// default multipart settings.
func estimateParts(size int64) int64 {
	part := copier.PartSize(size, copier.DefaultPartSize)
	return (size + part - 1) / part
}
