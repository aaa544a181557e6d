// Package cutover is planner cutover, the frozen window as one command: it
// plans what differs between source and destination (plan --diff
// --delete), waits for the fleet through the ledger, and gives a verdict;
// or, with --follow, marks the freeze through planner follow's events and
// waits for follow's work up to the mark, listing nothing. The verdict is
// clean only when everything the window found was done as listed; what is
// not is named, written as a reconciliation file for plan --from-file, and
// recorded in the ledger.
package cutover

import (
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
)

// Usage is planner cutover's usage text.
const Usage = `usage: planner cutover --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] --queue-url URL --ledger s3://BUCKET/PREFIX/
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

// DefaultMarkWait is how long a cutover --follow waits for follow to close
// its mark, unless Options.MarkWait says otherwise: the longest settle
// time, and a minute for S3 to deliver.
const DefaultMarkWait = follow.MaxSettle + time.Minute

// Options is planner cutover's configuration: Register defines its flags,
// Validate checks them.
type Options struct {
	// Job names the buckets, how to list them and how copies are written.
	// With Follow, the buckets are the follow's (given ones must match).
	Job job.Job
	// QueueURL is the work queue the fleet drains (with Follow, the
	// follow's; a given one must match).
	QueueURL string
	// Out, if set, is a file for the keys that are not right, one JSON
	// record a line (for plan --from-file).
	Out string
	// Ledger is where the run is recorded and the fleet's work read back.
	Ledger config.Ledger
	// NoDelete leaves destination objects that are not in the source
	// (default: delete them, as plan --delete).
	NoDelete bool
	// Verify lists both sides again once the fleet is done and compares
	// every key.
	Verify bool
	// Rehearse is a rehearsal while production is live: keys that change
	// while it runs do not fail it.
	Rehearse bool
	// Timeout bounds the wait for the fleet; 0 waits until it is done or
	// stalled.
	Timeout time.Duration
	// ScaleECS is the worker service, CLUSTER/SERVICE, to have Workers
	// running for the window; KeepFleet leaves its desired count as the
	// window left it.
	ScaleECS  string
	Workers   int
	KeepFleet bool
	// Follow is planner follow's run id, or "latest": the window marks the
	// freeze through its events instead of listing.
	Follow string
	// AsOf is the time (RFC 3339) of a versioned source the destination is
	// made: no freeze. Not with Follow.
	AsOf string
	// Conn is how AWS is reached.
	Conn config.Connection
	// MarkWait is how long a cutover --follow waits for follow to close its
	// mark; 0 is DefaultMarkWait.
	MarkWait time.Duration

	from    job.From      // how the window's plan lists (Validate)
	service fleet.Service // ScaleECS, parsed (Validate)
}

// Register defines planner cutover's flags.
func (o *Options) Register(f *cli.Flags) {
	o.Job.Register(f)
	o.Job.Write.Register(f)
	o.Job.RegisterLock(f)
	f.StringVar(&o.QueueURL, "queue-url", "", "URL of the work queue the fleet drains (required)")
	o.Ledger.Register(f, "the run is recorded there, and the fleet's work read back from it (required)")
	f.BoolVar(&o.NoDelete, "no-delete", false, "leave destination objects that are not in the source (default: delete them, as plan --delete)")
	f.BoolVar(&o.Verify, "verify", false, "after the fleet is done, list both sides again in full and compare every key (planner verify)")
	f.BoolVar(&o.Rehearse, "rehearse", false, "a rehearsal while production is live: copy the delta, time it, and say how long the window would take")
	f.StringVar(&o.Out, "out", "", "write the keys that are not right to this file, one JSON object a line (for plan --from-file)")
	f.DurationVar(&o.Timeout, "timeout", 0, "give up waiting for the fleet after this long, e.g. 20m, and name what is not done (default: wait until done or stalled)")
	f.StringVar(&o.ScaleECS, "scale-ecs", "", "the worker service, CLUSTER/SERVICE (the stack's ScaleEcs output): have --workers running for the window")
	f.IntVar(&o.Workers, "workers", 0, "with --scale-ecs: workers to have running (at least; the desired count is raised, never lowered)")
	f.BoolVar(&o.KeepFleet, "keep-fleet", false, "with --scale-ecs: leave the desired count as the window left it (default: put it back after a clean verdict)")
	f.StringVar(&o.AsOf, "as-of", "", "the source as it was at this time, RFC 3339 (e.g. 2026-12-07T10:00:00Z), of a versioned source: the destination is made what the source was then, with no freeze (default: now)")
	f.StringVar(&o.Follow, "follow", "", "planner follow's run id, or latest: mark the freeze through its events and wait for its work, with no listing (source, destination and queue are the follow's)")
	o.Conn.Register(f)
}

// Validate returns every problem with the flags as one cli.UsageError (nil
// when there is none), having parsed them. With Follow, the buckets and
// the queue are not required: they are the follow's.
func (o *Options) Validate() error {
	var p cli.Problems
	if o.Follow != "" {
		if o.AsOf != "" {
			p.Addf("--as-of with --follow: a cutover --follow makes the clone the source as of its mark, now, through follow's events; for a clone as of an earlier time, run cutover --as-of without --follow")
		}
		o.validateFollow(&p)
		return p.Err()
	}
	o.Job.Validate(&p)
	if o.ScaleECS != "" {
		if svc, err := fleet.ParseService(o.ScaleECS); err != nil {
			p.Addf("--scale-ecs: %v", err)
		} else {
			o.service = svc
		}
		if o.Workers < 1 {
			p.Addf("--scale-ecs needs --workers N, at least 1: the workers the window runs with")
		}
	} else if o.Workers != 0 || o.KeepFleet {
		p.Addf("--workers and --keep-fleet go with --scale-ecs CLUSTER/SERVICE (the stack's ScaleEcs output)")
	}
	o.Job.Write.Validate(&p)
	o.from = job.From{Diff: true, Delete: !o.NoDelete, AsOf: o.AsOf}
	o.from.ValidateAsOf(&p, time.Now())
	if o.QueueURL == "" {
		p.Addf("--queue-url is required: the work queue the fleet drains")
	}
	config.CheckQueueURL(&p, "queue-url", o.QueueURL)
	o.Ledger.Validate(&p, true)
	o.Ledger.CheckApart(&p, "source", o.Job.Src)
	o.Ledger.CheckApart(&p, "dest", o.Job.Dst)
	if o.Rehearse && o.Verify && o.AsOf == "" {
		p.Addf("--verify with --rehearse: a full comparison against a source production still writes to cannot come out equal; verify in the real window")
	}
	if o.Timeout < 0 {
		p.Addf("--timeout %s: must be positive, e.g. 20m", o.Timeout)
	}
	cli.CheckFileDir(&p, "out", o.Out)
	o.Conn.Validate(&p)
	return p.Err()
}

// validateFollow checks the flags of a cutover --follow, which takes its
// source, destination and queue from the follow's run.
func (o *Options) validateFollow(p *cli.Problems) {
	if err := ledger.CheckRunID(o.Follow); err != nil && o.Follow != "latest" {
		p.Addf("--follow %q: %v (or latest: the newest follow in the ledger)", o.Follow, err)
	}
	if o.NoDelete {
		p.Addf("--no-delete with --follow: follow mirrors deletions as they happen; a cutover --follow cannot leave them out")
	}
	if o.ScaleECS != "" || o.Workers != 0 || o.KeepFleet {
		p.Addf("--scale-ecs with --follow: the fleet already runs for follow; size it beforehand with planner fleet")
	}
	if o.Timeout < 0 {
		p.Addf("--timeout %s: must be positive, e.g. 20m", o.Timeout)
	}
	o.Ledger.Validate(p, true)
	cli.CheckFileDir(p, "out", o.Out)
	o.Conn.Validate(p)
}

// markWait is how long a cutover --follow waits for follow's mark.
func (o *Options) markWait() time.Duration {
	if o.MarkWait > 0 {
		return o.MarkWait
	}
	return DefaultMarkWait
}
