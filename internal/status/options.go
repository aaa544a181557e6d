package status

import (
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/internal/ledger"
)

// Usage is planner status's usage text, printed above its flags on -h.
const Usage = `usage: planner status --ledger s3://BUCKET/PREFIX/ [--run-id ID] [--queue-url URL] [--json] [--failures [--out FILE]]
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

// Options are planner status's own flags. The ledger, the queue URL's
// form and the AWS connection are the command's to check (config).
type Options struct {
	// RunID is the run to show; "" is the latest in the ledger.
	RunID string
	// QueueURL is the work queue whose depth to show; "" is the one the
	// run's plan used.
	QueueURL string
	// JSON prints JSON instead of text (with Watch: one object a line per
	// refresh).
	JSON bool
	// Failures lists every failed key instead of the view; with Out, as a
	// reconciliation file at that path.
	Failures bool
	Out      string
	// Deadline is the time left to finish (0: none); Watch the refresh
	// interval (0: one view).
	Deadline, Watch time.Duration
	// ScaleECS is the worker service to size for the deadline
	// (CLUSTER/SERVICE, "": none), parsed into Service by Validate,
	// within Bounds.
	ScaleECS string
	Service  fleet.Service
	Bounds   fleet.Bounds
}

// Register defines the flags, with their defaults (--max-workers 16).
func (o *Options) Register(f *cli.Flags) {
	f.StringVar(&o.RunID, "run-id", "", "run to show (default: the latest run in the ledger)")
	f.StringVar(&o.QueueURL, "queue-url", "", "work queue whose depth to show (default: the one the plan used)")
	f.BoolVar(&o.JSON, "json", false, "print JSON instead of text (with --watch: one object per line per refresh)")
	f.BoolVar(&o.Failures, "failures", false, "list every failed key (read from the ledger) instead of the progress view")
	f.StringVar(&o.Out, "out", "", "with --failures: write the failed keys to this file as a reconciliation file, for planner plan --from-file")
	f.DurationVar(&o.Deadline, "deadline", 0, "time left to finish, e.g. 30m: prints how many workers would finish the rest by then")
	f.StringVar(&o.ScaleECS, "scale-ecs", "", "with --deadline: set this ECS service's desired count (CLUSTER/SERVICE, the stack's ScaleEcs output) to the workers needed")
	f.IntVar(&o.Bounds.Min, "min-workers", 0, "with --scale-ecs: fewest workers to set (and what a complete run scales to)")
	f.IntVar(&o.Bounds.Max, "max-workers", 16, "with --scale-ecs: most workers to set (keep within the account's Fargate quota)")
	f.DurationVar(&o.Watch, "watch", 0, "refresh every INTERVAL (at least 1s, e.g. 10s) until the run is complete or interrupted")
}

// Validate adds a problem for each flag that is malformed or does not go
// with the others, and parses ScaleECS into Service.
func (o *Options) Validate(p *cli.Problems) {
	if o.RunID != "" {
		if err := ledger.CheckRunID(o.RunID); err != nil {
			p.Addf("--run-id: %v", err)
		}
	}
	if o.Deadline < 0 {
		p.Addf("--deadline %s: must be positive, e.g. 30m", o.Deadline)
	}
	if o.Watch != 0 && o.Watch < time.Second {
		p.Addf("--watch %s: refresh at most once a second, e.g. --watch 10s", o.Watch)
	}
	if o.Out != "" && !o.Failures {
		p.Addf("--out goes with --failures: the reconciliation file lists the failed keys")
	}
	cli.CheckFileDir(p, "out", o.Out)
	if o.Failures && (o.Watch != 0 || o.Deadline != 0 || o.ScaleECS != "") {
		p.Addf("--failures lists the failed keys once: leave out --watch, --deadline and --scale-ecs")
	}
	if o.ScaleECS != "" {
		svc, err := fleet.ParseService(o.ScaleECS)
		if err != nil {
			p.Addf("--scale-ecs: %v", err)
		}
		o.Service = svc
		if o.Deadline == 0 {
			p.Addf("--scale-ecs needs --deadline: the time the rest must be copied in, e.g. --deadline 45m")
		}
		if o.Bounds.Min < 0 || o.Bounds.Max < 1 || o.Bounds.Min > o.Bounds.Max {
			p.Addf("--min-workers %d --max-workers %d: want 0 <= min <= max and max >= 1", o.Bounds.Min, o.Bounds.Max)
		}
	}
}
