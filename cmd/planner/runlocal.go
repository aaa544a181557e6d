package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/report"
	"github.com/s3clone/s3clone/internal/worker"
)

const runUsage = `usage: planner run --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] [--diff [--delete] | --from-file FILE] [--concurrency N] [flags]

Plans and copies in this one process: the same lister, batches, copier and
reports as a planner with a worker fleet, with an in-memory queue in place of
SQS. For a single machine and no queues to set up. Exits 0 when every object
was copied (or vanished from the source since listing), 1 when some failed.`

// memoryMaxReceives is how often run tries a message before giving up on
// it, like an SQS redrive policy's maxReceiveCount.
const memoryMaxReceives = 5

func runCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		s    source
		from planFrom
		work config.Work
		conn config.Connection
	)
	f := config.NewFlags("planner run", runUsage, os.Stderr)
	s.register(f)
	from.register(f)
	work.Register(f, false)
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p config.Problems
	s.validate(&p)
	from.validate(&p, &s)
	work.Validate(&p)
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	limiter := worker.NewLimiter(work.Concurrency)
	conn.AWS.OnThrottle = limiter.Throttled
	log, awsCfg, err := conn.Open(ctx, work.Connections()+s.listers*2+plan.Deciders)
	if err != nil {
		return err
	}
	s3Client := conn.AWS.S3(awsCfg)
	if err := s.checkBuckets(ctx, s3Client); err != nil {
		return err
	}
	sum := s.newSummary()
	api := work.CopyAPI(s3Client, limiter.Throttled, log)
	if err := preflightS3(ctx, s3Client, api, sum, log); err != nil {
		return err
	}

	// Room for a few rounds of work ahead of the copiers, no more: the
	// listing waits for the copies, so memory stays bounded.
	mem := queue.NewMemory(max(64, 4*work.Concurrency/s.batchKeys))
	mem.MaxReceives = memoryMaxReceives
	tally := report.NewTally()
	cfg := work.WorkerConfig()
	cfg.ID = "local"
	cfg.Visibility = 5 * time.Minute
	cfg.Limiter = limiter
	w := worker.New(cfg, mem, worker.TallyReporter{Tally: tally}, copier.New(api, work.CopierOptions()), log)
	config.TuneGCForCopying()
	stopProfile, err := config.StartCPUProfile(work.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(ctx) }()

	planErr := s.enqueue(ctx, from.source(&s, s3Client, log), sum, func(ctx context.Context, bodies [][]byte) error {
		msgs := make([]queue.Outgoing, len(bodies))
		for i, b := range bodies {
			msgs[i] = queue.Outgoing{Body: b}
		}
		return mem.Send(ctx, msgs)
	}, nil, log)
	mem.Close()
	workErr := <-workerDone

	summary := planSummary(sum, "")
	tally.AddPlan(summary)
	printPlan(stdout, summary, from.describe(sum.Finished.Sub(sum.Started)), false)
	st := tally.Status(sum.Run)
	newStatusView(st, nil, 0).print(stdout)
	fmt.Fprintf(stdout, "elapsed     %s\n", time.Since(sum.Started).Round(time.Millisecond))

	if err := errors.Join(planErr, workErr); err != nil {
		return err
	}
	if dead := len(mem.Dead()); dead > 0 {
		return fmt.Errorf("%w: %d messages still failing after %d tries (see the log)", config.ErrObjectsFailed, dead, memoryMaxReceives)
	}
	if st.Done < summary.Messages {
		return fmt.Errorf("%d of %d messages were not finished", summary.Messages-st.Done, summary.Messages)
	}
	if st.Failed > 0 {
		return fmt.Errorf("%w: %d of %d", config.ErrObjectsFailed, st.Failed, summary.Objects)
	}
	return nil
}
