package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

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

const cutoverUsage = `usage: planner cutover --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] --queue-url URL --ledger s3://BUCKET/PREFIX/
                       [--no-delete] [--verify] [--rehearse] [--out FILE] [--timeout DURATION] [--as-of TIME]
                       [--scale-ecs CLUSTER/SERVICE --workers N [--keep-fleet]]
       planner cutover --follow RUN --ledger s3://BUCKET/PREFIX/ [--verify] [--rehearse] [--out FILE] [--timeout DURATION]

The frozen window as one command, once production is frozen: plans what
differs between source and destination (plan --diff --delete), waits for
the fleet to copy and delete it (following the ledger, several times a
second), and gives a verdict. Exit 0 only when every difference it found
was copied or deleted as listed: each copy pinned to the ETag the listing
saw, each recorded by a worker, none failed, none skipped. Exit 1
otherwise, naming the keys that are not right; --out writes them as a
reconciliation file for planner plan --from-file. --verify then lists both
sides again in full and compares them key by key.

--scale-ecs with --workers N makes sure the fleet is running: it raises the
ECS service's desired count to at least N as the cutover starts (the tasks
start while it lists), suspends the service's dynamic scale-in for the
window, and afterwards puts both back as they were once the verdict is
clean (--keep-fleet, or a verdict that is not, leaves the count). Warm
the fleet before the freeze with planner fleet, so that the window does
not wait for Fargate to start tasks.

Before the freeze, --rehearse runs the same delta while production is live
and says how long the real window would take; keys that change while it
runs are expected then, and do not fail it.

With --as-of TIME (RFC 3339, a versioned source), there is no freeze: the
cutover makes the destination the source as it was at TIME (plan --as-of
--diff --delete), waits for the fleet and judges it against the source at
TIME. Each key is its newest version whose LastModified is not after TIME,
copied by version id; keys written since are not taken for changed ones,
and --verify compares with the source at TIME. For a copy consistent with
a database snapshot taken at TIME while production goes on writing. Not
with --follow, whose cutover is as of its mark.

With --follow RUN (planner follow's run, running since before the bulk
plan), the window lists nothing: the cutover writes a marker object under
.s3clone-marks/ in the source (grant it s3:PutObject and s3:DeleteObject
there), waits until follow has seen the marker's event and waited its
settle time for events S3 sent out of order, then until the fleet has done
every work message up to the mark. Exit 0 only when the bulk run is done,
none of its keys failed but those whose changes follow took, and no key of
follow's up to the mark failed. The clone is the source as of the mark:
production may write again once the verdict is given, and follow, holding
at the mark, stops (unless it was started with --go-on). S3 does not order
events across keys nor bound their delay, so the mark is as good as its
settle time (follow's status shows the lateness seen); --verify adds the
full listing for certainty.`

// cutoverPoll is how often the ledger is read while the fleet works: the
// verdict comes a fraction of a second after the last entry is written.
const cutoverPoll = 200 * time.Millisecond

// cutoverSlowPoll is how often the ledger is read once no entry has come in
// for ten seconds: each read lists the run's journals, and a long wait need
// not cost hundreds of LIST requests a second.
const cutoverSlowPoll = time.Second

// cutoverRefreshLimit bounds one reading of the ledger.
const cutoverRefreshLimit = time.Minute

// cutoverDepthEvery is how often the queues are read, to notice a run that
// cannot finish (its work queue empty, messages in its dead-letter queue);
// cutoverStallFor is how long that must last, with no entry coming in,
// before the cutover gives up: SQS's counts are approximate.
const (
	cutoverDepthEvery = 5 * time.Second
	cutoverStallFor   = 30 * time.Second
)

type cutoverOptions struct {
	s                job.Job
	from             job.From
	queueURL, out    string
	led              config.Ledger
	noDelete         bool
	verify, rehearse bool
	timeout          time.Duration
	scaleECS         string
	service          fleet.Service
	workers          int
	keepFleet        bool
	followRun        string
	asOf             string // --as-of: the source as of a time, parsed into from.At
	conn             config.Connection
}

func (o *cutoverOptions) parse(args []string) error {
	f := cli.NewFlags("planner cutover", cutoverUsage, os.Stderr)
	o.s.Register(f)
	o.s.Write.Register(f)
	o.s.RegisterLock(f)
	f.StringVar(&o.queueURL, "queue-url", "", "URL of the work queue the fleet drains (required)")
	o.led.Register(f, "the run is recorded there, and the fleet's work read back from it (required)")
	f.BoolVar(&o.noDelete, "no-delete", false, "leave destination objects that are not in the source (default: delete them, as plan --delete)")
	f.BoolVar(&o.verify, "verify", false, "after the fleet is done, list both sides again in full and compare every key (planner verify)")
	f.BoolVar(&o.rehearse, "rehearse", false, "a rehearsal while production is live: copy the delta, time it, and say how long the window would take")
	f.StringVar(&o.out, "out", "", "write the keys that are not right to this file, one JSON object a line (for plan --from-file)")
	f.DurationVar(&o.timeout, "timeout", 0, "give up waiting for the fleet after this long, e.g. 20m, and name what is not done (default: wait until done or stalled)")
	f.StringVar(&o.scaleECS, "scale-ecs", "", "the worker service, CLUSTER/SERVICE (the stack's ScaleEcs output): have --workers running for the window")
	f.IntVar(&o.workers, "workers", 0, "with --scale-ecs: workers to have running (at least; the desired count is raised, never lowered)")
	f.BoolVar(&o.keepFleet, "keep-fleet", false, "with --scale-ecs: leave the desired count as the window left it (default: put it back after a clean verdict)")
	f.StringVar(&o.asOf, "as-of", "", "the source as it was at this time, RFC 3339 (e.g. 2026-12-07T10:00:00Z), of a versioned source: the destination is made what the source was then, with no freeze (default: now)")
	f.StringVar(&o.followRun, "follow", "", "planner follow's run id, or latest: mark the freeze through its events and wait for its work, with no listing (source, destination and queue are the follow's)")
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	if o.followRun != "" {
		if o.asOf != "" {
			p.Addf("--as-of with --follow: a cutover --follow makes the clone the source as of its mark, now, through follow's events; for a clone as of an earlier time, run cutover --as-of without --follow")
		}
		o.validateFollow(&p)
		return p.Err()
	}
	o.s.Validate(&p)
	if o.scaleECS != "" {
		if svc, err := fleet.ParseService(o.scaleECS); err != nil {
			p.Addf("--scale-ecs: %v", err)
		} else {
			o.service = svc
		}
		if o.workers < 1 {
			p.Addf("--scale-ecs needs --workers N, at least 1: the workers the window runs with")
		}
	} else if o.workers != 0 || o.keepFleet {
		p.Addf("--workers and --keep-fleet go with --scale-ecs CLUSTER/SERVICE (the stack's ScaleEcs output)")
	}
	o.s.Write.Validate(&p)
	o.from = job.From{Diff: true, Delete: !o.noDelete, AsOf: o.asOf}
	o.from.ValidateAsOf(&p, time.Now())
	if o.queueURL == "" {
		p.Addf("--queue-url is required: the work queue the fleet drains")
	}
	config.CheckQueueURL(&p, "queue-url", o.queueURL)
	o.led.Validate(&p, true)
	o.led.CheckApart(&p, "source", o.s.Src)
	o.led.CheckApart(&p, "dest", o.s.Dst)
	if o.rehearse && o.verify && o.asOf == "" {
		p.Addf("--verify with --rehearse: a full comparison against a source production still writes to cannot come out equal; verify in the real window")
	}
	if o.timeout < 0 {
		p.Addf("--timeout %s: must be positive, e.g. 20m", o.timeout)
	}
	cli.CheckFileDir(&p, "out", o.out)
	o.conn.Validate(&p)
	return p.Err()
}

// validateFollow checks the flags of a cutover --follow, which takes its
// source, destination and queue from the follow's run.
func (o *cutoverOptions) validateFollow(p *cli.Problems) {
	if err := ledger.CheckRunID(o.followRun); err != nil && o.followRun != "latest" {
		p.Addf("--follow %q: %v (or latest: the newest follow in the ledger)", o.followRun, err)
	}
	if o.noDelete {
		p.Addf("--no-delete with --follow: follow mirrors deletions as they happen; a cutover --follow cannot leave them out")
	}
	if o.scaleECS != "" || o.workers != 0 || o.keepFleet {
		p.Addf("--scale-ecs with --follow: the fleet already runs for follow; size it beforehand with planner fleet")
	}
	if o.timeout < 0 {
		p.Addf("--timeout %s: must be positive, e.g. 20m", o.timeout)
	}
	o.led.Validate(p, true)
	cli.CheckFileDir(p, "out", o.out)
	o.conn.Validate(p)
}

// window is how long each part of a cutover took.
type window struct {
	started       time.Time
	plan, fleet   time.Duration // the plan (listing, comparing, sending); then the fleet's tail
	verify, total time.Duration
}

func cutoverCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o cutoverOptions
	if err := o.parse(args); err != nil {
		return err
	}
	if o.followRun != "" {
		return cutoverFollow(ctx, &o, stdout)
	}
	w := window{started: time.Now()}
	s := &o.s
	log, awsCfg, err := o.conn.Open(ctx, s.Listers*2+plan.Deciders+plan.Senders)
	if err != nil {
		return err
	}
	regions := o.conn.AWS.Regions(awsCfg)
	if err := s.Connect(ctx, regions); err != nil {
		return err
	}
	if err := o.from.CheckAsOf(ctx, s); err != nil {
		return err
	}
	if err := s.Inspect(ctx, log); err != nil {
		return err
	}
	if !o.from.At.IsZero() {
		s.AsOf = listing.NewAsOf(s.SrcAPI, o.from.At) // the preflight's sample, and the verdict's second look, read the versions then
	}
	ledgerStore := o.led.Open(ctx, regions)
	endedClean := false // set once the verdict is clean: only then is the fleet given back
	if o.scaleECS != "" {
		// The window's command holds the fleet while it runs: a status left
		// steering is told to leave it, and gets it back at the end.
		who := fleet.Holder{Name: "planner cutover", TakeOver: true, Holds: ledgerStore}
		held, err := fleet.Hold(ctx, ecs.NewFromConfig(awsCfg), applicationautoscaling.NewFromConfig(awsCfg), o.service, o.workers, who)
		if err != nil {
			return err
		}
		fleet.PrintWarmed(stdout, held.Warmed, held.Steering())
		if held.SteerErr != nil {
			log.Warn().Err(held.SteerErr).Msg("the stack's backlog scaling may scale in workers during the window")
		}
		defer func() {
			// A window that did not end clean leaves work for the fleet: keep it.
			r, err := held.Return(context.WithoutCancel(ctx), o.keepFleet || !endedClean)
			switch {
			case err != nil:
				log.Error().Err(err).Msgf("could not give the fleet back: planner fleet --scale-ecs %s --release", o.service)
			case r.Changed:
				fmt.Fprintf(stdout, "fleet     %s: desired count back to %d\n", o.service, r.Desired)
			}
		}()
	}
	rec, err := plan.NewRecordFile(o.out)
	if err != nil {
		return cli.Usagef("--out %s: %v", o.out, err)
	}
	defer rec.Discard()
	sum := s.NewSummary()
	mode := "cutover"
	if o.rehearse {
		mode = "rehearsal"
	}
	opts := map[string]string{"listers": fmt.Sprint(s.Listers), "batch_keys": fmt.Sprint(s.BatchKeys), "cutover": mode}
	if !o.from.At.IsZero() {
		opts["as_of"] = o.from.At.UTC().Format(time.RFC3339Nano)
	}
	run := s.RunRecord(sum, &o.from, o.queueURL, opts)
	sqsAPI := o.conn.AWS.SQS(awsCfg)
	work, store, runLog, err := job.BeginPlan(ctx, s, sum, run, queue.NewSQS(sqsAPI, o.queueURL), ledgerStore, log)
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
	// Dead letters already there (an earlier run's) are not this run's.
	baseline := deadLettered(status.ReadDepth(ctx, sqsAPI, o.queueURL, log))
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
	st, waitErr := waitForFleet(ctx, reader, spill, sqsAPI, o.queueURL, baseline, o.timeout, log)
	w.fleet = time.Since(w.started) - w.plan
	judgeCtx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		judgeCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
	}
	v, err := judge(judgeCtx, s, reader, spill, o.rehearse, log)
	if err != nil {
		return err
	}
	if waitErr != nil {
		v.why = waitErr.Error()
	}
	if o.verify && v.clean() {
		started := time.Now()
		var counts plan.DiffCounts
		// As of the time too, with --as-of: the destination against the source then.
		if err := plan.Diff(ctx, s.PairedFrom(o.from.SrcLister(s), listing.Options{Listers: s.Listers}), s.Comparer(), &counts, func(ctx context.Context, f plan.Finding) error {
			v.notRight = append(v.notRight, notRight{rec: plan.NewRecord(f), why: "verify: " + string(f.Problem) + " (" + f.Reason + ")"})
			return nil
		}); err != nil {
			return fmt.Errorf("cutover %s: verify: %w", sum.Run, err)
		}
		w.verify = time.Since(started)
		v.verified = counts.Compared.Load()
	}
	w.total = time.Since(w.started)
	recon, err := v.writeRecon(rec)
	if err != nil {
		return err
	}
	v.asOf = o.from.At
	v.print(stdout, st, w, o.out, o.rehearse, o.from.Delete)
	// In the ledger too: a cutover run as an ECS task loses its files with
	// the task, and its verdict is for planner status to show anyone.
	host, _ := os.Hostname()
	lv := ledger.Verdict{
		Run: sum.Run, Mode: mode, Clean: v.clean() && ctx.Err() == nil, Why: v.why, NotRight: len(v.notRight), Verified: v.verified,
		Copied: st.Copied, Deleted: st.Deleted, Host: host,
		Window: ledger.VerdictWindow{Plan: w.plan, Fleet: w.fleet, Verify: w.verify, Total: w.total},
	}
	switch url, err := store.PutVerdict(context.WithoutCancel(ctx), lv, recon); {
	case err != nil:
		log.Error().Err(err).Msg("could not record the verdict in the ledger (it is printed above)")
	case url != "":
		fmt.Fprintf(stdout, "recorded  the verdict in %s, the keys in %s (aws s3 cp it, then planner plan --from-file)\n", store, url)
	default:
		fmt.Fprintf(stdout, "recorded  the verdict in %s\n", store)
	}
	endedClean = lv.Clean
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("cutover %s: %w (the keys above were not done when it stopped; the fleet goes on with them)", sum.Run, ctx.Err())
	case !v.clean():
		return fmt.Errorf("%w: cutover %s: %d keys not copied or deleted as listed", cli.ErrMismatch, sum.Run, len(v.notRight))
	}
	return nil
}

// waitForFleet reads the ledger until every message the plan sent (those
// spill holds) has an entry. It polls every cutoverPoll while entries come
// in, and up to a second apart when none has for a while. It gives up when
// the run cannot finish (the work queue empty, nothing in flight and more
// dead letters than before the plan, for cutoverStallFor with no entry
// coming in), after timeout (if not 0), or when ctx ends; it returns the
// last status and why it stopped early.
func waitForFleet(ctx context.Context, reader *ledger.Reader, spill *spill, sqs queue.API, queueURL string, baseline int64, timeout time.Duration, log zerolog.Logger) (ledger.Status, error) {
	started := time.Now()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var (
		st           ledger.Status
		lastEntry    = started // when the number of entries last went up
		entries      = int64(-1)
		lastDepth    time.Time
		stalledSince time.Time // since when the queues have looked stalled
		lastLog      = started
		failedRead   int
	)
	for {
		refresh, cancel := context.WithTimeout(ctx, cutoverRefreshLimit)
		err := reader.Refresh(refresh)
		cancel()
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return st, waitEnded(ctx, timeout, st)
		case err != nil:
			if failedRead++; failedRead >= 10 {
				return st, fmt.Errorf("reading the ledger failed 10 times in a row: %w", err)
			}
			log.Warn().Err(err).Msg("reading the ledger failed; trying again")
		default:
			failedRead = 0
			st = reader.Tally().Status()
			if st.Done != entries {
				entries, lastEntry, stalledSince = st.Done, now, time.Time{}
			}
			if st.Complete && spill.allDone(reader.Tally()) {
				return st, nil
			}
		}
		if now.Sub(lastDepth) >= cutoverDepthEvery {
			lastDepth = now
			d := status.ReadDepth(ctx, sqs, queueURL, log)
			switch dead := deadLettered(d); {
			case d.Error != "" || d.Visible > 0 || d.InFlight > 0 || dead <= baseline:
				stalledSince = time.Time{}
			case stalledSince.IsZero():
				stalledSince = now
			case now.Sub(stalledSince) >= cutoverStallFor && now.Sub(lastEntry) >= cutoverStallFor:
				return st, fmt.Errorf("the work queue has been empty for %s with %d more messages in its dead-letter queue than before the plan: fix what the workers' log says, then planner redrive",
					now.Sub(stalledSince).Round(time.Second), dead-baseline)
			}
		}
		if now.Sub(lastLog) >= 10*time.Second {
			lastLog = now
			msg := log.Info().Int64("done", st.Done).Int64("sent", int64(spill.sent())).Int64("keys_done", st.DoneObjects).Int64("keys", st.Planned.Objects)
			switch {
			case st.Done == 0:
				msg.Msg("waiting for the fleet: no message finished yet (is a worker running?)")
			case now.Sub(lastEntry) >= time.Minute:
				msg.Dur("since_last", now.Sub(lastEntry).Round(time.Second)).Msg("waiting for the fleet: no message finished lately (a large copy, or a stuck worker?)")
			default:
				msg.Msg("waiting for the fleet")
			}
		}
		poll := cutoverPoll
		if now.Sub(lastEntry) >= 10*time.Second {
			poll = cutoverSlowPoll // nothing has come in for a while: read the ledger less often
		}
		select {
		case <-ctx.Done():
			return st, waitEnded(ctx, timeout, st)
		case <-time.After(poll):
		}
	}
}

// waitEnded says why ctx ended a wait.
func waitEnded(ctx context.Context, timeout time.Duration, st ledger.Status) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
		return fmt.Errorf("gave up waiting after --timeout %s: %d of %d messages done", timeout, st.Done, st.Sent)
	}
	return ctx.Err()
}

// deadLettered is how many messages wait in the dead-letter queue, 0 when
// there is none or it cannot be read.
func deadLettered(d *status.Depth) int64 {
	if d == nil || d.DeadLettered == nil {
		return 0
	}
	return *d.DeadLettered
}
