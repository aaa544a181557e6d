package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/status"
	"github.com/s3clone/s3clone/internal/worker"
)

const runUsage = `usage: planner run --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] [--diff [--delete] | --from-file FILE]
                   [--ledger s3://BUCKET/PREFIX/] [--concurrency N] [flags]

Plans and copies in this one process: the same lister, batches, copier and
tally as a planner with a worker fleet, with an in-memory queue in place of
SQS. For a single machine and no queues to set up. With --ledger the run is
recorded there as a fleet's would be, so planner status can watch it from
another terminal. Exits 0 when every object was copied (or vanished from the
source since listing), 1 when some failed.`

// memoryMaxReceives is how often run tries a message before giving up on
// it, like an SQS redrive policy's maxReceiveCount.
const memoryMaxReceives = 5

func runCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		s    job.Job
		from job.From
		work config.Work
		led  config.Ledger
		conn config.Connection
	)
	f := cli.NewFlags("planner run", runUsage, os.Stderr)
	s.Register(f)
	from.Register(f)
	work.Register(f, false)
	s.RegisterLock(f)
	led.Register(f, "record the run there too, for planner status in another terminal (default: none)")
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	s.Validate(&p)
	from.Validate(&p, &s)
	work.Validate(&p)
	led.Validate(&p, false)
	led.CheckApart(&p, "source", s.Src)
	led.CheckApart(&p, "dest", s.Dst)
	conn.Validate(&p)
	if from.Checkpoint != "" {
		p.Addf("--checkpoint goes with planner plan: planner run keeps its queue in memory, so an interrupted run starts again")
	}
	if err := p.Err(); err != nil {
		return err
	}
	// A person at a terminal sees one live progress line below the logs; a
	// pipe or --log-format json gets log lines only.
	var (
		w        *worker.Worker
		sum      *plan.Summary
		listed   atomic.Bool
		progress *status.Progress
		tally    = ledger.NewTally()
	)
	if conn.Logging.Format != "json" && cli.IsTerminal(os.Stderr) {
		progress = status.NewProgress(os.Stderr, func() status.Counts { return runCounts(w, sum, tally, listed.Load()) }, progressEvery)
		conn.Logging.Through = progress
	}
	// One process: its writes are paced alone (no fleet to share with).
	pacer := work.Pacer("local", nil, nil, zerolog.Nop())
	conn.AWS.OnThrottle = pacer.Heard
	log, awsCfg, err := conn.Open(ctx, work.Connections()+s.Listers*2+plan.Deciders)
	if err != nil {
		return err
	}
	regions := conn.AWS.Regions(awsCfg)
	if err := s.Connect(ctx, regions); err != nil {
		return err
	}
	s.Write = work.Copy
	if err := s.Inspect(ctx, log); err != nil {
		return err
	}
	sum = s.NewSummary()
	rec := s.RunRecord(sum, &from, "", map[string]string{"listers": fmt.Sprint(s.Listers), "batch_keys": fmt.Sprint(s.BatchKeys), "concurrency": fmt.Sprint(work.Concurrency)})
	tally.SetRun(rec)
	recorder := worker.TallyRecorder{Tally: tally}
	var runLog *ledger.RunLog
	if led.Set() {
		store := led.Open(ctx, regions)
		if err := store.CheckBucket(ctx); err != nil {
			return config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
		}
		if runLog, err = store.BeginRun(ctx, rec); err != nil {
			return config.LedgerError(err, store, "s3:PutObject on "+config.LedgerARN(store, "runs/*"))
		}
		journal, err := store.OpenJournal(ctx, "local", cli.Version())
		if err != nil {
			err = config.LedgerError(err, store, "s3:PutObject on "+config.LedgerARN(store, "workers/*")+" and "+config.LedgerARN(store, "runs/*/done/*"))
			job.EndEarly(ctx, runLog, err, log)
			return err
		}
		recorder.Next = journal
	}
	copies := work.Copier(regions, pacer.Heard, pacer, log)
	paceCtx, stopPace := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPace()
	go pacer.Run(paceCtx)
	if err := s.PreflightS3(ctx, copies, sum, log); err != nil {
		job.EndEarly(ctx, runLog, fmt.Errorf("preflight: %w", err), log)
		return err
	}

	// Room for a few rounds of work ahead of the copiers, no more: the
	// listing waits for the copies, so memory stays bounded.
	mem := queue.NewMemory(max(64, 4*work.Concurrency/s.BatchKeys))
	mem.MaxReceives = memoryMaxReceives
	cfg := work.WorkerConfig()
	cfg.ID = "local"
	cfg.Visibility = 5 * time.Minute
	cfg.Pace = pacer
	cfg.Owners = regions.Owners()
	w = worker.New(cfg, mem, recorder, copies, log)
	cli.TuneGCForCopying()
	stopProfile, err := cli.StartCPUProfile(work.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(ctx) }()
	if progress != nil {
		progress.Start()
		defer progress.Stop(false)
	}

	sent := func(batch []plan.Body) {
		seqs, t := job.SentGroup(batch)
		tally.AddSent(ledger.Sent{Seqs: ledger.Ranges(seqs), Totals: t})
		if runLog != nil {
			runLog.Sent(seqs, t, nil)
		}
	}
	planErr := s.Enqueue(ctx, from.Source(&s, log), sum, func(ctx context.Context, bodies [][]byte) error {
		msgs := make([]queue.Outgoing, len(bodies))
		for i, b := range bodies {
			msgs[i] = queue.Outgoing{Body: b}
		}
		return mem.Send(ctx, msgs)
	}, sent, log)
	if runLog != nil {
		if err := runLog.End(ctx, sum.Seq.Load(), planErr); err != nil && planErr == nil {
			planErr = err
		}
	}
	rec.Ended = time.Now().UTC()
	if planErr != nil {
		rec.Stopped = planErr.Error()
	}
	tally.SetRun(rec)
	listed.Store(true)
	mem.Close()
	workErr := <-workerDone
	if progress != nil {
		progress.Stop(true) // the last counts stay above the summary
	}

	job.PrintPlan(stdout, sum, from.Describe(sum.Finished.Sub(sum.Started)), false)
	st := tally.Status()
	if err := status.New(sum.Run, st, nil, 0).Print(stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "elapsed     %s\n", time.Since(sum.Started).Round(time.Millisecond))

	if err := errors.Join(planErr, workErr); err != nil {
		return err
	}
	if dead := len(mem.Dead()); dead > 0 {
		return fmt.Errorf("%w: %d messages still failing after %d tries (see the log)", cli.ErrObjectsFailed, dead, memoryMaxReceives)
	}
	if !st.Complete {
		return fmt.Errorf("%d of %d messages were not finished", st.Sent-st.Done, st.Sent)
	}
	if st.Failed > 0 {
		return fmt.Errorf("%w: %d of %d", cli.ErrObjectsFailed, st.Failed, st.Planned.Objects)
	}
	if n := from.Counts.Unknown.Load(); n > 0 {
		return fmt.Errorf("%w: the diff could not inspect %d keys (listed above; enqueued as copies)", cli.ErrMismatch, n)
	}
	return nil
}

// progressEvery is how often the progress line is redrawn.
const progressEvery = 500 * time.Millisecond

// runCounts is what the progress line shows of a local run: keys finished
// (copied, deleted, skipped or failed for good), per key as the worker
// finishes them, against what the plan has listed.
func runCounts(w *worker.Worker, sum *plan.Summary, tally *ledger.Tally, listed bool) status.Counts {
	st := &w.Stats
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
