package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
)

// SourceAPI is what planner follow asks of the source bucket: its
// notification configuration, and the probes' marker objects.
type SourceAPI interface {
	NotifyAPI
	MarkerAPI
}

// ChangeQueue is the queue the source's events arrive on (*queue.SQS).
type ChangeQueue interface {
	Changes
	ARN(ctx context.Context) (string, error)
}

// Clients are what planner follow works with, as the command connected
// them from its flags.
type Clients struct {
	// Source and Dest are the buckets, their regions found; SourceAPI is a
	// client of the source's region. With Options.Unsubscribe only Source
	// and SourceAPI are needed.
	Source, Dest plan.Location
	SourceAPI    SourceAPI
	// Copy is how the copies are written; BatchKeys the most keys in one
	// work message.
	Copy      plan.Copy
	BatchKeys int
	// Changes is the change queue; Work the fleet's work queue.
	Changes ChangeQueue
	Work    Sender
	// Ledger is --ledger's; nil without it (only Options.Unsubscribe may
	// do without).
	Ledger *ledger.Store
	// Paired and Comparer list the buckets side by side and compare them,
	// for the catch-up of changes made before follow's events began.
	Paired   *listing.Paired
	Comparer *plan.Comparer
	// Denied reports an error that is S3 refusing these credentials: it
	// is said with the grant it needs.
	Denied func(error) bool
	Log    zerolog.Logger
}

// LedgerError is the ledger refusing or failing a read or write planner
// follow needs: the command says what to fix (config.LedgerError).
type LedgerError struct{ Err error }

func (e *LedgerError) Error() string { return e.Err.Error() }

// Unwrap returns the ledger's error.
func (e *LedgerError) Unwrap() error { return e.Err }

// Run is planner follow: with o.Unsubscribe it removes follow's
// notification configuration from the source bucket (unsubscribe);
// otherwise it subscribes the change queue to the source's events and
// follows them until ctx ends, or a cutover's clean verdict stops it. What
// it does is said on stdout. Validate o first. Errors: a *LedgerError for
// the ledger refusing or failing, a cli.UsageError for what the operator
// must fix (grants, an overlapping configuration, events that never come).
func Run(ctx context.Context, o *Options, c Clients, stdout io.Writer) error {
	changesARN, err := c.Changes.ARN(ctx)
	if err != nil {
		return err
	}
	sub := Subscription{Prefix: "", Marks: MarksPrefix, QueueARN: changesARN, ID: SubscriptionID(changesARN)}
	if o.Unsubscribe {
		return unsubscribe(ctx, o, c, sub.ID, stdout)
	}
	if err := c.Ledger.CheckBucket(ctx); err != nil {
		return &LedgerError{Err: err}
	}
	if err := awaitNextCycle(ctx, c.Ledger, c.Source, c.Dest, o.ChangesURL, nextCyclePoll, stdout, c.Log); err != nil || ctx.Err() != nil {
		return err
	}

	sub.Bucket, sub.Prefix = c.Source.Bucket, c.Source.Prefix
	record := ledger.Follow{Via: o.Via, Queue: o.ChangesURL}
	written := time.Now()
	var wrote bool
	if o.Via == ViaEventBridge {
		wrote, err = SubscribeBridge(ctx, c.SourceAPI, c.Source.Bucket)
		record.BridgeOwned = wrote
	} else {
		record.Config = sub.ID
		wrote, err = Subscribe(ctx, c.SourceAPI, sub)
	}
	if err != nil {
		return notifyError(err, c.Source.Bucket, c.Denied)
	}
	var effective time.Time
	if wrote {
		// Events from before the configuration is in effect everywhere may
		// be missing: the clone is anchored from then on (a bulk plan begun
		// before is caught up by a listing).
		effective = written.Add(o.ConfigSettle)
	}
	return followEvents(ctx, o, c, record, effective, stdout)
}

// followEvents records the run in the ledger and follows the source's events
// until ctx ends or a cutover's clean verdict stops it.
func followEvents(ctx context.Context, o *Options, c Clients, record ledger.Follow, effective time.Time, stdout io.Writer) error {
	started := time.Now()
	run := plan.NewRunID(started)
	host, _ := os.Hostname() // "" is fine: the record only shows it
	runLog, err := c.Ledger.BeginRun(ctx, ledger.Run{
		ID: run, Source: c.Source, Dest: c.Dest, Queue: o.QueueURL, Mode: ledger.ModeFollow, Copy: c.Copy,
		Options: map[string]string{"changes": o.ChangesURL, "via": o.Via}, Version: cli.Version(), Host: host, Started: started.UTC(),
	})
	if err != nil {
		return &LedgerError{Err: err}
	}
	fmt.Fprintf(stdout, "following s3://%s/%s -> s3://%s/%s: run %s, events from %s (via %s); stop with Ctrl-C or SIGTERM\n",
		c.Source.Bucket, c.Source.Prefix, c.Dest.Bucket, c.Dest.Prefix, run, o.ChangesURL, o.Via)
	// A sent record that cannot be written stops follow: its events would
	// never be deleted, and a cutover could not tell what was done.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	runLog.OnError = func(err error) { stop(fmt.Errorf("the ledger refused a sent record: %w", err)) }
	f := New(c.config(o, run, record, effective), c.Changes, c.Work, runLog, c.Ledger, c.Log)
	runErr := f.Run(runCtx)
	if cause := context.Cause(runCtx); runErr == nil && ctx.Err() == nil && cause != nil {
		runErr = &LedgerError{Err: cause}
	}
	runErr = noEventsError(runErr, o.Via)
	endErr := runLog.End(context.WithoutCancel(ctx), f.LastSeq(), nil)
	fmt.Fprintf(stdout, "stopped   run %s: %s\n", run, f.Summary())
	if m := f.StoppedAt(); m != nil {
		fmt.Fprintf(stdout, "          at cutover %s's mark, after its clean verdict: the destination is the source as of the freeze; changes since wait on the change queue (follow again for the next clone, or planner follow --unsubscribe)\n", m.ID)
	}
	if runErr != nil {
		return runErr
	}
	return endErr
}

// config is the Follower's configuration for run: its probes are marker
// objects in the source bucket, its catch-up lists the buckets, and a
// cutover's verdict is read in the ledger.
func (c Clients) config(o *Options, run string, record ledger.Follow, effective time.Time) Config {
	catch := catchUp{runs: c.Ledger, progress: func(id string) runProgress { return c.Ledger.Follow(id) },
		diff: func(ctx context.Context, counts *plan.DiffCounts, found func(context.Context, plan.Finding) error) error {
			return plan.Diff(ctx, c.Paired, c.Comparer, counts, found)
		},
		src: c.Source, dst: c.Dest, poll: bulkDonePoll, log: c.Log}
	return Config{Run: run, Source: c.Source, Dest: c.Dest, Copy: c.Copy, Flush: o.Flush, Settle: o.Settle,
		BatchKeys: c.BatchKeys, Record: record, ProbeID: ProbePrefix + run, EffectiveAt: effective,
		Probe: func(ctx context.Context, id string) error {
			return probeError(PlaceMark(ctx, c.SourceAPI, c.Source.Bucket, id), c.Source.Bucket, c.Denied)
		},
		Unprobe: func(ctx context.Context, id string) error { return RemoveMark(ctx, c.SourceAPI, c.Source.Bucket, id) },
		CatchUp: catch.run,
		GoOn:    o.GoOn,
		Verdict: func(ctx context.Context, run string) (bool, bool, error) { return verdict(c.Ledger.Verdict(ctx, run)) },
	}
}

// verdict is a cutover's verdict as Config.Verdict says it: none yet is
// not given.
func verdict(v *ledger.Verdict, err error) (given, clean bool, _ error) {
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return false, false, nil
	case err != nil:
		return false, false, err
	}
	return true, v.Clean, nil
}

// unsubscribe removes follow's notification configuration (id) from the
// source bucket; with --via eventbridge it turns EventBridge off only if
// follow's record in the ledger says follow turned it on.
func unsubscribe(ctx context.Context, o *Options, c Clients, id string, stdout io.Writer) error {
	bucket := c.Source.Bucket
	var (
		removed bool
		err     error
	)
	if o.Via == ViaEventBridge {
		// Only when follow turned it on: others' rules may read the
		// bucket's events through EventBridge too.
		var runs history
		if c.Ledger != nil { // not a nil *Store in the interface
			runs = c.Ledger
		}
		if owned, err := bridgeOwned(ctx, runs, o.ChangesURL); err != nil {
			return err
		} else if !owned {
			fmt.Fprintf(stdout, "unsubscribed s3://%s: left EventBridge on, as follow found it on (its record says so): turn it off by hand if nothing else uses it\n", bucket)
			return nil
		}
		removed, err = UnsubscribeBridge(ctx, c.SourceAPI, bucket)
	} else {
		removed, err = Unsubscribe(ctx, c.SourceAPI, bucket, id)
	}
	if err != nil {
		return notifyError(err, bucket, c.Denied)
	}
	if removed {
		fmt.Fprintf(stdout, "unsubscribed s3://%s: follow's notification configuration removed, every other left as it is\n", bucket)
	} else {
		fmt.Fprintf(stdout, "unsubscribed s3://%s: it had no configuration of follow's\n", bucket)
	}
	return nil
}

// notifyError says what to do about a notification configuration S3
// refused (denied says which errors are refusals) or that overlaps
// another.
func notifyError(err error, bucket string, denied func(error) bool) error {
	switch {
	case errors.Is(err, ErrOverlap):
		return cli.Usagef("%v", err)
	case denied(err):
		return cli.Usagef("%v: grant s3:GetBucketNotification and s3:PutBucketNotification on arn:aws:s3:::%s, and let the change queue's policy allow s3.amazonaws.com to send from the bucket", err, bucket)
	}
	return err
}

// probeError says what to grant when writing a probe's marker object was
// refused (denied says which errors are refusals).
func probeError(err error, bucket string, denied func(error) bool) error {
	if err != nil && denied(err) {
		return cli.Usagef("%v: grant s3:PutObject and s3:DeleteObject on arn:aws:s3:::%s/%s* (follow's probe and the cutover's mark; never copied)", err, bucket, MarksPrefix)
	}
	return err
}

// noEventsError says where to look when no probe came through (via: how
// the events were to come).
func noEventsError(err error, via string) error {
	if !errors.Is(err, ErrNoEvents) {
		return err
	}
	hint := "check the change queue's policy allows s3.amazonaws.com to send from the bucket"
	if via == ViaEventBridge {
		hint = "check the EventBridge rule sends the bucket's events to the change queue, and the queue's policy allows events.amazonaws.com"
	}
	return cli.Usagef("%v: %s", err, hint)
}
