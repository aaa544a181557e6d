package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// fakeFailed is a run's failed entries.
type fakeFailed struct {
	entries []*ledger.Entry
	err     error
	limit   int
}

func (f *fakeFailed) Failed(_ context.Context, limit int) ([]*ledger.Entry, error) {
	f.limit = limit
	return f.entries, f.err
}

var (
	src, dst      = plan.Location{Bucket: "src", Prefix: "in/"}, plan.Location{Bucket: "dst", Prefix: "out/"}
	failedEntries = []*ledger.Entry{
		{Seq: 1, Source: src, Dest: dst, Failed: []ledger.Failure{
			{Key: "in/a", Size: 7, ETag: `"e1"`, Reason: "archived", Code: "InvalidObjectState", Detail: "restore it first"},
			{Key: "in/b", Size: 9, ETag: `"e2"`, Reason: "changed", Code: "PreconditionFailed"},
		}},
		{Seq: 2, Op: plan.OpDelete, Source: src, Dest: dst, Failed: []ledger.Failure{{Key: "out/gone", Reason: "denied", Code: "AccessDenied"}}},
	}
)

func TestListFailuresAsText(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	r := &fakeFailed{entries: failedEntries}
	if err := listFailures(context.Background(), r, "", false, &out); err != nil {
		t.Fatal(err)
	}
	want := "in/a\tarchived\tInvalidObjectState\trestore it first\nin/b\tchanged\tPreconditionFailed\t\nout/gone\tdenied\tAccessDenied\t\n"
	if out.String() != want || r.limit != 0 {
		t.Fatalf("printed (limit %d)\n%q, want every one (limit 0)\n%q", r.limit, out.String(), want)
	}
}

func TestListFailuresAsJSON(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := listFailures(context.Background(), &fakeFailed{entries: failedEntries}, "", true, &out); err != nil {
		t.Fatal(err)
	}
	var got []ledger.Failure
	dec := json.NewDecoder(&out)
	for dec.More() {
		var f ledger.Failure
		if err := dec.Decode(&f); err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if len(got) != 3 || got[0] != failedEntries[0].Failed[0] || got[2] != failedEntries[1].Failed[0] {
		t.Fatalf("decoded %+v", got)
	}
}

func TestListFailuresToAReconciliationFile(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "failed.jsonl")
	var stdout bytes.Buffer
	if err := listFailures(context.Background(), &fakeFailed{entries: failedEntries}, out, false, &stdout); err != nil {
		t.Fatal(err)
	}
	if want := "written   " + out + " (3 failed keys: planner plan --from-file " + out + ")\n"; stdout.String() != want {
		t.Errorf("printed %q, want %q", stdout.String(), want)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []plan.Record
	if err := plan.ReadRecords(f, src, dst, func(r plan.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3: %+v", len(recs), recs)
	}
	if r := recs[0]; r.Key != "a" || r.Problem != plan.Failed || r.Source == nil || r.Source.ETag != `"e1"` || r.Source.Size != 7 {
		t.Errorf("record of a failed copy: %+v", r)
	}
	if r := recs[1]; r.Key != "b" || r.Source == nil || r.Source.ETag != "" {
		t.Errorf("a changed source is enqueued without its old ETag: %+v", r)
	}
	if r := recs[2]; r.Key != "gone" || r.Source != nil || r.Dest == nil {
		t.Errorf("record of a failed deletion: %+v", r)
	}
}

func TestListFailuresWritesNoFileWhenTheLedgerFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "failed.jsonl")
	denied := errors.New("access denied")
	var stdout bytes.Buffer
	if err := listFailures(context.Background(), &fakeFailed{err: denied}, out, false, &stdout); !errors.Is(err, denied) {
		t.Fatalf("error %v, want the ledger's", err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 || stdout.Len() != 0 {
		t.Fatalf("left %v and printed %q: want nothing half-written", files, stdout.String())
	}
}

func TestListFailuresToAnUnwritableFileIsUsage(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "no", "failed.jsonl")
	err := listFailures(context.Background(), &fakeFailed{entries: failedEntries}, out, false, &bytes.Buffer{})
	var usage *cli.UsageError
	if !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), "--out "+out+": ") {
		t.Fatalf("error %v, want a usage error naming --out", err)
	}
}
