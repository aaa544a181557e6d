package cutover

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/status"
)

// Run is planner cutover: the window o describes (Validate o first), its
// progress and verdict printed to stdout and the verdict recorded in the
// ledger. It returns nil only when the verdict is clean; an error wrapping
// cli.ErrMismatch when keys are not right (o.Out then lists them); a
// cli.UsageError for what the operator must fix first (a grant, a follow
// that is not running); ctx's error when it ends the window (the verdict
// on what was done is given all the same).
func Run(ctx context.Context, o *Options, stdout io.Writer) error {
	if o.Follow != "" {
		return runFollow(ctx, o, stdout)
	}
	return runDelta(ctx, o, stdout)
}

// window is how long each part of a cutover took.
type window struct {
	started       time.Time
	plan, fleet   time.Duration // the plan (listing, comparing, sending); then the fleet's tail
	verify, total time.Duration
}

// mode is what the ledger calls the window: "cutover" or "rehearsal".
func (o *Options) mode() string {
	if o.Rehearse {
		return "rehearsal"
	}
	return "cutover"
}

// runDelta is the window that lists: it plans the difference, waits for
// the fleet, and judges what it did.
func runDelta(ctx context.Context, o *Options, stdout io.Writer) error {
	w := window{started: time.Now()}
	s := &o.Job
	log, awsCfg, regions, err := o.connect(ctx)
	if err != nil {
		return err
	}
	store := o.Ledger.Open(ctx, regions)
	endedClean := false // set once the verdict is clean: only then is the fleet given back
	if o.ScaleECS != "" {
		giveBack, err := o.holdFleet(ctx, awsCfg, store, stdout, log)
		if err != nil {
			return err
		}
		defer func() { giveBack(endedClean) }()
	}
	rec, err := plan.NewRecordFile(o.Out)
	if err != nil {
		return cli.Usagef("--out %s: %v", o.Out, err)
	}
	defer rec.Discard()
	sum := s.NewSummary()
	opts := map[string]string{"listers": fmt.Sprint(s.Listers), "batch_keys": fmt.Sprint(s.BatchKeys), "cutover": o.mode()}
	if !o.from.At.IsZero() {
		opts["as_of"] = o.from.At.UTC().Format(time.RFC3339Nano)
	}
	sqsAPI := o.Conn.AWS.SQS(awsCfg)
	work := queue.NewSQS(sqsAPI, o.QueueURL)
	_, _, runLog, err := job.BeginPlan(ctx, s, sum, s.RunRecord(sum, &o.from, o.QueueURL, opts), work, store, log)
	if err != nil {
		return err
	}

	// What each message holds, kept on disk until the verdict: the keys of
	// a message the fleet never finishes are named from it.
	spill, err := newSpill()
	if err != nil {
		job.EndEarly(ctx, runLog, err, log)
		return err
	}
	defer spill.remove()
	depth := func(ctx context.Context) *status.Depth { return status.ReadDepth(ctx, sqsAPI, o.QueueURL, log) }
	// Dead letters already there (an earlier run's) are not this run's.
	baseline := deadLettered(depth(ctx))
	planErr := job.SendPlan(ctx, s, &o.from, sum, work, runLog, spill.add, nil, log)
	if planErr == nil {
		planErr = spill.flush()
	}
	w.plan = time.Since(w.started)
	job.PrintPlan(stdout, sum, o.from.Describe(sum.Finished.Sub(sum.Started)), false)
	if planErr != nil {
		return fmt.Errorf("cutover %s: the plan stopped after %d messages: %w", sum.Run, sum.Messages.Load(), planErr)
	}

	// The fleet's work, followed in the ledger. An interrupt (or --timeout)
	// still ends with a verdict on what was done, read with a fresh context.
	reader := store.Follow(sum.Run)
	st, waitErr := defaultPace().waitForFleet(ctx, reader, spill, depth, baseline, o.Timeout, log)
	w.fleet = time.Since(w.started) - w.plan
	v, err := o.judgeDelta(ctx, sum.Run, reader, spill, waitErr, &w, log)
	if err != nil {
		return err
	}
	w.total = time.Since(w.started)
	recon, err := v.writeRecon(rec)
	if err != nil {
		return err
	}
	v.asOf = o.from.At
	v.print(stdout, st, w, o.Out, o.Rehearse, o.from.Delete)
	clean := v.clean() && ctx.Err() == nil
	lv := newVerdict(sum.Run, o.mode(), clean, v, st, ledger.VerdictWindow{Plan: w.plan, Fleet: w.fleet, Verify: w.verify, Total: w.total})
	switch url, err := store.PutVerdict(context.WithoutCancel(ctx), lv, recon); {
	case err != nil:
		log.Error().Err(err).Msg("could not record the verdict in the ledger (it is printed above)")
	case url != "":
		fmt.Fprintf(stdout, "recorded  the verdict in %s, the keys in %s (aws s3 cp it, then planner plan --from-file)\n", store, url)
	default:
		fmt.Fprintf(stdout, "recorded  the verdict in %s\n", store)
	}
	endedClean = clean
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("cutover %s: %w (the keys above were not done when it stopped; the fleet goes on with them)", sum.Run, ctx.Err())
	case !v.clean():
		return fmt.Errorf("%w: cutover %s: %d keys not copied or deleted as listed", cli.ErrMismatch, sum.Run, len(v.notRight))
	}
	return nil
}

// connect opens the window's clients: the buckets' (the source as of
// o.AsOf, with --as-of), checking that they may be copied as asked.
func (o *Options) connect(ctx context.Context) (zerolog.Logger, aws.Config, *config.Regions, error) {
	s := &o.Job
	log, awsCfg, err := o.Conn.Open(ctx, s.Listers*2+plan.Deciders+plan.Senders)
	if err != nil {
		return log, awsCfg, nil, err
	}
	regions := o.Conn.AWS.Regions(awsCfg)
	if err := s.Connect(ctx, regions); err != nil {
		return log, awsCfg, nil, err
	}
	if err := o.from.CheckAsOf(ctx, s); err != nil {
		return log, awsCfg, nil, err
	}
	if err := s.Inspect(ctx, log); err != nil {
		return log, awsCfg, nil, err
	}
	if !o.from.At.IsZero() {
		s.AsOf = listing.NewAsOf(s.SrcAPI, o.from.At) // the preflight's sample, and the verdict's second look, read the versions then
	}
	return log, awsCfg, regions, nil
}

// newVerdict is the ledger's record of a verdict: in the ledger too, since
// a cutover run as an ECS task loses its files with the task, and its
// verdict is for planner status to show anyone.
func newVerdict(run, mode string, clean bool, v *verdict, st ledger.Status, w ledger.VerdictWindow) ledger.Verdict {
	host, _ := os.Hostname() // "" is fine: the verdict says where it ran only when it can
	return ledger.Verdict{
		Run: run, Mode: mode, Clean: clean, Why: v.why, NotRight: len(v.notRight), Verified: v.verified,
		Copied: st.Copied, Deleted: st.Deleted, Host: host, Window: w,
	}
}

// holdFleet makes sure the fleet runs for the window (--scale-ecs): the
// window's command holds it while it runs, a status left steering is told
// to leave it. The function returned gives it back, unless the window did
// not end clean (it leaves work for the fleet) or --keep-fleet.
func (o *Options) holdFleet(ctx context.Context, awsCfg aws.Config, store *ledger.Store, stdout io.Writer, log zerolog.Logger) (func(clean bool), error) {
	who := fleet.Holder{Name: "planner cutover", TakeOver: true, Holds: store}
	held, err := fleet.Hold(ctx, ecs.NewFromConfig(awsCfg), applicationautoscaling.NewFromConfig(awsCfg), o.service, o.Workers, who)
	if err != nil {
		return nil, err
	}
	fleet.PrintWarmed(stdout, held.Warmed, held.Steering())
	if held.SteerErr != nil {
		log.Warn().Err(held.SteerErr).Msg("the stack's backlog scaling may scale in workers during the window")
	}
	return func(clean bool) {
		r, err := held.Return(context.WithoutCancel(ctx), o.KeepFleet || !clean)
		switch {
		case err != nil:
			log.Error().Err(err).Msgf("could not give the fleet back: planner fleet --scale-ecs %s --release", o.service)
		case r.Changed:
			fmt.Fprintf(stdout, "fleet     %s: desired count back to %d\n", o.service, r.Desired)
		}
	}, nil
}

// judgeDelta gives the verdict on the fleet's work (judge), with why the
// wait ended early if it did, and with --verify, once it is clean, the
// full comparison (w.verify is how long it took). An interrupted window is
// judged all the same, with a fresh context.
func (o *Options) judgeDelta(ctx context.Context, run string, reader *ledger.Reader, spill *spill, waitErr error, w *window, log zerolog.Logger) (*verdict, error) {
	s := &o.Job
	judgeCtx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		judgeCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
	}
	v, err := judge(judgeCtx, s, reader, spill, o.Rehearse, log)
	if err != nil {
		return nil, err
	}
	if waitErr != nil {
		v.why = waitErr.Error()
	}
	if o.Verify && v.clean() {
		started := time.Now()
		// As of the time too, with --as-of: the destination against the source then.
		if err := v.verifyAll(ctx, s.PairedFrom(o.from.SrcLister(s), listing.Options{Listers: s.Listers}), s.Comparer()); err != nil {
			return nil, fmt.Errorf("cutover %s: verify: %w", run, err)
		}
		w.verify = time.Since(started)
	}
	return v, nil
}

// verifyAll lists both sides again in full (--verify) and adds every key
// that is not right to v, counting the keys compared.
func (v *verdict) verifyAll(ctx context.Context, pairs *listing.Paired, c *plan.Comparer) error {
	var counts plan.DiffCounts
	if err := plan.Diff(ctx, pairs, c, &counts, func(ctx context.Context, f plan.Finding) error {
		v.notRight = append(v.notRight, notRight{rec: plan.NewRecord(f), why: "verify: " + string(f.Problem) + " (" + f.Reason + ")"})
		return nil
	}); err != nil {
		return err
	}
	v.verified = counts.Compared.Load()
	return nil
}
