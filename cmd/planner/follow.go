package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

const followUsage = `usage: planner follow --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] --queue-url URL --changes-url URL --ledger s3://BUCKET/PREFIX/
                      [--via s3|eventbridge] [--settle DURATION] [--flush DURATION] [--go-on]
       planner follow --unsubscribe --source s3://BUCKET[/PREFIX] --changes-url URL [--via s3 | --via eventbridge --ledger s3://BUCKET/PREFIX/]

Keeps the destination seconds behind the source between the bulk copy and
the freeze, from S3's own event notifications: the source bucket sends its
object events to the change queue (--changes-url), and follow sends each
key an event names to the fleet as sync work (the worker reads the key and
copies it as it is now, or deletes it from the destination while the source
has none). It runs until stopped (SIGTERM or Ctrl-C); planner cutover
--follow then needs no listing in the frozen window.

Start follow before the bulk plan (planner plan), so that every change
after the bulk listing passes a key has an event. The bucket's notification
configuration is read, follow's added to it, and written back: nothing
already there is changed. With --via s3 (the default) the bucket sends
events straight to the change queue; S3 refuses this when another
configuration already takes object events for overlapping keys (a Lambda
on ObjectCreated, say), and follow says which. --via eventbridge instead
turns on the bucket's EventBridge delivery, which never overlaps, and
relies on an EventBridge rule sending the bucket's events to the change
queue (the stack's FollowRule). --unsubscribe removes follow's
configuration again and nothing else (with --via eventbridge it turns
EventBridge off only if follow's record in --ledger says follow turned it
on).

At a cutover's mark (planner cutover --follow) follow holds: events dated
after the mark stay on the change queue, and once the cutover's verdict is
clean follow stops, so that the destination stays the source as of the
freeze while production writes again (a copy for load tests, consistent
with a database snapshot taken at the freeze). A verdict that is not clean
sets it following again, for the next cutover. --go-on keeps following
after a clean verdict instead: a migration, where the destination becomes
production. A rehearsal's mark (cutover --rehearse) never stops it.

Cutover markers are objects under .s3clone-marks/ in the source bucket:
follow never copies them.`

type followOptions struct {
	s          job.Job
	queueURL   string
	changesURL string
	via        string
	settle     time.Duration
	flush      time.Duration
	unsub      bool
	goOn       bool
	inEffect   time.Duration
	led        config.Ledger
	conn       config.Connection
}

func (o *followOptions) parse(args []string) error {
	f := cli.NewFlags("planner follow", followUsage, os.Stderr)
	o.s.Register(f)
	o.s.Write.Register(f)
	o.s.RegisterLock(f)
	f.StringVar(&o.queueURL, "queue-url", "", "URL of the work queue the fleet drains (required)")
	f.StringVar(&o.changesURL, "changes-url", "", "URL of the queue the source bucket's events arrive on (required; the stack's ChangeQueueUrl)")
	f.StringVar(&o.via, "via", "s3", "how events reach the change queue: s3 (the bucket's queue configuration) or eventbridge (a rule)")
	f.DurationVar(&o.settle, "settle", 0, "how long a cutover's mark waits for events S3 sent out of order (default: twice the worst seen in the last ten minutes, 1s to 1m)")
	f.DurationVar(&o.flush, "flush", 200*time.Millisecond, "the longest a changed key waits for others to share its work message")
	f.DurationVar(&o.inEffect, "config-settle", 5*time.Minute, "how long a notification configuration follow writes takes to be in effect everywhere (S3 says usually about five minutes): changes before then are caught up by a listing")
	f.BoolVar(&o.goOn, "go-on", false, "keep following after a cutover's clean verdict (a migration, where the destination becomes production); by default follow stops at the cutover's mark, so the destination stays the source as of the freeze")
	f.BoolVar(&o.unsub, "unsubscribe", false, "remove follow's notification configuration from the source bucket, and stop")
	o.led.Register(f, "the follow's run, its progress and the cutovers' marks are recorded there (required)")
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	if o.unsub {
		var err error
		if o.s.Src, err = plan.ParseLocation(o.s.RawSource); err != nil {
			p.Addf("--source: %v", err)
		}
		o.led.Validate(&p, false)
	} else {
		o.s.Validate(&p)
		o.s.Write.Validate(&p)
	}
	if o.changesURL == "" {
		p.Addf("--changes-url is required: the queue the source bucket's events arrive on")
	}
	config.CheckQueueURL(&p, "changes-url", o.changesURL)
	if o.via != "s3" && o.via != "eventbridge" {
		p.Addf("--via %q: use s3 or eventbridge", o.via)
	}
	if !o.unsub {
		if o.queueURL == "" {
			p.Addf("--queue-url is required: the work queue the fleet drains")
		}
		config.CheckQueueURL(&p, "queue-url", o.queueURL)
		if o.queueURL != "" && o.queueURL == o.changesURL {
			p.Addf("--changes-url and --queue-url are the same queue: events and work must have queues of their own")
		}
		o.led.Validate(&p, true)
		o.led.CheckApart(&p, "source", o.s.Src)
		o.led.CheckApart(&p, "dest", o.s.Dst)
	}
	if o.settle < 0 || o.settle > follow.MaxSettle {
		p.Addf("--settle %s: use 0 (measured) up to %s", o.settle, follow.MaxSettle)
	}
	if o.inEffect < 0 || o.inEffect > time.Hour {
		p.Addf("--config-settle %s: use 0 to 1h", o.inEffect)
	}
	if o.flush < 10*time.Millisecond || o.flush > time.Minute {
		p.Addf("--flush %s: use 10ms to 1m", o.flush)
	}
	o.conn.Validate(&p)
	return p.Err()
}

func followCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o followOptions
	if err := o.parse(args); err != nil {
		return err
	}
	s := &o.s
	log, awsCfg, err := o.conn.Open(ctx, 16)
	if err != nil {
		return err
	}
	regions := o.conn.AWS.Regions(awsCfg)
	sqsAPI := o.conn.AWS.SQS(awsCfg)
	changes := queue.NewSQS(sqsAPI, o.changesURL)
	if err := config.CheckQueue(ctx, changes, "changes-url"); err != nil {
		return err
	}
	changesARN, err := changes.ARN(ctx)
	if err != nil {
		return err
	}
	sub := follow.Subscription{Prefix: "", Marks: follow.MarksPrefix, QueueARN: changesARN, ID: follow.SubscriptionID(changesARN)}
	if o.unsub {
		client, _, err := regions.For(ctx, s.Src.Bucket, s.SrcRegion)
		if err != nil {
			return config.CheckBucketError(err, "source", s.Src.Bucket)
		}
		var removed bool
		if o.via == "eventbridge" {
			// Only when follow turned it on: others' rules may read the
			// bucket's events through EventBridge too.
			if owned, err := bridgeOwned(ctx, &o, regions); err != nil {
				return err
			} else if !owned {
				fmt.Fprintf(stdout, "unsubscribed s3://%s: left EventBridge on, as follow found it on (its record says so): turn it off by hand if nothing else uses it\n", s.Src.Bucket)
				return nil
			}
			removed, err = follow.UnsubscribeBridge(ctx, client, s.Src.Bucket)
		} else {
			removed, err = follow.Unsubscribe(ctx, client, s.Src.Bucket, sub.ID)
		}
		if err != nil {
			return notifyError(err, s.Src.Bucket)
		}
		if removed {
			fmt.Fprintf(stdout, "unsubscribed s3://%s: follow's notification configuration removed, every other left as it is\n", s.Src.Bucket)
		} else {
			fmt.Fprintf(stdout, "unsubscribed s3://%s: it had no configuration of follow's\n", s.Src.Bucket)
		}
		return nil
	}
	if err := s.Connect(ctx, regions); err != nil {
		return err
	}
	if err := s.Inspect(ctx, log); err != nil {
		return err
	}
	work := queue.NewSQS(sqsAPI, o.queueURL)
	if err := config.CheckQueue(ctx, work, "queue-url"); err != nil {
		return err
	}
	store := o.led.Open(ctx, regions)
	if err := store.CheckBucket(ctx); err != nil {
		return config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
	}

	if err := awaitNextCycle(ctx, store, s, o.changesURL, stdout, log); err != nil || ctx.Err() != nil {
		return err
	}

	sub.Bucket, sub.Prefix = s.Src.Bucket, s.Src.Prefix
	record := ledger.Follow{Via: o.via, Queue: o.changesURL}
	written := time.Now()
	var wrote bool
	if o.via == "eventbridge" {
		wrote, err = follow.SubscribeBridge(ctx, s.SrcAPI, s.Src.Bucket)
		record.BridgeOwned = wrote
	} else {
		record.Config = sub.ID
		wrote, err = follow.Subscribe(ctx, s.SrcAPI, sub)
	}
	if err != nil {
		return notifyError(err, s.Src.Bucket)
	}
	var effective time.Time
	if wrote {
		// Events from before the configuration is in effect everywhere may
		// be missing: the clone is anchored from then on (a bulk plan begun
		// before is caught up by a listing).
		effective = written.Add(o.inEffect)
	}

	sum := s.NewSummary()
	host, _ := os.Hostname()
	runLog, err := store.BeginRun(ctx, ledger.Run{
		ID: sum.Run, Source: s.Src, Dest: s.Dst, Queue: o.queueURL, Mode: ledger.ModeFollow, Copy: s.Copy,
		Options: map[string]string{"changes": o.changesURL, "via": o.via}, Version: cli.Version(), Host: host, Started: sum.Started.UTC(),
	})
	if err != nil {
		return config.LedgerError(err, store, "s3:PutObject on "+config.LedgerARN(store, "runs/*"))
	}
	fmt.Fprintf(stdout, "following s3://%s/%s -> s3://%s/%s: run %s, events from %s (via %s); stop with Ctrl-C or SIGTERM\n",
		s.Src.Bucket, s.Src.Prefix, s.Dst.Bucket, s.Dst.Prefix, sum.Run, o.changesURL, o.via)
	cfg := follow.Config{Run: sum.Run, Source: s.Src, Dest: s.Dst, Copy: s.Copy, Flush: o.flush, Settle: o.settle,
		BatchKeys: s.BatchKeys, Record: record, ProbeID: follow.ProbePrefix + sum.Run, EffectiveAt: effective,
		Probe: func(ctx context.Context, id string) error {
			if err := follow.PlaceMark(ctx, s.SrcAPI, s.Src.Bucket, id); err != nil {
				if job.IsDenied(err) {
					return cli.Usagef("%v: grant s3:PutObject and s3:DeleteObject on arn:aws:s3:::%s/%s* (follow's probe and the cutover's mark; never copied)", err, s.Src.Bucket, follow.MarksPrefix)
				}
				return err
			}
			return nil
		},
		Unprobe: func(ctx context.Context, id string) error { return follow.RemoveMark(ctx, s.SrcAPI, s.Src.Bucket, id) },
		CatchUp: func(ctx context.Context, subscribed time.Time, take func(string)) error {
			return catchUp(ctx, s, store, subscribed, take, log)
		},
		GoOn: o.goOn,
		Verdict: func(ctx context.Context, run string) (bool, bool, error) {
			v, err := store.Verdict(ctx, run)
			switch {
			case errors.Is(err, ledger.ErrNotFound):
				return false, false, nil
			case err != nil:
				return false, false, err
			}
			return true, v.Clean, nil
		},
	}
	// A sent record that cannot be written stops follow: its events would
	// never be deleted, and a cutover could not tell what was done.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	runLog.OnError = func(err error) { stop(fmt.Errorf("the ledger refused a sent record: %w", err)) }
	f := follow.New(cfg, changes, work, runLog, store, log)
	runErr := f.Run(runCtx)
	if cause := context.Cause(runCtx); runErr == nil && ctx.Err() == nil && cause != nil {
		runErr = config.LedgerError(cause, store, "s3:PutObject on "+config.LedgerARN(store, "runs/*"))
	}
	if errors.Is(runErr, follow.ErrNoEvents) {
		hint := "check the change queue's policy allows s3.amazonaws.com to send from the bucket"
		if o.via == "eventbridge" {
			hint = "check the EventBridge rule sends the bucket's events to the change queue, and the queue's policy allows events.amazonaws.com"
		}
		runErr = cli.Usagef("%v: %s", runErr, hint)
	}
	endErr := runLog.End(context.WithoutCancel(ctx), f.LastSeq(), nil)
	fmt.Fprintf(stdout, "stopped   run %s: %s\n", sum.Run, f.Summary())
	if m := f.StoppedAt(); m != nil {
		fmt.Fprintf(stdout, "          at cutover %s's mark, after its clean verdict: the destination is the source as of the freeze; changes since wait on the change queue (follow again for the next clone, or planner follow --unsubscribe)\n", m.ID)
	}
	if runErr != nil {
		return runErr
	}
	return endErr
}

// notifyError says what to do about a notification configuration S3
// refused or that overlaps another.
func notifyError(err error, bucket string) error {
	switch {
	case errors.Is(err, follow.ErrOverlap):
		return cli.Usagef("%v", err)
	case job.IsDenied(err):
		return cli.Usagef("%v: grant s3:GetBucketNotification and s3:PutBucketNotification on arn:aws:s3:::%s, and let the change queue's policy allow s3.amazonaws.com to send from the bucket", err, bucket)
	}
	return err
}

// catchUp finds the changes follow's events began too late for: when the
// bulk run of the pair began before them (subscribed), a key the bulk
// listing passed may have changed before events flowed. Once the bulk run
// is done, both buckets are listed once (outside any window) and every key
// that differs is taken as a change. A bulk run begun after subscribed
// needs none: every change after its listing has an event.
func catchUp(ctx context.Context, s *job.Job, store *ledger.Store, subscribed time.Time, take func(string), log zerolog.Logger) error {
	if wait := time.Until(subscribed); wait > 0 {
		log.Info().Time("until", subscribed).Msg("waiting for the notification configuration to be in effect everywhere before anchoring")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	chain, err := store.Bulk(ctx, s.Src, s.Dst)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil // the bulk plan is yet to start: its listing follows the events
	case err != nil:
		return err
	case chain[len(chain)-1].Started.After(subscribed):
		return nil
	}
	base := chain[len(chain)-1]
	log.Info().Str("bulk", base.ID).Msg("the bulk run began before follow's events did: once it is done, both buckets are listed once to catch up")
	reader := store.Follow(base.ID)
	for {
		if err := reader.Refresh(ctx); err != nil {
			log.Warn().Err(err).Msg("reading the bulk run failed; trying again")
		} else if reader.Tally().Status().Complete {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
	var counts plan.DiffCounts
	err = plan.Diff(ctx, s.Paired(listing.Options{Listers: s.Listers}), s.Comparer(), &counts, func(_ context.Context, f plan.Finding) error {
		take(s.Src.Prefix + f.Key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("catch-up listing: %w", err)
	}
	log.Info().Int64("compared", counts.Compared.Load()).Int64("missing", counts.Missing.Load()).Int64("different", counts.Different.Load()).
		Int64("extra", counts.Extra.Load()).Msg("caught up: every key that differed is sent as sync work")
	return nil
}

// awaitNextCycle keeps a follow from undoing a clone: when the last follow
// of this change queue stopped at a cutover's mark, the destination is the
// source as of that freeze, and the events waiting on the queue are
// production's since. A follow started again (by hand, or by ECS
// restarting the stack's service) takes them only once a new bulk plan of
// the pair has begun the next clone; until then it waits, reading the
// ledger every 30 s, and takes nothing.
func awaitNextCycle(ctx context.Context, store *ledger.Store, s *job.Job, changesURL string, stdout io.Writer, log zerolog.Logger) error {
	_, last, err := store.LastFollow(ctx, changesURL)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil
	case err != nil:
		return config.LedgerError(err, store, "s3:GetObject on "+config.LedgerARN(store, "runs/*"))
	case last.StoppedAt == "":
		return nil
	}
	said := false
	for {
		chain, err := store.Bulk(ctx, s.Src, s.Dst)
		if err == nil && chain[0].Started.After(last.Stopped) {
			log.Info().Str("bulk", chain[0].ID).Msg("a new bulk plan began the next clone: following again")
			return nil
		}
		if !said {
			said = true
			fmt.Fprintf(stdout, "waiting   follow %s stopped at cutover %s's mark: the destination is the source as of that freeze, and the changes since wait on the queue.\n"+
				"          Following again starts with the next clone: a new planner plan of s3://%s/%s -> s3://%s/%s (this follow then catches up). Until then it takes nothing.\n",
				last.Run, last.StoppedAt, s.Src.Bucket, s.Src.Prefix, s.Dst.Bucket, s.Dst.Prefix)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(30 * time.Second):
		}
	}
}

// bridgeOwned reads, in the ledger, whether the last follow of the change
// queue turned the source's EventBridge delivery on. Without --ledger, or
// with no follow recorded, it cannot tell, and says so.
func bridgeOwned(ctx context.Context, o *followOptions, regions *config.Regions) (bool, error) {
	if !o.led.Set() {
		return false, cli.Usagef("--unsubscribe --via eventbridge needs --ledger: follow's record says whether it turned EventBridge on (it is left on otherwise)")
	}
	store := o.led.Open(ctx, regions)
	_, last, err := store.LastFollow(ctx, o.changesURL)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return false, cli.Usagef("no follow of %s in the ledger %s: nothing says follow turned EventBridge on", o.changesURL, store)
	case err != nil:
		return false, config.LedgerError(err, store, "s3:GetObject on "+config.LedgerARN(store, "runs/*"))
	}
	return last.BridgeOwned, nil
}
