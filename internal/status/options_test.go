package status

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/fleet"
)

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ok := Options{Bounds: fleet.Bounds{Max: 16}}
	with := func(f func(o *Options)) Options {
		o := ok
		f(&o)
		return o
	}
	for _, c := range []struct {
		name string
		o    Options
		want []string // each a problem's start; none: valid
	}{
		{"the defaults", ok, nil},
		{"a watch with a deadline and scaling", with(func(o *Options) {
			o.Watch, o.Deadline, o.ScaleECS, o.Bounds.Min = 10*time.Second, 30*time.Minute, "s3clone/workers", 1
		}), nil},
		{"failures to a file", with(func(o *Options) { o.Failures, o.Out = true, filepath.Join(dir, "failed.jsonl") }), nil},
		{"a malformed run id", with(func(o *Options) { o.RunID = "../x" }), []string{"--run-id: "}},
		{"a negative deadline", with(func(o *Options) { o.Deadline = -time.Minute }), []string{"--deadline -1m0s: must be positive"}},
		{"a watch too often", with(func(o *Options) { o.Watch = 500 * time.Millisecond }), []string{"--watch 500ms: refresh at most once a second"}},
		{"--out without --failures", with(func(o *Options) { o.Out = filepath.Join(dir, "f") }), []string{"--out goes with --failures"}},
		{"--out in no directory", with(func(o *Options) { o.Failures, o.Out = true, filepath.Join(dir, "no", "f") }),
			[]string{"--out " + filepath.Join(dir, "no", "f") + ": its directory does not exist"}},
		{"failures with a watch", with(func(o *Options) { o.Failures, o.Watch = true, time.Second }), []string{"--failures lists the failed keys once"}},
		{"scaling without a deadline", with(func(o *Options) { o.ScaleECS = "c/s" }), []string{"--scale-ecs needs --deadline"}},
		{"scaling a malformed service, min over max", with(func(o *Options) { o.ScaleECS, o.Deadline, o.Bounds.Min = "workers", time.Minute, 17 }),
			[]string{"--scale-ecs: \"workers\" is not CLUSTER/SERVICE", "--min-workers 17 --max-workers 16: want 0 <= min <= max"}},
		{"bounds unchecked without scaling", with(func(o *Options) { o.Bounds.Max = 0 }), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var p cli.Problems
			c.o.Validate(&p)
			if len(p) != len(c.want) {
				t.Fatalf("problems %q, want %d starting %q", p, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(p[i], w) {
					t.Errorf("problem %q, want it to start %q", p[i], w)
				}
			}
		})
	}
}

func TestOptionsValidateParsesTheService(t *testing.T) {
	t.Parallel()
	o := Options{ScaleECS: "arn:aws:ecs:eu-west-1:1:cluster/s3clone/workers", Deadline: time.Minute, Bounds: fleet.Bounds{Max: 4}}
	var p cli.Problems
	o.Validate(&p)
	if len(p) != 0 || o.Service != (fleet.Service{Cluster: "arn:aws:ecs:eu-west-1:1:cluster/s3clone", Name: "workers"}) {
		t.Fatalf("problems %q, service %+v", p, o.Service)
	}
}

func TestOptionsRegisterDefaults(t *testing.T) {
	t.Parallel()
	var o Options
	f := cli.NewFlags("planner status", Usage, nil)
	o.Register(f)
	if err := f.Parse([]string{"--json", "--watch", "10s", "--run-id", "r1"}); err != nil {
		t.Fatal(err)
	}
	if !o.JSON || o.Watch != 10*time.Second || o.RunID != "r1" || o.Bounds != (fleet.Bounds{Min: 0, Max: 16}) {
		t.Fatalf("parsed %+v", o)
	}
}
