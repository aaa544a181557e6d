package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/pace"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// Clients are what status reads and steers through; the command builds
// them (config), so this package needs no factories.
type Clients struct {
	// Ledger holds the runs to read.
	Ledger *ledger.Store
	// SQS reads the work queue's depth.
	SQS queue.API
	// ECS sizes the worker service and AutoScaling suspends its dynamic
	// scale-in meanwhile; used only with Options.ScaleECS.
	ECS         fleet.API
	AutoScaling fleet.AutoScaling
	Log         zerolog.Logger
}

// LedgerError is the ledger refusing or failing the first reads, for the
// command to say what to fix (config.LedgerError names the grant a refusal
// needs: the ledger's errors carry the call).
type LedgerError struct {
	Err error
}

func (e *LedgerError) Error() string { return e.Err.Error() }

// Unwrap returns the ledger's error.
func (e *LedgerError) Unwrap() error { return e.Err }

// Run is planner status: it reads the run (the latest, unless o.RunID),
// then prints its failed keys (o.Failures), one view, or a view at every
// refresh until the run ends (o.Watch), sizing the worker service with
// o.ScaleECS. Errors: *LedgerError when the ledger cannot be read at
// first, a cli.UsageError for a run that does not exist, an error wrapping
// cli.ErrObjectsFailed when a watched run stalls or ends incomplete. An
// interrupted watch (ctx done) returns nil.
func Run(ctx context.Context, o Options, c Clients, stdout io.Writer) error {
	store := c.Ledger
	if err := store.CheckBucket(ctx); err != nil {
		return &LedgerError{Err: err}
	}
	runID := o.RunID
	if runID == "" {
		var err error
		if runID, err = store.Latest(ctx); errors.Is(err, ledger.ErrNotFound) {
			holds, err := store.FleetHolds(ctx) // a fleet warmed before the first run
			if err != nil {
				c.Log.Warn().Err(err).Msg("cannot read who holds the fleet")
			}
			return printNoRun(stdout, store.String(), holds, o.JSON)
		} else if err != nil {
			return &LedgerError{Err: err}
		}
	}
	reader := store.Follow(runID)
	if err := reader.Refresh(ctx); errors.Is(err, ledger.ErrNotFound) {
		return cli.Usagef("--run-id %s: no such run in %s", runID, store)
	} else if err != nil {
		return &LedgerError{Err: err}
	}
	if o.Failures {
		return listFailures(ctx, reader, o.Out, o.JSON, stdout)
	}
	s := &session{Options: o, Clients: c, run: runID, reader: reader, bulk: bulkReader{
		find: store.Bulk,
		open: func(run string) runReader { return store.Follow(run) },
	}}
	if o.ScaleECS != "" {
		// While status steers the fleet, the stack's backlog scaling may add
		// workers but not take away those status asked for.
		// A steering that cannot be taken is said, not fatal: status still
		// sizes the fleet, but backlog scaling may scale in what it sets.
		steer, err := fleet.Steer(ctx, c.AutoScaling, o.Service, fleet.Holder{Name: "planner status", Holds: store})
		if err != nil {
			c.Log.Warn().Err(err).Msg("the stack's backlog scaling may scale in what status scales out")
		}
		s.steer = steer
		defer func() {
			if err := steer.Release(context.WithoutCancel(ctx)); err != nil {
				c.Log.Error().Err(err).Msgf("could not resume the dynamic scale-in of %s: run planner fleet --scale-ecs %s --release", o.Service, o.Service)
			}
		}()
	}
	s.until = time.Now().Add(o.Deadline)
	if o.Watch == 0 {
		v, err := s.view(ctx)
		if err != nil {
			return err
		}
		return s.show(stdout, v)
	}
	return s.watchLoop(ctx, stdout, s)
}

// printNoRun says that the ledger at where holds no run yet, and who holds
// the fleet (warmed before the first run).
func printNoRun(w io.Writer, where string, holds []ledger.FleetHold, asJSON bool) error {
	if asJSON {
		if len(holds) == 0 {
			_, err := fmt.Fprintln(w, "{}")
			return err
		}
		return json.NewEncoder(w).Encode(map[string]any{"fleet_holds": holds})
	}
	fmt.Fprintf(w, "no run recorded in %s yet\n", where)
	PrintHolds(w, holds)
	return nil
}

// session is one status command: one view, or one per refresh.
type session struct {
	Options
	Clients
	run    string
	reader *ledger.Reader
	steer  *fleet.Steering // with --scale-ecs
	until  time.Time       // the deadline
	bulk   bulkReader
}

// refresh reads what is new in the run's record.
func (s *session) refresh(ctx context.Context) error { return s.reader.Refresh(ctx) }

// view builds the view from what the reader has read (scaling the fleet
// when asked to).
func (s *session) view(ctx context.Context) (*View, error) {
	st := s.reader.Tally().Status()
	failures, err := s.reader.Failures(ctx, ledger.MaxFailures)
	if err != nil {
		return nil, err
	}
	st.Failures = failures
	queueURL := s.QueueURL
	if queueURL == "" && st.Run != nil {
		queueURL = st.Run.Queue
	}
	var depth *Depth
	if queueURL != "" {
		depth = ReadDepth(ctx, s.SQS, queueURL, s.Log)
	}
	var left time.Duration
	if s.Deadline > 0 {
		left = max(time.Until(s.until), time.Nanosecond) // a passed deadline still sizes for "as soon as possible"
	}
	v := New(s.run, st, depth, left)
	store := s.Ledger
	switch vd, err := store.Verdict(ctx, s.run); {
	case err == nil:
		v.Verdict, v.ReconURL = vd, store.ReconURL(vd)
	case !errors.Is(err, ledger.ErrNotFound):
		s.Log.Warn().Err(err).Msg("cannot read the run's verdict")
	}
	if st.Run != nil && st.Run.Mode == ledger.ModeFollow {
		switch fr, err := store.FollowRecord(ctx, s.run); {
		case err == nil:
			v.Follow = NewFollowing(*fr, st, s.bulk.rate(ctx, st.Run), time.Now())
		case !errors.Is(err, ledger.ErrNotFound):
			s.Log.Warn().Err(err).Msg("cannot read follow's record")
		}
	}
	if v.Holds, err = store.FleetHolds(ctx); err != nil {
		s.Log.Warn().Err(err).Msg("cannot read who holds the fleet")
	}
	if !v.Complete {
		switch presences, err := store.Presences(ctx, pace.Fresh); {
		case err != nil:
			s.Log.Warn().Err(err).Msg("cannot read how the fleet paces its writes")
		case st.Run != nil:
			v.Pacing = NewPacing(presences, st.Run.Dest.Bucket, time.Now())
		default:
			v.Pacing = NewPacing(presences, "", time.Now())
		}
	}
	if s.ScaleECS != "" {
		v.Scale = s.scale(ctx, v)
	}
	return &v, nil
}

// scale sizes the ECS service for the deadline. A failure is shown with the
// view, not fatal, so a watch carries on.
func (s *session) scale(ctx context.Context, v View) *Scale {
	wanted := fleet.Unknown
	switch {
	case v.Complete, v.Stalled, v.Ended():
		wanted = s.Bounds.Min
	case v.Deadline != nil && v.Deadline.WorkersNeeded > 0:
		wanted = v.Deadline.WorkersNeeded
	} // else still planning, or no rate yet: keep the fleet, at least one worker
	if owns, other := s.steer.Owns(ctx); !owns {
		// Another command holds the fleet (planner fleet before a window, a
		// cutover): status leaves its size to it.
		why := "who holds the fleet cannot be read"
		if other != nil {
			why = fmt.Sprintf("%s on %s holds it since %s (if that command is gone: planner fleet --scale-ecs %s --release)",
				other.Holder, other.Host, other.Since.Format(time.RFC3339), s.Service)
		}
		return &Scale{Result: fleet.Result{Service: s.Service.String(), Wanted: wanted}, Error: "not scaled: " + why}
	}
	r, err := fleet.Scale(ctx, s.ECS, s.Service, wanted, s.Bounds)
	sv := &Scale{Result: r}
	if err != nil {
		sv.Error = err.Error()
		s.Log.Warn().Err(err).Msg("could not scale the worker service")
	}
	return sv
}

// show prints a view: text, indented JSON, or with a watch a JSON object
// a line.
func (s *session) show(w io.Writer, v *View) error {
	if s.JSON {
		enc := json.NewEncoder(w)
		if s.Watch == 0 {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(v)
	}
	return v.Print(w)
}

// views is where a watch gets its views: the session, or a test's fake.
type views interface {
	refresh(ctx context.Context) error
	view(ctx context.Context) (*View, error)
}

// watchLoop refreshes until the run is complete (exit 0), stalls or ends
// incomplete (exit 1), ctx ends (an interrupt: exit 0 too, it is how a
// watch is stopped) or five refreshes in a row fail; a failed refresh is
// logged and tried again. On a terminal each refresh redraws the screen;
// otherwise views follow one another.
func (s *session) watchLoop(ctx context.Context, w io.Writer, src views) error {
	redraw := !s.JSON && cli.IsTerminal(w)
	tick := time.NewTicker(s.Watch)
	defer tick.Stop()
	const giveUp = 5 // refreshes failed in a row (each after the SDK's own retries)
	for failed, first := 0, true; ; first = false {
		var v *View
		err := error(nil)
		if !first { // the first view is of what Run already read
			err = src.refresh(ctx)
		}
		if err == nil {
			v, err = src.view(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if failed++; failed >= giveUp {
				return fmt.Errorf("%d refreshes in a row failed, the last: %w", failed, err)
			}
			s.Log.Warn().Err(err).Int("failed_in_a_row", failed).Msg("refresh failed; trying again at the next interval")
		default:
			failed = 0
			if redraw {
				fmt.Fprint(w, "\033[H\033[2J")
			}
			if !s.JSON {
				fmt.Fprintf(w, "--- %s (every %s; Ctrl-C to stop)\n", time.Now().Format("15:04:05"), s.Watch)
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
func watchEnd(v *View) (bool, error) {
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

// runReader reads one run's record as it grows: *ledger.Reader.
type runReader interface {
	Refresh(ctx context.Context) error
	Tally() *ledger.Tally
}

var _ runReader = (*ledger.Reader)(nil)

// bulkReader reads the bulk copy of a follow's pair (its rate, for the
// prediction), found once and read anew at each refresh.
type bulkReader struct {
	find   func(ctx context.Context, src, dst plan.Location) ([]*ledger.Run, error) // Store.Bulk
	open   func(run string) runReader                                               // Store.Follow
	reader runReader                                                                // once found
}

// rate is the rate of the bulk copy of run's pair (the fleet copying as
// fast as it can), 0 when there is none or it cannot be read. A watch reads
// only what is new in it at each refresh.
func (b *bulkReader) rate(ctx context.Context, run *ledger.Run) float64 {
	if b.reader == nil {
		chain, err := b.find(ctx, run.Source, run.Dest)
		if err != nil {
			return 0
		}
		b.reader = b.open(chain[len(chain)-1].ID)
	}
	if err := b.reader.Refresh(ctx); err != nil {
		return 0
	}
	return b.reader.Tally().Status().Rate
}
