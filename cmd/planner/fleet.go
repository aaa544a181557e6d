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

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/fleet"
)

const fleetUsage = `usage: planner fleet --scale-ecs CLUSTER/SERVICE --ledger s3://BUCKET/PREFIX/ --workers N [--wait DURATION] [--json]
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

type fleetOptions struct {
	scaleECS string
	service  fleet.Service
	workers  int
	wait     time.Duration
	release  bool
	asJSON   bool
	led      config.Ledger
	conn     config.Connection
}

func (o *fleetOptions) parse(args []string) error {
	f := cli.NewFlags("planner fleet", fleetUsage, os.Stderr)
	f.StringVar(&o.scaleECS, "scale-ecs", "", "the worker service, CLUSTER/SERVICE (the stack's ScaleEcs output) (required)")
	f.IntVar(&o.workers, "workers", -1, "workers to have running (with --release: the desired count to set, e.g. 0)")
	f.DurationVar(&o.wait, "wait", 10*time.Minute, "how long to wait for the workers to run (0: set the count and return)")
	f.BoolVar(&o.release, "release", false, "after the window: resume dynamic scale-in (and set the desired count to --workers, if given)")
	f.BoolVar(&o.asJSON, "json", false, "print what was done as JSON")
	o.led.Register(f, "the hold on the fleet is recorded there, for status and the cutover (required)")
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	if o.scaleECS == "" {
		p.Addf("--scale-ecs is required: the worker service, CLUSTER/SERVICE (the stack's ScaleEcs output)")
	} else if svc, err := fleet.ParseService(o.scaleECS); err != nil {
		p.Addf("--scale-ecs: %v", err)
	} else {
		o.service = svc
	}
	switch {
	case !o.release && o.workers < 1:
		p.Addf("--workers N is required, at least 1: the workers the window should start with (docs/operations.md, \"Warm the fleet\")")
	case o.release && o.workers < -1:
		p.Addf("--workers %d: the desired count after the window must be 0 or more", o.workers)
	}
	o.led.Validate(&p, true)
	if o.wait < 0 {
		p.Addf("--wait %s: must be 0 or positive, e.g. 10m", o.wait)
	}
	o.conn.Validate(&p)
	return p.Err()
}

func fleetCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o fleetOptions
	if err := o.parse(args); err != nil {
		return err
	}
	_, awsCfg, err := o.conn.Open(ctx, 4)
	if err != nil {
		return err
	}
	api, aas := ecs.NewFromConfig(awsCfg), applicationautoscaling.NewFromConfig(awsCfg)
	store := o.led.Open(ctx, o.conn.AWS.Regions(awsCfg))
	if err := store.CheckBucket(ctx); err != nil {
		return config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
	}
	if o.release {
		resumed, err := fleet.Resume(ctx, aas, o.service, store)
		if err != nil {
			return err
		}
		r := fleet.Result{Service: o.service.String()}
		if o.workers >= 0 {
			if r, err = fleet.Scale(ctx, api, o.service, o.workers, fleet.Bounds{Min: 0, Max: o.workers}); err != nil {
				return err
			}
		}
		if o.asJSON {
			return json.NewEncoder(stdout).Encode(map[string]any{"released": r, "scale_in_resumed": resumed})
		}
		if resumed {
			fmt.Fprintf(stdout, "fleet     %s: dynamic scale-in resumed\n", o.service)
		} else {
			fmt.Fprintf(stdout, "fleet     %s: no scalable target (Autoscaling=off): nothing to resume\n", o.service)
		}
		if o.workers >= 0 {
			fmt.Fprintf(stdout, "fleet     %s: desired count %d (was %d)\n", o.service, r.Desired, r.Previous)
		}
		return nil
	}
	steer, err := fleet.Look(ctx, aas, o.service)
	if err != nil {
		return err
	}
	if most, ok := steer.MaxCapacity(); ok && o.workers > most {
		return cli.Usagef("--workers %d: the service's scalable target allows at most %d (the stack's MaxWorkers), and Application Auto Scaling would set a larger count back at its next scaling activity, stopping workers mid-copy: raise MaxWorkers or ask for fewer", o.workers, most)
	}
	if err := steer.Take(ctx, fleet.Holder{Name: "planner fleet", TakeOver: true, Holds: store}); err != nil {
		return err
	}
	w, err := fleet.Warm(ctx, api, o.service, o.workers, o.wait, 5*time.Second)
	if err != nil {
		// The count was not raised: leave scale-in as it was found.
		return errors.Join(err, steer.Release(context.WithoutCancel(ctx)))
	}
	if o.asJSON {
		if err := json.NewEncoder(stdout).Encode(map[string]any{"warmed": w, "autoscaling": steer.HasAutoscaling()}); err != nil {
			return err
		}
	} else {
		printWarmed(stdout, w, steer)
		if steer.HasAutoscaling() {
			fmt.Fprintf(stdout, "fleet     dynamic scale-in suspended: after the window, planner fleet --scale-ecs %s --release [--workers 0]\n", o.service)
		}
	}
	if !w.Reached && o.wait > 0 {
		return fmt.Errorf("%w: %d of %d workers running after %s: the desired count stays %d; aws ecs describe-services --cluster %s --services %s shows why tasks do not start (quota, image, network)",
			cli.ErrNotReady, w.Running, o.workers, w.Took.Round(time.Second), w.Desired, o.service.Cluster, o.service.Name)
	}
	return nil
}

// printWarmed says what a warm-up did.
func printWarmed(w io.Writer, r fleet.Warmed, steer *fleet.Steering) {
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
