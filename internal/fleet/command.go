package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
)

// Usage is planner fleet's usage text.
const Usage = `usage: planner fleet --scale-ecs CLUSTER/SERVICE --ledger s3://BUCKET/PREFIX/ --workers N [--wait DURATION] [--json]
       planner fleet --scale-ecs CLUSTER/SERVICE --ledger s3://BUCKET/PREFIX/ --release [--workers N]

Warms the worker fleet before the freeze, so that the window starts with
workers running rather than a fleet parked at zero (from zero, the
stack's backlog scaling takes minutes: a metric minute, the alarm, the
step, then a Fargate start). It sets the ECS service's desired count to
at least N, suspends the service's dynamic scale-in (Application Auto
Scaling's SuspendedState: the stack's target tracking would otherwise
scale in what this scaled out, stopping workers mid-copy) and waits
until N workers run. Exit 0 once they do; 1 if --wait passed first (the
desired count stays set; ECS's service events say why tasks do not
start).

The hold is recorded in the ledger (fleet/): status and the cutover leave
a fleet held by planner fleet alone, and planner status shows the hold
until it is released. After the window, --release resumes dynamic
scale-in and, with --workers, sets the desired count (0 parks the fleet). Without --workers the
stack's scaling (or, with Autoscaling=off, the count as it is) takes over.`

// Options are planner fleet's flags: warm the worker service before a
// window, or release it after.
type Options struct {
	ScaleECS string        // --scale-ecs, CLUSTER/SERVICE
	Service  Service       // ScaleECS, parsed by Validate
	Workers  int           // --workers; -1 when not given
	Wait     time.Duration // --wait, default 10m
	Release  bool          // --release
	JSON     bool          // --json
}

// Register defines the flags.
func (o *Options) Register(f *cli.Flags) {
	f.StringVar(&o.ScaleECS, "scale-ecs", "", "the worker service, CLUSTER/SERVICE (the stack's ScaleEcs output) (required)")
	f.IntVar(&o.Workers, "workers", -1, "workers to have running (with --release: the desired count to set, e.g. 0)")
	f.DurationVar(&o.Wait, "wait", 10*time.Minute, "how long to wait for the workers to run (0: set the count and return)")
	f.BoolVar(&o.Release, "release", false, "after the window: resume dynamic scale-in (and set the desired count to --workers, if given)")
	f.BoolVar(&o.JSON, "json", false, "print what was done as JSON")
}

// Validate parses --scale-ecs and adds a problem for each
// flag missing or out of range.
func (o *Options) Validate(p *cli.Problems) {
	if o.ScaleECS == "" {
		p.Addf("--scale-ecs is required: the worker service, CLUSTER/SERVICE (the stack's ScaleEcs output)")
	} else if svc, err := ParseService(o.ScaleECS); err != nil {
		p.Addf("--scale-ecs: %v", err)
	} else {
		o.Service = svc
	}
	switch {
	case !o.Release && o.Workers < 1:
		p.Addf("--workers N is required, at least 1: the workers the window should start with (docs/operations.md, \"Warm the fleet\")")
	case o.Release && o.Workers < -1:
		p.Addf("--workers %d: the desired count after the window must be 0 or more", o.Workers)
	}
	if o.Wait < 0 {
		p.Addf("--wait %s: must be 0 or positive, e.g. 10m", o.Wait)
	}
}

// Run warms the service (or, with Release, releases it), recording the
// hold in holds, and says what it did on w. A fleet not warm within Wait
// is an error wrapping cli.ErrNotReady; more workers than the service's
// scalable target allows, a cli.UsageError.
func (o *Options) Run(ctx context.Context, api API, aas AutoScaling, holds Holds, w io.Writer) error {
	if o.Release {
		return o.release(ctx, api, aas, holds, w)
	}
	steer, err := Look(ctx, aas, o.Service)
	if err != nil {
		return err
	}
	if most, ok := steer.MaxCapacity(); ok && o.Workers > most {
		return cli.Usagef("--workers %d: the service's scalable target allows at most %d (the stack's MaxWorkers), and Application Auto Scaling would set a larger count back at its next scaling activity, stopping workers mid-copy: raise MaxWorkers or ask for fewer", o.Workers, most)
	}
	if err := steer.Take(ctx, Holder{Name: "planner fleet", TakeOver: true, Holds: holds}); err != nil {
		return err
	}
	warmed, err := Warm(ctx, api, o.Service, o.Workers, o.Wait, 5*time.Second)
	if err != nil {
		// The count was not raised: leave scale-in as it was found.
		return errors.Join(err, steer.Release(context.WithoutCancel(ctx)))
	}
	if o.JSON {
		if err := json.NewEncoder(w).Encode(map[string]any{"warmed": warmed, "autoscaling": steer.HasAutoscaling()}); err != nil {
			return err
		}
	} else {
		PrintWarmed(w, warmed, steer)
		if steer.HasAutoscaling() {
			fmt.Fprintf(w, "fleet     dynamic scale-in suspended: after the window, planner fleet --scale-ecs %s --release [--workers 0]\n", o.Service)
		}
	}
	if !warmed.Reached && o.Wait > 0 {
		return fmt.Errorf("%w: %d of %d workers running after %s: the desired count stays %d; aws ecs describe-services --cluster %s --services %s shows why tasks do not start (quota, image, network)",
			cli.ErrNotReady, warmed.Running, o.Workers, warmed.Took.Round(time.Second), warmed.Desired, o.Service.Cluster, o.Service.Name)
	}
	return nil
}

// release resumes dynamic scale-in, marks the hold released and, with
// Workers given, sets the desired count.
func (o *Options) release(ctx context.Context, api API, aas AutoScaling, holds Holds, w io.Writer) error {
	resumed, err := Resume(ctx, aas, o.Service, holds)
	if err != nil {
		return err
	}
	r := Result{Service: o.Service.String()}
	if o.Workers >= 0 {
		if r, err = Scale(ctx, api, o.Service, o.Workers, Bounds{Min: 0, Max: o.Workers}); err != nil {
			return err
		}
	}
	if o.JSON {
		return json.NewEncoder(w).Encode(map[string]any{"released": r, "scale_in_resumed": resumed})
	}
	if resumed {
		fmt.Fprintf(w, "fleet     %s: dynamic scale-in resumed\n", o.Service)
	} else {
		fmt.Fprintf(w, "fleet     %s: no scalable target (Autoscaling=off): nothing to resume\n", o.Service)
	}
	if o.Workers >= 0 {
		fmt.Fprintf(w, "fleet     %s: desired count %d (was %d)\n", o.Service, r.Desired, r.Previous)
	}
	return nil
}

// PrintWarmed says on w what a warm-up did, and whether steer holds the
// service's scale-in suspended (steer may be nil).
func PrintWarmed(w io.Writer, r Warmed, steer *Steering) {
	fmt.Fprintf(w, "fleet     %s: %d running of %d desired (was %d desired)", r.Service, r.Running, r.Desired, r.Previous)
	if r.Reached {
		fmt.Fprintf(w, ", warm after %s\n", r.Took.Round(time.Second))
	} else {
		fmt.Fprintf(w, ", not yet after %s\n", r.Took.Round(time.Second))
	}
	if steer.Suspended() {
		fmt.Fprintf(w, "fleet     dynamic scale-in of %s suspended while s3clone steers it\n", r.Service)
	}
}
