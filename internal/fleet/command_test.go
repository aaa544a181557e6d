package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/cli/clitest"
	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/test/testbed"
)

// parseFleet parses args as planner fleet does, without the connection
// flags, and returns the options and Validate's verdict.
func parseFleet(t *testing.T, args ...string) (fleet.Options, error) {
	t.Helper()
	var o fleet.Options
	f := cli.NewFlags("planner fleet", fleet.Usage, io.Discard)
	o.Register(f)
	if err := f.Parse(args); err != nil {
		return o, err
	}
	var p cli.Problems
	o.Validate(&p)
	return o, p.Err()
}

func TestFleetOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want []string // problems said; none: valid
	}{
		{nil, []string{"--scale-ecs is required", "--workers N is required, at least 1"}},
		{[]string{"--scale-ecs", "workers", "--workers", "2"}, []string{`--scale-ecs: "workers" is not CLUSTER/SERVICE`}},
		{[]string{"--scale-ecs", "c/s", "--workers", "0"}, []string{"--workers N is required, at least 1"}},
		{[]string{"--scale-ecs", "c/s", "--release", "--workers", "-2"}, []string{"--workers -2: the desired count after the window must be 0 or more"}},
		{[]string{"--scale-ecs", "c/s", "--workers", "2", "--wait", "-1s"}, []string{"--wait -1s: must be 0 or positive"}},
		{[]string{"--scale-ecs", "c/s", "--workers", "2"}, nil},
		{[]string{"--scale-ecs", "c/s", "--release"}, nil},
		{[]string{"--scale-ecs", "c/s", "--release", "--workers", "0", "--wait", "0"}, nil},
	} {
		_, err := parseFleet(t, c.args...)
		clitest.Usage(t, c.args, err, c.want...)
	}
}

func TestFleetOptionsParsed(t *testing.T) {
	t.Parallel()
	o, err := parseFleet(t, "--scale-ecs", "arn:aws:ecs:eu-west-1:123456789012:cluster/s3clone/workers", "--workers", "4")
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.Service{Cluster: "arn:aws:ecs:eu-west-1:123456789012:cluster/s3clone", Name: "workers"}
	if o.Service != want || o.Workers != 4 || o.Wait != 10*time.Minute || o.Release || o.JSON {
		t.Errorf("parsed %+v; want service %+v, 4 workers, the 10m wait by default", o, want)
	}
	if o, err = parseFleet(t, "--scale-ecs", "c/s", "--release"); err != nil || o.Workers != -1 {
		t.Errorf("--release alone: workers %d, %v; want -1 (the count left to the stack's scaling)", o.Workers, err)
	}
}

func TestPrintWarmed(t *testing.T) {
	ctx := context.Background()
	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {DesiredCount: 2}})
	fake.AddTarget("s3clone/workers", &testbed.FakeTarget{})
	steer, err := fleet.Steer(ctx, autoScaling(fake.URL), fleet.Service{Cluster: "s3clone", Name: "workers"}, fleet.Holder{})
	if err != nil {
		t.Fatal(err)
	}
	defer steer.Release(ctx)
	warm := fleet.Warmed{Result: fleet.Result{Service: "s3clone/workers", Running: 4, Desired: 4, Previous: 1}, Took: 62600 * time.Millisecond, Reached: true}
	cold := fleet.Warmed{Result: fleet.Result{Service: "s3clone/workers", Running: 1, Desired: 4, Previous: 0}, Took: 10 * time.Minute}
	for _, c := range []struct {
		name  string
		r     fleet.Warmed
		steer *fleet.Steering
		want  string
	}{
		{"warm, scale-in suspended", warm, steer, "fleet     s3clone/workers: 4 running of 4 desired (was 1 desired), warm after 1m3s\n" +
			"fleet     dynamic scale-in of s3clone/workers suspended while s3clone steers it\n"},
		{"not warm, no steering", cold, nil, "fleet     s3clone/workers: 1 running of 4 desired (was 0 desired), not yet after 10m0s\n"},
	} {
		var b bytes.Buffer
		fleet.PrintWarmed(&b, c.r, c.steer)
		if b.String() != c.want {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, b.String(), c.want)
		}
	}
}

// TestFleetRun warms a fleet, holding its scale-in, then releases it, as
// planner fleet does before and after a window.
func TestFleetRun(t *testing.T) {
	ctx := context.Background()
	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {DesiredCount: 3, RunningCount: 3}})
	fake.AddTarget("s3clone/workers", &testbed.FakeTarget{})
	ecs, aas, holds := client(fake.URL), autoScaling(fake.URL), &memHolds{}
	svc := fleet.Service{Cluster: "s3clone", Name: "workers"}

	var out bytes.Buffer
	warm := fleet.Options{Service: svc, Workers: 2, Wait: time.Minute}
	if err := warm.Run(ctx, ecs, aas, holds, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"fleet     s3clone/workers: 3 running of 3 desired (was 3 desired), warm after 0s\n", // a larger fleet is kept
		"fleet     dynamic scale-in of s3clone/workers suspended while s3clone steers it\n",
		"fleet     dynamic scale-in suspended: after the window, planner fleet --scale-ecs s3clone/workers --release [--workers 0]\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("warm-up said:\n%s\nwant a line %q", out.String(), want)
		}
	}
	h, _, _ := holds.FleetHold(ctx, svc.ResourceID())
	if !fake.Target("s3clone/workers").ScaleInSuspended || h == nil || h.Holder != "planner fleet" || !h.Released.IsZero() {
		t.Fatalf("after the warm-up: target %+v, hold %+v; want scale-in suspended, held by planner fleet", fake.Target("s3clone/workers"), h)
	}

	out.Reset()
	release := fleet.Options{Service: svc, Workers: 0, Release: true, JSON: true}
	if err := release.Run(ctx, ecs, aas, holds, &out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Released fleet.Result `json:"released"`
		Resumed  bool         `json:"scale_in_resumed"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || !got.Resumed || got.Released.Desired != 0 || got.Released.Previous != 3 {
		t.Errorf("release said %s (%v); want scale-in resumed, desired 0 from 3", out.String(), err)
	}
	h, _, _ = holds.FleetHold(ctx, svc.ResourceID())
	if fake.Target("s3clone/workers").ScaleInSuspended || h.Released.IsZero() || fake.Service("s3clone/workers").DesiredCount != 0 {
		t.Errorf("after the release: target %+v, hold %+v, service %+v", fake.Target("s3clone/workers"), h, fake.Service("s3clone/workers"))
	}

	out.Reset()
	again := fleet.Options{Service: svc, Workers: -1, Release: true}
	if err := again.Run(ctx, ecs, aas, holds, &out); err != nil || out.String() != "fleet     s3clone/workers: dynamic scale-in resumed\n" {
		t.Errorf("release without --workers: %v, said %q; want scale-in resumed, the count left alone", err, out.String())
	}
}

// TestFleetRunNotReady: workers that do not start in time fail with exit 1,
// the desired count left set and scale-in as it was (no target here).
func TestFleetRunNotReady(t *testing.T) {
	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {}})
	o := fleet.Options{Service: fleet.Service{Cluster: "s3clone", Name: "workers"}, Workers: 2, Wait: time.Nanosecond}
	var out bytes.Buffer
	err := o.Run(context.Background(), client(fake.URL), autoScaling(fake.URL), &memHolds{}, &out)
	if !errors.Is(err, cli.ErrNotReady) || cli.ExitCode(err, io.Discard) != cli.ExitFailed ||
		!strings.Contains(err.Error(), "0 of 2 workers running") || !strings.Contains(err.Error(), "the desired count stays 2") {
		t.Errorf("Run = %v; want cli.ErrNotReady saying 0 of 2 run and the count stays 2", err)
	}
	if fake.Service("s3clone/workers").DesiredCount != 2 || !strings.Contains(out.String(), "0 running of 2 desired (was 0 desired), not yet after") ||
		strings.Contains(out.String(), "suspended") {
		t.Errorf("service %+v, said:\n%s", fake.Service("s3clone/workers"), out.String())
	}
}
