package job

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
)

var testTime = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestFromValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recon := filepath.Join(dir, "recon.jsonl")
	writeFile(t, recon, `{"key":"x","problem":"missing","src":{"key":"a/x","size":1}}
{"key":"y","problem":"extra","dst":{"key":"b/y","size":1}}
{"key":"z","problem":"failed","dst":{"key":"b/z","size":1}}
`)
	bad := filepath.Join(dir, "bad.jsonl")
	writeFile(t, bad, `{"key":"x","problem":"missing","src":{"key":"elsewhere/x","size":1}}`+"\n")
	for _, tc := range []struct {
		name string
		from *From
		want []string
	}{
		{"full", &From{}, nil},
		{"diff and delete", &From{Diff: true, Delete: true}, nil},
		{"checkpoint file", &From{Checkpoint: filepath.Join(dir, "cp.json")}, nil},
		{"checkpoint in the ledger", &From{Checkpoint: "ledger:bulk-copy"}, nil},
		{"diff and from-file", &From{Diff: true, File: recon}, []string{
			"--diff and --from-file are two ways to choose keys: use one"}},
		{"delete alone", &From{Delete: true}, []string{
			"--delete needs --diff or --from-file: only a comparison knows what the source no longer has"}},
		{"checkpoint with diff", &From{Diff: true, Checkpoint: filepath.Join(dir, "cp.json")}, []string{
			"--checkpoint goes with a full plan only: a --diff or --from-file plan is simply run again"}},
		{"checkpoint with from-file", &From{File: recon, Checkpoint: filepath.Join(dir, "cp.json")}, []string{
			"--checkpoint goes with a full plan only"}},
		{"bad ledger checkpoint name", &From{Checkpoint: "ledger:../runs/x"}, []string{
			`--checkpoint ledger:: "../runs/x": name the checkpoint with letters`}},
		{"checkpoint in no directory", &From{Checkpoint: filepath.Join(dir, "nowhere", "cp.json")}, []string{"--checkpoint"}},
		{"no such file", &From{File: filepath.Join(dir, "none.jsonl")}, []string{"--from-file: open "}},
		{"a file for another copy", &From{File: bad}, []string{
			"--from-file " + bad + `: line 1: source key "elsewhere/x" is not under --source s3://src/a/`}},
		{"bad as-of", &From{AsOf: "yesterday"}, []string{
			`--as-of "yesterday": an RFC 3339 time, such as 2026-12-07T10:00:00Z`}},
		{"as-of with from-file and checkpoint", &From{AsOf: "2026-01-02T03:04:05Z", File: recon, Checkpoint: "ledger:x"}, []string{
			"--checkpoint goes with a full plan only",
			"--as-of with --from-file: a reconciliation file names keys as they are now",
			"--as-of with --checkpoint: a checkpoint does not record the time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := validJob()
			var p cli.Problems
			j.Validate(&p)
			from := tc.from
			from.Validate(&p, &j)
			checkProblems(t, p, tc.want)
		})
	}
}

func TestFromValidateCountsTheFilesDeletions(t *testing.T) {
	t.Parallel()
	recon := filepath.Join(t.TempDir(), "recon.jsonl")
	writeFile(t, recon, `{"key":"x","problem":"missing","src":{"key":"a/x","size":1}}
{"key":"y","problem":"extra","dst":{"key":"b/y","size":1}}
{"key":"z","problem":"failed","dst":{"key":"b/z","size":1}}
{"key":"w","problem":"failed","src":{"key":"a/w","size":1}}
`)
	j := validJob()
	var p cli.Problems
	j.Validate(&p)
	from := From{File: recon}
	from.Validate(&p, &j)
	checkProblems(t, p, nil)
	if from.deletions != 2 {
		t.Errorf("%d deletions counted, want 2 (the extra key and the failed deletion)", from.deletions)
	}
	how := from.Describe(1500 * time.Millisecond)
	want := "from      " + recon + ", 1.50s\nskipped   2 deletions in the file (add --delete to enqueue them)"
	if how != want {
		t.Errorf("Describe = %q, want %q", how, want)
	}
	from.Delete = true
	if how := from.Describe(time.Second); strings.Contains(how, "skipped") {
		t.Errorf("with --delete, Describe = %q", how)
	}
}

func TestFromValidateAsOf(t *testing.T) {
	t.Parallel()
	now := testTime
	for _, tc := range []struct {
		name   string
		from   *From
		want   []string
		wantAt time.Time
	}{
		{"none", &From{}, nil, time.Time{}},
		{"past", &From{AsOf: "2026-12-07T09:00:00Z"}, nil, now.Add(-time.Hour)},
		{"with a zone", &From{AsOf: "2026-12-07T10:00:00+01:00"}, nil, now.Add(-time.Hour)},
		{"now", &From{AsOf: "2026-12-07T10:00:00Z"}, nil, now},
		{"future", &From{AsOf: "2026-12-07T10:00:01Z"}, []string{
			"--as-of 2026-12-07T10:00:01Z is in the future (this machine's clock says 2026-12-07T10:00:00Z): a plan can only clone what the source already was"}, now.Add(time.Second)},
		{"a date", &From{AsOf: "2026-12-07"}, []string{`--as-of "2026-12-07": an RFC 3339 time`}, time.Time{}},
		{"from-file", &From{AsOf: "2026-12-07T09:00:00Z", File: "f"}, []string{"--as-of with --from-file: "}, now.Add(-time.Hour)},
		{"checkpoint", &From{AsOf: "2026-12-07T09:00:00Z", Checkpoint: "cp"}, []string{"--as-of with --checkpoint: "}, now.Add(-time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p cli.Problems
			from := tc.from
			from.ValidateAsOf(&p, now)
			checkProblems(t, p, tc.want)
			if !from.At.Equal(tc.wantAt) {
				t.Errorf("At = %v, want %v", from.At, tc.wantAt)
			}
		})
	}
}

func TestFromDescribeAsOf(t *testing.T) {
	t.Parallel()
	from := From{File: "f.jsonl", At: time.Date(2026, 12, 7, 11, 0, 0, 5e6, time.FixedZone("CET", 3600))}
	want := "as of     2026-12-07T10:00:00.005Z (each key's version then)\nfrom      f.jsonl, 2.00s"
	if got := from.Describe(2 * time.Second); got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if n := from.listRequests(); n != 0 {
		t.Errorf("a file plan made %d list requests", n)
	}
}

func TestFromSrcLister(t *testing.T) {
	t.Parallel()
	j := Job{}
	if l := (&From{}).SrcLister(&j); l != j.SrcAPI {
		t.Errorf("the source now is listed through %T", l)
	}
	if l, ok := (&From{At: testTime}).SrcLister(&j).(*listing.AsOf); !ok || l == nil {
		t.Errorf("the source as of a time is listed through %T", l)
	}
}

func TestCheckpointStoreAndResumable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cp.json")
	from := From{Checkpoint: path}
	cp := from.checkpointStore(nil)
	if f, ok := cp.(plan.CheckpointFile); !ok || string(f) != path {
		t.Fatalf("checkpoint store %#v, want the file %s", cp, path)
	}
	j := Job{Src: plan.Location{Bucket: "s", Prefix: "a/"}, Dst: plan.Location{Bucket: "d"}}
	if prior, err := resumable(cp, &j, "q"); prior != nil || err != nil {
		t.Fatalf("no checkpoint yet: %+v, %v", prior, err)
	}
	writeFile(t, path, `{"v":1,"run":"r0","src":{"bucket":"s","prefix":"a/","region":"eu-west-1"},"dst":{"bucket":"d"},"queue":"q","shards":[]}`)
	prior, err := resumable(cp, &j, "q")
	if err != nil || prior == nil || prior.Run != "r0" {
		t.Fatalf("the same plan's checkpoint: %+v, %v", prior, err)
	}
	for name, other := range map[string]struct {
		j     Job
		queue string
	}{
		"another source": {Job{Src: plan.Location{Bucket: "s", Prefix: "b/"}, Dst: j.Dst}, "q"},
		"another dest":   {Job{Src: j.Src, Dst: plan.Location{Bucket: "e"}}, "q"},
		"another queue":  {j, "q2"},
	} {
		_, err := resumable(cp, &other.j, other.queue)
		if !isUsage(err) || !strings.Contains(err.Error(), "--checkpoint "+path+" records the plan s3://s/a/ -> s3://d/ on q, not this one") {
			t.Errorf("%s: %v", name, err)
		}
	}
	writeFile(t, path, "not json")
	if _, err := resumable(cp, &j, "q"); !isUsage(err) || !strings.HasPrefix(err.Error(), "--checkpoint: ") {
		t.Errorf("a broken checkpoint: %v", err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func isUsage(err error) bool {
	var usage *cli.UsageError
	return errors.As(err, &usage)
}
