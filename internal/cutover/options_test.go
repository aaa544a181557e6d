package cutover

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/fleet"
)

// parse parses and validates planner cutover's flags.
func parse(args ...string) (*Options, error) {
	var o Options
	f := cli.NewFlags("planner cutover", Usage, io.Discard)
	o.Register(f)
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	return &o, o.Validate()
}

// window's flags that make a valid cutover, then more.
func windowArgs(more ...string) []string {
	return append([]string{"--source", "s3://src/a/", "--dest", "s3://dst/b/",
		"--queue-url", "https://sqs.us-east-1.amazonaws.com/123456789012/work", "--ledger", "s3://ledger/s3clone/"}, more...)
}

func TestValidateTakesAWindow(t *testing.T) {
	t.Parallel()
	o, err := parse(windowArgs("--scale-ecs", "s3clone/workers", "--workers", "8", "--keep-fleet", "--timeout", "20m")...)
	if err != nil {
		t.Fatal(err)
	}
	if !o.from.Diff || !o.from.Delete || o.from.AsOf != "" {
		t.Errorf("the window plans diff %v delete %v as of %q, want --diff --delete", o.from.Diff, o.from.Delete, o.from.AsOf)
	}
	if o.service != (fleet.Service{Cluster: "s3clone", Name: "workers"}) {
		t.Errorf("service %+v", o.service)
	}
	if o.Job.Src.Bucket != "src" || o.Job.Dst.Prefix != "b/" {
		t.Errorf("buckets %+v -> %+v", o.Job.Src, o.Job.Dst)
	}
	if o.mode() != "cutover" || o.markWait() != DefaultMarkWait {
		t.Errorf("mode %q, mark wait %s", o.mode(), o.markWait())
	}

	o, err = parse(windowArgs("--no-delete", "--rehearse", "--verify", "--as-of", "2026-01-02T03:04:05Z")...)
	if err != nil {
		t.Fatalf("a rehearsal as of a time may verify: %v", err)
	}
	if o.from.Delete || o.from.At.IsZero() || o.mode() != "rehearsal" {
		t.Errorf("--no-delete --as-of --rehearse plans delete %v at %s (mode %s)", o.from.Delete, o.from.At, o.mode())
	}
	o.MarkWait = time.Second
	if o.markWait() != time.Second {
		t.Errorf("mark wait %s, want the one set", o.markWait())
	}
}

func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no", "such", "recon.jsonl")
	for _, tc := range []struct {
		name string
		args []string
		want []string // every problem named
	}{
		{"nothing", nil, []string{"--source is required", "--dest is required", "--queue-url is required: the work queue the fleet drains", "--ledger is required"}},
		{"bad service", windowArgs("--scale-ecs", "workers", "--workers", "2"), []string{`--scale-ecs: "workers" is not CLUSTER/SERVICE`}},
		{"service without workers", windowArgs("--scale-ecs", "c/s"), []string{"--scale-ecs needs --workers N, at least 1"}},
		{"workers without service", windowArgs("--workers", "3"), []string{"--workers and --keep-fleet go with --scale-ecs CLUSTER/SERVICE"}},
		{"keep-fleet without service", windowArgs("--keep-fleet"), []string{"--workers and --keep-fleet go with --scale-ecs CLUSTER/SERVICE"}},
		{"not a queue url", windowArgs("--queue-url", "work"), []string{`--queue-url "work" is not a queue URL`}},
		{"ledger in the source", windowArgs("--ledger", "s3://src/a/ledger/"), []string{"--ledger s3://src/a/ledger/ overlaps --source"}},
		{"verify a rehearsal", windowArgs("--rehearse", "--verify"), []string{"--verify with --rehearse: a full comparison against a source production still writes to cannot come out equal"}},
		{"negative timeout", windowArgs("--timeout", "-1s"), []string{"--timeout -1s: must be positive, e.g. 20m"}},
		{"out nowhere", windowArgs("--out", missing), []string{"--out " + missing + ": its directory does not exist"}},
		{"as-of not a time", windowArgs("--as-of", "yesterday"), []string{`--as-of "yesterday": an RFC 3339 time`}},
		{"as-of to come", windowArgs("--as-of", "2999-01-01T00:00:00Z"), []string{"--as-of 2999-01-01T00:00:00Z is in the future"}},

		{"follow a bad id", []string{"--follow", "no such/run", "--ledger", "s3://l/"}, []string{`--follow "no such/run": run id "no such/run": only letters`, "(or latest: the newest follow in the ledger)"}},
		{"follow as of", []string{"--follow", "latest", "--ledger", "s3://l/", "--as-of", "2026-01-02T03:04:05Z"}, []string{"--as-of with --follow: a cutover --follow makes the clone the source as of its mark"}},
		{"follow without deletes", []string{"--follow", "latest", "--ledger", "s3://l/", "--no-delete"}, []string{"--no-delete with --follow: follow mirrors deletions as they happen"}},
		{"follow scaling", []string{"--follow", "latest", "--ledger", "s3://l/", "--workers", "2"}, []string{"--scale-ecs with --follow: the fleet already runs for follow"}},
		{"follow keeping the fleet", []string{"--follow", "latest", "--ledger", "s3://l/", "--keep-fleet"}, []string{"--scale-ecs with --follow"}},
		{"follow negative timeout", []string{"--follow", "latest", "--ledger", "s3://l/", "--timeout", "-2m"}, []string{"--timeout -2m0s: must be positive"}},
		{"follow without a ledger", []string{"--follow", "latest"}, []string{"--ledger is required"}},
		{"follow out nowhere", []string{"--follow", "latest", "--ledger", "s3://l/", "--out", missing}, []string{"its directory does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(tc.args...)
			var usage *cli.UsageError
			if !errors.As(err, &usage) || cli.ExitCode(err, io.Discard) != cli.ExitUsage {
				t.Fatalf("err %v (%T), want a usage error (exit %d)", err, err, cli.ExitUsage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not say %q", err, w)
				}
			}
		})
	}
}

// TestValidateFollowNeedsNoBuckets: a cutover --follow takes its source,
// destination and queue from the follow's run.
func TestValidateFollowNeedsNoBuckets(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"latest", "20261201T162343Z-ab12cd34"} {
		o, err := parse("--follow", id, "--ledger", "s3://ledger/", "--rehearse", "--verify", "--timeout", "5m")
		if err != nil {
			t.Fatalf("--follow %s: %v", id, err)
		}
		if o.Follow != id || !o.Rehearse || !o.Verify || o.Timeout != 5*time.Minute {
			t.Errorf("--follow %s: options %+v", id, o)
		}
	}
}

// TestUsage: the usage text names every way of running a cutover.
func TestUsage(t *testing.T) {
	t.Parallel()
	for _, want := range []string{"usage: planner cutover --source", "planner cutover --follow RUN", "--as-of TIME", "--scale-ecs CLUSTER/SERVICE --workers N"} {
		if !strings.Contains(Usage, want) {
			t.Errorf("Usage does not say %q", want)
		}
	}
}
