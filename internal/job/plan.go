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
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// PlanUsage is planner plan's usage text.
const PlanUsage = `usage: planner plan --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] --queue-url URL --ledger s3://BUCKET/PREFIX/
                    [--diff [--delete] | --from-file FILE] [--checkpoint FILE] [--as-of TIME] [--dry-run]

Lists the source with many listers at once and sends its keys, in batches,
to the work queue while the listing goes on. With --diff, lists the
destination alongside and sends only what is missing or different there.
With --as-of TIME, lists a versioned source as it was at TIME (from its
versions) and copies those versions, by version id: a clone of the bucket
as of a database snapshot's time, with no freeze. TIME is compared with
each version's LastModified, which for a multipart upload is when it was
initiated, not completed (S3 user guide, "Working with object metadata"):
an upload in flight at TIME counts as there at TIME, with its final
content, once completed; one still in flight when the plan lists is
missed. Choose a TIME uploads in flight then have since finished.
Before sending anything it checks, on a sample key, every permission the
copy needs, and that it can write the run's record in the ledger. Records
the run and every message it sends in the ledger, where planner status
compares them with what the workers did.`

// PlanOptions is planner plan's configuration: the job, what to enqueue,
// where to send it and record it.
type PlanOptions struct {
	Job      Job
	From     From
	QueueURL string
	Ledger   config.Ledger
	// DryRun lists and counts, sending and recording nothing.
	DryRun bool
	// CPUProfile, if set, is a file to write a pprof CPU profile to.
	CPUProfile string
	Conn       config.Connection
}

// Register defines planner plan's flags.
func (o *PlanOptions) Register(f *cli.Flags) {
	o.Job.Register(f)
	o.Job.Write.Register(f)
	o.Job.RegisterLock(f)
	o.From.Register(f)
	f.StringVar(&o.QueueURL, "queue-url", "", "URL of the work queue (required unless --dry-run)")
	o.Ledger.Register(f, "the run and what it sent are recorded there (required unless --dry-run)")
	f.BoolVar(&o.DryRun, "dry-run", false, "list and count without sending or recording anything")
	f.StringVar(&o.CPUProfile, "cpu-profile", "", "write a pprof CPU profile of the plan to this file")
	o.Conn.Register(f)
}

// Validate returns every problem with the flags as one cli.UsageError
// (nil when there is none), having parsed them.
func (o *PlanOptions) Validate() error {
	var p cli.Problems
	o.Job.Validate(&p)
	o.Job.Write.Validate(&p)
	o.From.Validate(&p, &o.Job)
	if o.QueueURL == "" && !o.DryRun {
		p.Addf("--queue-url is required (or --dry-run to only count)")
	}
	if o.DryRun && o.From.Checkpoint != "" {
		p.Addf("--checkpoint with --dry-run: a dry run sends nothing to record")
	}
	config.CheckQueueURL(&p, "queue-url", o.QueueURL)
	o.Ledger.Validate(&p, !o.DryRun)
	o.Ledger.CheckApart(&p, "source", o.Job.Src)
	o.Ledger.CheckApart(&p, "dest", o.Job.Dst)
	o.Conn.Validate(&p)
	return p.Err()
}

// Plan lists the source as o says and sends its batches to the work queue,
// recording the run in the ledger (or, DryRun, counts them and estimates
// the cost), and prints the plan's summary to stdout. Validate o first.
// Keys the diff could not inspect end in cli.ErrMismatch.
func Plan(ctx context.Context, o *PlanOptions, stdout io.Writer) error {
	s, from := &o.Job, &o.From
	stopProfile, err := cli.StartCPUProfile(o.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	log, awsCfg, err := o.Conn.Open(ctx, s.Listers*2+plan.Deciders+plan.Senders)
	if err != nil {
		return err
	}
	regions := o.Conn.AWS.Regions(awsCfg)
	if err := s.Connect(ctx, regions); err != nil {
		return err
	}
	if err := from.CheckAsOf(ctx, s); err != nil {
		return err
	}
	if err := s.Inspect(ctx, log); err != nil {
		return err
	}
	sum := s.NewSummary()
	var store *ledger.Store // a dry run records nothing (and takes no --checkpoint)
	if !o.DryRun {
		store = o.Ledger.Open(ctx, regions)
	}
	var prior *plan.CheckpointState
	if from.Checkpoint != "" {
		from.store = from.checkpointStore(store)
		if prior, err = resumable(from.store, s, o.QueueURL); err != nil {
			return err
		}
		if prior != nil && prior.Complete {
			fmt.Fprintf(stdout, "run       %s\nplan already complete (checkpoint %s): nothing to do\n", prior.Run, from.store)
			return nil
		}
		from.progress = listing.NewProgress()
		if prior != nil {
			prior.Resume(sum)
			from.progress = listing.ResumeProgress(prior.Shards)
			log.Info().Str("run", sum.Run).Int64("sent", prior.Sent.Messages).Int("shards", len(prior.Shards)).Msg("resuming an interrupted plan")
		}
	}
	if o.DryRun {
		sum.Estimate = newEstimate(sum.Copy)
		err := s.Enqueue(ctx, from.Source(s, log), sum, func(context.Context, [][]byte) error { return nil }, nil, log)
		PrintPlan(stdout, sum, from.Describe(sum.Finished.Sub(sum.Started)), true)
		sum.Estimate.Print(stdout, from.listRequests())
		return err
	}

	opts := map[string]string{"listers": fmt.Sprint(s.Listers), "batch_keys": fmt.Sprint(s.BatchKeys)}
	if !from.At.IsZero() {
		opts["as_of"] = from.At.UTC().Format(time.RFC3339Nano)
	}
	rec := s.RunRecord(sum, from, o.QueueURL, opts)
	if prior != nil {
		rec.Planned = ledger.Totals{Messages: prior.Sent.Messages, Objects: prior.Sent.Objects, Bytes: prior.Sent.Bytes}
	}
	if !from.At.IsZero() {
		s.AsOf = listing.NewAsOf(s.SrcAPI, from.At)
	}
	work, _, runLog, err := BeginPlan(ctx, s, sum, rec, queue.NewSQS(o.Conn.AWS.SQS(awsCfg), o.QueueURL), store, log)
	if err != nil {
		return err
	}
	return runPlan(ctx, stdout, s, from, sum, prior, work, runLog, log)
}

// resumable reads a checkpoint and checks it belongs to this plan.
func resumable(cp plan.CheckpointStore, j *Job, queueURL string) (*plan.CheckpointState, error) {
	prior, err := plan.ReadCheckpoint(cp)
	if err != nil {
		return nil, cli.Usagef("--checkpoint: %v", err)
	}
	sameBucket := func(a, b plan.Location) bool { return a.Bucket == b.Bucket && a.Prefix == b.Prefix }
	if prior != nil && (!sameBucket(prior.Source, j.Src) || !sameBucket(prior.Dest, j.Dst) || prior.Queue != queueURL) {
		return nil, cli.Usagef("--checkpoint %s records the plan %s -> %s on %s, not this one: use another checkpoint", cp, prior.Source, prior.Dest, prior.Queue)
	}
	return prior, nil
}

// runPlan sends the plan's batches to the work queue, recording each group
// the queue accepts in the ledger before the checkpoint (if any) counts it
// as sent, and ends the run's record.
func runPlan(ctx context.Context, stdout io.Writer, j *Job, from *From, sum *plan.Summary, prior *plan.CheckpointState,
	work *queue.SQS, runLog *ledger.RunLog, log zerolog.Logger) error {
	var cp *plan.Checkpoint
	var recorded func([]plan.Body)
	if from.progress != nil {
		cp = plan.NewCheckpoint(from.store, sum, work.URL(), from.progress, prior)
		sum.Reserve = cp.Reserve
		recorded = cp.Sent
	}
	err := SendPlan(ctx, j, from, sum, work, runLog, nil, recorded, log)
	if cp != nil {
		if cpErr := cp.Finish(err == nil); cpErr != nil && err == nil {
			err = cpErr
		}
	}
	PrintPlan(stdout, sum, from.Describe(sum.Finished.Sub(sum.Started)), false)
	if err != nil {
		return fmt.Errorf("plan %s stopped after %d messages: %w", sum.Run, sum.Messages.Load(), err)
	}
	if n := from.Counts.Unknown.Load(); n > 0 {
		return fmt.Errorf("%w: the diff could not inspect %d keys (listed above; enqueued as copies)", cli.ErrMismatch, n)
	}
	return nil
}

// versionSample copies a preflight sample's version at the plan's time,
// as the workers' copies will be (a copy of the current object would leave
// in the destination a key the source may not have had then, and prove
// s3:GetObject where the workers need s3:GetObjectVersion); a sample key
// that held nothing then proves nothing, and the next is tried.
type versionSample struct {
	copies SampleCopier
	asOf   versionFinder
}

// versionFinder finds a key's version at a time: *listing.AsOf.
type versionFinder interface {
	VersionAt(ctx context.Context, bucket, key string) (listing.Object, bool, error)
}

var _ versionFinder = (*listing.AsOf)(nil)

func (v versionSample) Copy(ctx context.Context, src copier.Source, dst copier.Target) error {
	then, ok, err := v.asOf.VersionAt(ctx, src.Bucket, src.Key)
	if err != nil {
		return denied(err, "s3:ListBucketVersions", bucketARN(src.Bucket))
	}
	if !ok {
		return fmt.Errorf("%s held nothing at the plan's time", src.Key)
	}
	src.Size, src.ETag, src.StorageClass, src.VersionID = then.Size, then.ETag, then.StorageClass, then.VersionID
	return v.copies.Copy(ctx, src, dst)
}
