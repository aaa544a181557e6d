// Package local runs a whole clone in one process (planner run): the same
// lister, batches, copier and tally as a planner with a worker fleet, with
// an in-memory queue in place of SQS, for a single machine and no queues
// to set up. With a ledger the run is recorded there as a fleet's would
// be, so that planner status can watch it from another terminal.
package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/status"
	"github.com/s3clone/s3clone/internal/worker"
)

// Usage is planner run's usage text.
const Usage = `usage: planner run --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] [--diff [--delete] | --from-file FILE]
                   [--ledger s3://BUCKET/PREFIX/] [--concurrency N] [flags]

Plans and copies in this one process: the same lister, batches, copier and
tally as a planner with a worker fleet, with an in-memory queue in place of
SQS. For a single machine and no queues to set up. With --ledger the run is
recorded there as a fleet's would be, so planner status can watch it from
another terminal. Exits 0 when every object was copied (or vanished from the
source since listing), 1 when some failed.`

// Options is planner run's configuration.
type Options struct {
	// Job names the buckets; From says which keys to copy.
	Job  job.Job
	From job.From
	// Work is the copier's and the worker's tuning (no queue flags).
	Work config.Work
	// Ledger, when set, records the run there too.
	Ledger config.Ledger
	Conn   config.Connection
}

// Register defines planner run's flags.
func (o *Options) Register(f *cli.Flags) {
	o.Job.Register(f)
	o.From.Register(f)
	o.Work.Register(f, false)
	o.Job.RegisterLock(f)
	o.Ledger.Register(f, "record the run there too, for planner status in another terminal (default: none)")
	o.Conn.Register(f)
}

// Validate returns every problem with the flags as one cli.UsageError (nil
// when there is none), having parsed them.
func (o *Options) Validate() error {
	var p cli.Problems
	o.Job.Validate(&p)
	o.From.Validate(&p, &o.Job)
	o.Work.Validate(&p)
	o.Ledger.Validate(&p, false)
	o.Ledger.CheckApart(&p, "source", o.Job.Src)
	o.Ledger.CheckApart(&p, "dest", o.Job.Dst)
	o.Conn.Validate(&p)
	if o.From.Checkpoint != "" {
		p.Addf("--checkpoint goes with planner plan: planner run keeps its queue in memory, so an interrupted run starts again")
	}
	return p.Err()
}

// Run plans and copies what o names in this process, then prints the
// plan's summary and the run's counts to stdout. Validate o first. It
// returns an error wrapping cli.ErrObjectsFailed when some objects failed,
// cli.ErrMismatch when a --diff could not inspect some keys, and a
// cli.UsageError for what the flags or the grants must fix.
func Run(ctx context.Context, o *Options, stdout io.Writer) error {
	s, from, work := &o.Job, &o.From, &o.Work
	c := &clone{tally: ledger.NewTally()}
	// A person at a terminal sees one live progress line below the logs; a
	// pipe or --log-format json gets log lines only.
	if o.Conn.Logging.Format != "json" && cli.IsTerminal(os.Stderr) {
		c.progress = status.NewProgress(os.Stderr, c.counts, progressEvery)
		o.Conn.Logging.Through = c.progress
	}
	// One process: its writes are paced alone (no fleet to share with).
	pacer := work.Pacer("local", nil, nil, zerolog.Nop())
	o.Conn.AWS.OnThrottle = pacer.Heard
	log, awsCfg, err := o.Conn.Open(ctx, work.Connections()+s.Listers*2+plan.Deciders)
	if err != nil {
		return err
	}
	regions := o.Conn.AWS.Regions(awsCfg)
	if err := s.Connect(ctx, regions); err != nil {
		return err
	}
	s.Write = work.Copy
	if err := s.Inspect(ctx, log); err != nil {
		return err
	}
	c.sum = s.NewSummary()
	rec := s.RunRecord(c.sum, from, "", map[string]string{"listers": fmt.Sprint(s.Listers), "batch_keys": fmt.Sprint(s.BatchKeys), "concurrency": fmt.Sprint(work.Concurrency)})
	c.tally.SetRun(rec)
	recorder := worker.TallyRecorder{Tally: c.tally}
	if o.Ledger.Set() {
		journal, err := c.record(ctx, o.Ledger.Open(ctx, regions), rec, log)
		if err != nil {
			return err
		}
		recorder.Next = journal
	}
	copies := work.Copier(regions, pacer.Heard, pacer, log)
	paceCtx, stopPace := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPace()
	go pacer.Run(paceCtx)
	if err := s.PreflightS3(ctx, copies, c.sum, log); err != nil {
		job.EndEarly(ctx, c.runLog, fmt.Errorf("preflight: %w", err), log)
		return err
	}

	c.mem = newQueue(work.Concurrency, s.BatchKeys)
	cfg := work.WorkerConfig()
	cfg.ID = "local"
	cfg.Visibility = 5 * time.Minute
	cfg.Pace = pacer
	cfg.Owners = regions.Owners()
	c.w = worker.New(cfg, c.mem, recorder, copies, log)
	cli.TuneGCForCopying()
	stopProfile, err := cli.StartCPUProfile(work.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	planErr, workErr := c.copyAll(ctx, func(ctx context.Context, send plan.SendFunc, sent plan.SentFunc) error {
		return s.Enqueue(ctx, from.Source(s, log), c.sum, send, sent, log)
	}, rec)
	return c.report(stdout, from.Describe(c.sum.Finished.Sub(c.sum.Started)), planErr, workErr, from.Counts.Unknown.Load())
}

// record begins the run in the ledger (c.runLog) and opens the journal
// its entries are written to. Errors are the ledger's, said as what to
// grant (config.LedgerError).
func (c *clone) record(ctx context.Context, store *ledger.Store, rec ledger.Run, log zerolog.Logger) (*ledger.Journal, error) {
	if err := store.CheckBucket(ctx); err != nil {
		return nil, config.LedgerError(err, store)
	}
	runLog, err := store.BeginRun(ctx, rec)
	if err != nil {
		return nil, config.LedgerError(err, store)
	}
	c.runLog = runLog
	journal, err := store.OpenJournal(ctx, "local", cli.Version())
	if err != nil {
		err = config.LedgerError(err, store, "the run also writes its entries: s3:PutObject on "+config.LedgerARN(store, "runs/*/done/*"))
		job.EndEarly(ctx, runLog, err, log)
		return nil, err
	}
	return journal, nil
}
