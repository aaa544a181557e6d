package main

import (
	"context"
	"encoding/json"
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
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/pace"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/status"
)

const statusUsage = `usage: planner status --ledger s3://BUCKET/PREFIX/ [--run-id ID] [--queue-url URL] [--json] [--failures [--out FILE]]
       [--deadline DURATION [--scale-ecs CLUSTER/SERVICE [--min-workers N] [--max-workers N]]] [--watch INTERVAL]

Reads a run's record in the ledger (the latest run, unless --run-id says
otherwise): what its plan sent against what the workers finished, each work
message once, however often it was delivered. Status only reads: any number
of status commands, anywhere, see the same totals. A run is complete when
its plan has ended and every message it sent is done.

--failures lists every failed key; with --out it writes them as a
reconciliation file for planner plan --from-file. --deadline says how many
workers would finish the rest in time, from the rate each worker reached in
the last minute; --scale-ecs sets an ECS service's desired count to that,
within --min-workers and --max-workers (once the run is complete: to
--min-workers). While it does, the service's dynamic scale-in is suspended,
so that the stack's backlog scaling cannot stop workers status started; it
is resumed when status ends. --watch refreshes the view every INTERVAL, reading only what
is new, until the run is complete or interrupted; the deadline then counts
down from when status started, and each refresh scales again.`

// statusOptions are status's flags.
type statusOptions struct {
	ledger          config.Ledger
	queueURL, runID string
	asJSON          bool
	failures        bool
	out             string
	deadline, watch time.Duration
	scaleECS        string
	service         fleet.Service
	bounds          fleet.Bounds
	conn            config.Connection
}

func statusCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o statusOptions
	f := cli.NewFlags("planner status", statusUsage, os.Stderr)
	o.ledger.Register(f, "the runs to read (required)")
	f.StringVar(&o.runID, "run-id", "", "run to show (default: the latest run in the ledger)")
	f.StringVar(&o.queueURL, "queue-url", "", "work queue whose depth to show (default: the one the plan used)")
	f.BoolVar(&o.asJSON, "json", false, "print JSON instead of text (with --watch: one object per line per refresh)")
	f.BoolVar(&o.failures, "failures", false, "list every failed key (read from the ledger) instead of the progress view")
	f.StringVar(&o.out, "out", "", "with --failures: write the failed keys to this file as a reconciliation file, for planner plan --from-file")
	f.DurationVar(&o.deadline, "deadline", 0, "time left to finish, e.g. 30m: prints how many workers would finish the rest by then")
	f.StringVar(&o.scaleECS, "scale-ecs", "", "with --deadline: set this ECS service's desired count (CLUSTER/SERVICE, the stack's ScaleEcs output) to the workers needed")
	f.IntVar(&o.bounds.Min, "min-workers", 0, "with --scale-ecs: fewest workers to set (and what a complete run scales to)")
	f.IntVar(&o.bounds.Max, "max-workers", 16, "with --scale-ecs: most workers to set (keep within the account's Fargate quota)")
	f.DurationVar(&o.watch, "watch", 0, "refresh every INTERVAL (at least 1s, e.g. 10s) until the run is complete or interrupted")
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	log, awsCfg, err := o.conn.Open(ctx, 64)
	if err != nil {
		return err
	}
	store := o.ledger.Open(ctx, o.conn.AWS.Regions(awsCfg))
	if err := store.CheckBucket(ctx); err != nil {
		return config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
	}
	runID := o.runID
	if runID == "" {
		if runID, err = store.Latest(ctx); errors.Is(err, ledger.ErrNotFound) {
			holds, err := store.FleetHolds(ctx) // a fleet warmed before the first run
			if err != nil {
				log.Warn().Err(err).Msg("cannot read who holds the fleet")
			}
			if o.asJSON {
				if len(holds) == 0 {
					_, err := fmt.Fprintln(stdout, "{}")
					return err
				}
				return json.NewEncoder(stdout).Encode(map[string]any{"fleet_holds": holds})
			}
			fmt.Fprintf(stdout, "no run recorded in %s yet\n", store)
			status.PrintHolds(stdout, holds)
			return nil
		} else if err != nil {
			return config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
		}
	}
	reader := store.Follow(runID)
	if err := reader.Refresh(ctx); errors.Is(err, ledger.ErrNotFound) {
		return cli.Usagef("--run-id %s: no such run in %s", runID, store)
	} else if err != nil {
		return config.LedgerError(err, store, "s3:GetObject on "+config.LedgerARN(store, "runs/*"))
	}
	if o.failures {
		return listFailures(ctx, reader, o.out, o.asJSON, stdout)
	}
	var scaler fleet.API
	var steering *fleet.Steering
	if o.scaleECS != "" {
		scaler = ecs.NewFromConfig(awsCfg)
		// While status steers the fleet, the stack's backlog scaling may add
		// workers but not take away those status asked for.
		// A steering that cannot be taken is said, not fatal: status still
		// sizes the fleet, but backlog scaling may scale in what it sets.
		steer, err := fleet.Steer(ctx, applicationautoscaling.NewFromConfig(awsCfg), o.service, fleet.Holder{Name: "planner status", Holds: store})
		if err != nil {
			log.Warn().Err(err).Msg("the stack's backlog scaling may scale in what status scales out")
		}
		steering = steer
		defer func() {
			if err := steer.Release(context.WithoutCancel(ctx)); err != nil {
				log.Error().Err(err).Msgf("could not resume the dynamic scale-in of %s: run planner fleet --scale-ecs %s --release", o.service, o.service)
			}
		}()
	}
	s := statusSession{statusOptions: o, run: runID, reader: reader, store: store, sqs: o.conn.AWS.SQS(awsCfg), ecs: scaler, steer: steering, log: log, until: time.Now().Add(o.deadline)}
	if o.watch == 0 {
		v, err := s.view(ctx)
		if err != nil {
			return err
		}
		return s.show(stdout, v)
	}
	return s.watchLoop(ctx, stdout)
}

func (o *statusOptions) validate() error {
	var p cli.Problems
	o.ledger.Validate(&p, true)
	config.CheckQueueURL(&p, "queue-url", o.queueURL)
	if o.runID != "" {
		if err := ledger.CheckRunID(o.runID); err != nil {
			p.Addf("--run-id: %v", err)
		}
	}
	if o.deadline < 0 {
		p.Addf("--deadline %s: must be positive, e.g. 30m", o.deadline)
	}
	if o.watch != 0 && o.watch < time.Second {
		p.Addf("--watch %s: refresh at most once a second, e.g. --watch 10s", o.watch)
	}
	if o.out != "" && !o.failures {
		p.Addf("--out goes with --failures: the reconciliation file lists the failed keys")
	}
	cli.CheckFileDir(&p, "out", o.out)
	if o.failures && (o.watch != 0 || o.deadline != 0 || o.scaleECS != "") {
		p.Addf("--failures lists the failed keys once: leave out --watch, --deadline and --scale-ecs")
	}
	if o.scaleECS != "" {
		svc, err := fleet.ParseService(o.scaleECS)
		if err != nil {
			p.Addf("--scale-ecs: %v", err)
		}
		o.service = svc
		if o.deadline == 0 {
			p.Addf("--scale-ecs needs --deadline: the time the rest must be copied in, e.g. --deadline 45m")
		}
		if o.bounds.Min < 0 || o.bounds.Max < 1 || o.bounds.Min > o.bounds.Max {
			p.Addf("--min-workers %d --max-workers %d: want 0 <= min <= max and max >= 1", o.bounds.Min, o.bounds.Max)
		}
	}
	o.conn.Validate(&p)
	return p.Err()
}

// statusSession is one status command: one view, or one per refresh.
type statusSession struct {
	statusOptions
	run    string
	reader *ledger.Reader
	store  *ledger.Store
	sqs    queue.API
	ecs    fleet.API
	steer  *fleet.Steering // with --scale-ecs
	log    zerolog.Logger
	until  time.Time // the deadline
	// bulk reads the bulk copy of a follow's pair (its rate, for the
	// prediction), found once and read anew at each refresh.
	bulk *ledger.Reader
}

// view builds the view from what the reader has read (scaling the fleet
// when asked to).
func (s *statusSession) view(ctx context.Context) (*status.View, error) {
	st := s.reader.Tally().Status()
	failures, err := s.reader.Failures(ctx, ledger.MaxFailures)
	if err != nil {
		return nil, err
	}
	st.Failures = failures
	queueURL := s.queueURL
	if queueURL == "" && st.Run != nil {
		queueURL = st.Run.Queue
	}
	var depth *status.Depth
	if queueURL != "" {
		depth = status.ReadDepth(ctx, s.sqs, queueURL, s.log)
	}
	var left time.Duration
	if s.deadline > 0 {
		left = max(time.Until(s.until), time.Nanosecond) // a passed deadline still sizes for "as soon as possible"
	}
	v := status.New(s.run, st, depth, left)
	switch vd, err := s.store.Verdict(ctx, s.run); {
	case err == nil:
		v.Verdict, v.ReconURL = vd, s.store.ReconURL(vd)
	case !errors.Is(err, ledger.ErrNotFound):
		s.log.Warn().Err(err).Msg("cannot read the run's verdict")
	}
	if st.Run != nil && st.Run.Mode == ledger.ModeFollow {
		switch fr, err := s.store.FollowRecord(ctx, s.run); {
		case err == nil:
			v.Follow = status.NewFollowing(*fr, st, s.bulkRate(ctx, st.Run), time.Now())
		case !errors.Is(err, ledger.ErrNotFound):
			s.log.Warn().Err(err).Msg("cannot read follow's record")
		}
	}
	if v.Holds, err = s.store.FleetHolds(ctx); err != nil {
		s.log.Warn().Err(err).Msg("cannot read who holds the fleet")
	}
	if !v.Complete {
		switch presences, err := s.store.Presences(ctx, pace.Fresh); {
		case err != nil:
			s.log.Warn().Err(err).Msg("cannot read how the fleet paces its writes")
		case st.Run != nil:
			v.Pacing = status.NewPacing(presences, st.Run.Dest.Bucket, time.Now())
		default:
			v.Pacing = status.NewPacing(presences, "", time.Now())
		}
	}
	if s.ecs != nil {
		v.Scale = s.scale(ctx, v)
	}
	return &v, nil
}

// scale sizes the ECS service for the deadline. A failure is shown with the
// view, not fatal, so a watch carries on.
func (s *statusSession) scale(ctx context.Context, v status.View) *status.Scale {
	wanted := fleet.Unknown
	switch {
	case v.Complete, v.Stalled, v.Ended():
		wanted = s.bounds.Min
	case v.Deadline != nil && v.Deadline.WorkersNeeded > 0:
		wanted = v.Deadline.WorkersNeeded
	} // else still planning, or no rate yet: keep the fleet, at least one worker
	if owns, other := s.steer.Owns(ctx); !owns {
		// Another command holds the fleet (planner fleet before a window, a
		// cutover): status leaves its size to it.
		why := "who holds the fleet cannot be read"
		if other != nil {
			why = fmt.Sprintf("%s on %s holds it since %s (if that command is gone: planner fleet --scale-ecs %s --release)",
				other.Holder, other.Host, other.Since.Format(time.RFC3339), s.service)
		}
		return &status.Scale{Result: fleet.Result{Service: s.service.String(), Wanted: wanted}, Error: "not scaled: " + why}
	}
	r, err := fleet.Scale(ctx, s.ecs, s.service, wanted, s.bounds)
	sv := &status.Scale{Result: r}
	if err != nil {
		sv.Error = err.Error()
		s.log.Warn().Err(err).Msg("could not scale the worker service")
	}
	return sv
}

func (s *statusSession) show(w io.Writer, v *status.View) error {
	if s.asJSON {
		enc := json.NewEncoder(w)
		if s.watch == 0 {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(v)
	}
	return v.Print(w)
}

// watchLoop refreshes until the run is complete (exit 0), stalls or ends
// incomplete (exit 1), ctx ends (an interrupt: exit 0 too, it is how a
// watch is stopped) or five refreshes in a row fail; a failed refresh is
// logged and tried again. On a terminal each refresh redraws the screen;
// otherwise views follow one another.
func (s *statusSession) watchLoop(ctx context.Context, w io.Writer) error {
	redraw := !s.asJSON && cli.IsTerminal(w)
	tick := time.NewTicker(s.watch)
	defer tick.Stop()
	const giveUp = 5 // refreshes failed in a row (each after the SDK's own retries)
	for failed, first := 0, true; ; first = false {
		var v *status.View
		err := error(nil)
		if !first { // the first view is of what statusCommand already read
			err = s.reader.Refresh(ctx)
		}
		if err == nil {
			v, err = s.view(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if failed++; failed >= giveUp {
				return fmt.Errorf("%d refreshes in a row failed, the last: %w", failed, err)
			}
			s.log.Warn().Err(err).Int("failed_in_a_row", failed).Msg("refresh failed; trying again at the next interval")
		default:
			failed = 0
			if redraw {
				fmt.Fprint(w, "\033[H\033[2J")
			}
			if !s.asJSON {
				fmt.Fprintf(w, "--- %s (every %s; Ctrl-C to stop)\n", time.Now().Format("15:04:05"), s.watch)
			}
			if err := s.show(w, v); err != nil {
				return err
			}
			if done, err := watchEnd(v); done {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// watchEnd says whether a watch ends at view v, and with what error.
func watchEnd(v *status.View) (bool, error) {
	switch {
	case v.Complete:
		return true, nil
	case v.Stalled:
		return true, fmt.Errorf("%w: the work queue is empty and %d messages are in its dead-letter queue; fix what the failures above say, then planner redrive",
			errStalled, *v.Queue.DeadLettered)
	case v.Ended():
		return true, fmt.Errorf("%w: the plan did not finish (%s); run it again, with --checkpoint it carries on", errStalled, v.PlanError)
	}
	return false, nil
}

// errStalled ends a watch that cannot end by itself: exit 1.
var errStalled = fmt.Errorf("run incomplete: %w", cli.ErrObjectsFailed)

// listFailures prints every failed key of the run, or writes them to out
// as a reconciliation file (only once all were read: never half-written).
func listFailures(ctx context.Context, r *ledger.Reader, out string, asJSON bool, stdout io.Writer) error {
	entries, err := r.Failed(ctx, 0)
	if err != nil {
		return err
	}
	rec, err := plan.NewRecordFile(out)
	if err != nil {
		return cli.Usagef("--out %s: %v", out, err)
	}
	defer rec.Discard()
	n := 0
	enc := json.NewEncoder(stdout)
	for _, e := range entries {
		for _, f := range e.Failed {
			n++
			switch {
			case out != "":
				if err := rec.Encode(e.Record(f)); err != nil {
					return err
				}
			case asJSON:
				if err := enc.Encode(f); err != nil {
					return err
				}
			default:
				fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", f.Key, f.Reason, f.Code, f.Detail)
			}
		}
	}
	if err := rec.Commit(); err != nil {
		return err
	}
	if out != "" {
		fmt.Fprintf(stdout, "written   %s (%d failed keys: planner plan --from-file %s)\n", out, n, out)
	}
	return nil
}

// bulkRate is the rate of the bulk copy of run's pair (the fleet copying as
// fast as it can), 0 when there is none or it cannot be read. A watch reads
// only what is new in it at each refresh.
func (s *statusSession) bulkRate(ctx context.Context, run *ledger.Run) float64 {
	if s.bulk == nil {
		chain, err := s.store.Bulk(ctx, run.Source, run.Dest)
		if err != nil {
			return 0
		}
		s.bulk = s.store.Follow(chain[len(chain)-1].ID)
	}
	if err := s.bulk.Refresh(ctx); err != nil {
		return 0
	}
	return s.bulk.Tally().Status().Rate
}
