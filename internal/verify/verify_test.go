package verify

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/plan"
)

func TestView(t *testing.T) {
	t.Parallel()
	var c plan.DiffCounts
	c.Compared.Store(10)
	c.Matching.Store(4)
	c.Missing.Store(1)
	c.Different.Store(2)
	c.Extra.Store(3)
	c.Unknown.Store(5)
	c.Vanished.Store(6)
	v := newView(plan.Location{Bucket: "s", Prefix: "a/"}, plan.Location{Bucket: "d"}, 1250*time.Millisecond, &c, "out.jsonl")
	var b strings.Builder
	v.print(&b)
	want := "verified  s3://s/a/ -> s3://d/ in 1.25s\nmatching  4\nmissing   1\ndifferent 2\nextra     3\n" +
		"unknown   5 (could not be inspected: HeadObject refused; see the reasons in --out)\n" +
		"vanished  6 (deleted from the source while being verified: counted extra)\n" +
		"written   out.jsonl (11 keys to fix: planner plan --from-file out.jsonl)\n"
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"source":"s3://s/a/","dest":"s3://d/","seconds":1.25,"compared":10,"matching":4,"missing":1,"different":2,"extra":3,"unknown":5,"vanished":6,"out":"out.jsonl"}`
	if string(data) != wantJSON {
		t.Errorf("JSON %s, want %s", data, wantJSON)
	}
}

func TestViewLeavesOutWhatIsNotThere(t *testing.T) {
	t.Parallel()
	v := view{Source: "s3://s/", Dest: "s3://d/", Compared: 3, Matching: 3}
	var b strings.Builder
	v.print(&b)
	if want := "verified  s3://s/ -> s3://d/ in 0.00s\nmatching  3\nmissing   0\ndifferent 0\nextra     0\n"; b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "vanished") || strings.Contains(string(data), `"out"`) || !strings.Contains(string(data), `"unknown":0`) {
		t.Errorf("JSON %s", data)
	}
}

func TestVerdict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		v    view
		want string // "" for none
	}{
		{"match", view{Compared: 5, Matching: 5}, ""},
		{"vanished only", view{Compared: 5, Matching: 5, Vanished: 2}, ""},
		{"missing", view{Compared: 5, Matching: 4, Missing: 1}, "1 of 5 keys"},
		{"all three", view{Compared: 9, Missing: 1, Different: 2, Extra: 3, Unknown: 1}, "6 of 9 keys"},
		{"unknown", view{Compared: 5, Matching: 3, Unknown: 2}, "2 of 5 keys could not be inspected (see --out, or run with --out FILE)"},
	} {
		err := tc.v.verdict()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, cli.ErrMismatch) || !strings.HasSuffix(err.Error(), ": "+tc.want)):
			t.Errorf("%s: %v, want a mismatch saying %q", tc.name, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ledger := "s3://ledger/runs/"
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want []string
	}{
		{"buckets", func(o *Options) { o.Job.RawSource, o.Job.RawDest = "s3://src/", "s3://dst/" }, nil},
		{"nothing", func(*Options) {}, []string{"--source is required", "--dest is required"}},
		{"a run-id without the ledger", func(o *Options) { o.Job.RawSource, o.Job.RawDest, o.RunID = "s3://src/", "s3://dst/", "r1" },
			[]string{"--run-id goes with --ledger and no --source or --dest: it picks the run whose copy to verify"}},
		{"out in no directory", func(o *Options) {
			o.Job.RawSource, o.Job.RawDest, o.Out = "s3://src/", "s3://dst/", filepath.Join(dir, "none", "out.jsonl")
		}, []string{"--out"}},
		{"a run in the ledger", func(o *Options) { o.RunID = "r1"; setLedger(t, o, ledger) }, nil},
		{"a run-id with buckets and the ledger", func(o *Options) {
			o.Job.RawSource, o.Job.RawDest, o.RunID = "s3://src/", "s3://dst/", "r1"
			setLedger(t, o, ledger)
		}, []string{"--run-id goes with --ledger"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options(t)
			tc.edit(o)
			err := o.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var usage *cli.UsageError
			if !errors.As(err, &usage) {
				t.Fatalf("Validate: %v, want a usage error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// options is Options with its flags' defaults.
func options(t *testing.T) *Options {
	t.Helper()
	var o Options
	f := cli.NewFlags("planner verify", Usage, os.Stderr)
	o.Register(f)
	if err := f.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return &o
}

// setLedger gives o the ledger flag's value.
func setLedger(t *testing.T, o *Options, url string) {
	t.Helper()
	f := cli.NewFlags("planner verify", Usage, os.Stderr)
	o.Ledger.Register(f, "")
	if err := f.Parse([]string{"--ledger", url}); err != nil {
		t.Fatal(err)
	}
}
