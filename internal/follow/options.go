package follow

import (
	"time"

	"github.com/s3clone/s3clone/internal/cli"
)

// Usage is planner follow's usage text.
const Usage = `usage: planner follow --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] --queue-url URL --changes-url URL --ledger s3://BUCKET/PREFIX/
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

// Via values: how the source bucket's events reach the change queue.
const (
	ViaS3          = "s3"          // the bucket's queue configuration (Subscribe)
	ViaEventBridge = "eventbridge" // the bucket's EventBridge delivery and a rule (SubscribeBridge)
)

// Options are planner follow's own flags. The command adds those naming
// the buckets and the copies' writes (job.Job), --ledger and the
// connection's, and checks the queue URLs' shape (config.CheckQueueURL).
type Options struct {
	// QueueURL is the work queue the fleet drains (not with Unsubscribe);
	// ChangesURL the queue the source bucket's events arrive on.
	QueueURL, ChangesURL string
	// Via is how events reach the change queue: ViaS3 or ViaEventBridge.
	Via string
	// Settle is how long a cutover's mark waits for events S3 sent out of
	// order; 0 measures it (Config.Settle).
	Settle time.Duration
	// Flush is the longest a changed key waits for others to share its
	// work message.
	Flush time.Duration
	// ConfigSettle is how long a notification configuration follow writes
	// takes to be in effect everywhere: changes before then are caught up
	// by a listing.
	ConfigSettle time.Duration
	// GoOn keeps following after a cutover's clean verdict (Config.GoOn).
	GoOn bool
	// Unsubscribe removes follow's notification configuration, and stops.
	Unsubscribe bool
}

// Register defines follow's own flags.
func (o *Options) Register(f *cli.Flags) {
	f.StringVar(&o.QueueURL, "queue-url", "", "URL of the work queue the fleet drains (required)")
	f.StringVar(&o.ChangesURL, "changes-url", "", "URL of the queue the source bucket's events arrive on (required; the stack's ChangeQueueUrl)")
	f.StringVar(&o.Via, "via", ViaS3, "how events reach the change queue: s3 (the bucket's queue configuration) or eventbridge (a rule)")
	f.DurationVar(&o.Settle, "settle", 0, "how long a cutover's mark waits for events S3 sent out of order (default: twice the worst seen in the last ten minutes, 1s to 1m)")
	f.DurationVar(&o.Flush, "flush", DefaultFlush, "the longest a changed key waits for others to share its work message")
	f.DurationVar(&o.ConfigSettle, "config-settle", 5*time.Minute, "how long a notification configuration follow writes takes to be in effect everywhere (S3 says usually about five minutes): changes before then are caught up by a listing")
	f.BoolVar(&o.GoOn, "go-on", false, "keep following after a cutover's clean verdict (a migration, where the destination becomes production); by default follow stops at the cutover's mark, so the destination stays the source as of the freeze")
	f.BoolVar(&o.Unsubscribe, "unsubscribe", false, "remove follow's notification configuration from the source bucket, and stop")
}

// Validate adds to p every problem with follow's own flags.
func (o *Options) Validate(p *cli.Problems) {
	if o.ChangesURL == "" {
		p.Addf("--changes-url is required: the queue the source bucket's events arrive on")
	}
	if o.Via != ViaS3 && o.Via != ViaEventBridge {
		p.Addf("--via %q: use s3 or eventbridge", o.Via)
	}
	if !o.Unsubscribe {
		if o.QueueURL == "" {
			p.Addf("--queue-url is required: the work queue the fleet drains")
		}
		if o.QueueURL != "" && o.QueueURL == o.ChangesURL {
			p.Addf("--changes-url and --queue-url are the same queue: events and work must have queues of their own")
		}
	}
	if o.Settle < 0 || o.Settle > MaxSettle {
		p.Addf("--settle %s: use 0 (measured) up to %s", o.Settle, MaxSettle)
	}
	if o.ConfigSettle < 0 || o.ConfigSettle > time.Hour {
		p.Addf("--config-settle %s: use 0 to 1h", o.ConfigSettle)
	}
	if o.Flush < 10*time.Millisecond || o.Flush > time.Minute {
		p.Addf("--flush %s: use 10ms to 1m", o.Flush)
	}
}
