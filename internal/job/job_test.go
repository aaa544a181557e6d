package job

import (
	"slices"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
)

// validJob is a Job whose flags parse, before Validate.
func validJob() Job {
	return Job{RawSource: "s3://src/a/", RawDest: "s3://dst/b/", Listers: 64, BatchKeys: 100}
}

func TestJobValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*Job)
		want []string // each a substring of one problem, in order
	}{
		{"valid", func(*Job) {}, nil},
		{"no source or dest", func(j *Job) { j.RawSource, j.RawDest = "", "" }, []string{
			"--source is required: s3://BUCKET[/PREFIX] to copy from", "--dest is required: s3://BUCKET[/PREFIX] to copy to"}},
		{"not an S3 URL", func(j *Job) { j.RawSource = "src/a" }, []string{"--source: \"src/a\" is not an S3 URL"}},
		{"bad dest", func(j *Job) { j.RawDest = "https://dst" }, []string{"--dest: "}},
		{"same place", func(j *Job) { j.RawDest = "s3://src/a/" }, []string{"source and destination are both s3://src/a/"}},
		{"owner not an account", func(j *Job) { j.Src.Owner = "12345" }, []string{`--source-owner "12345": an AWS account ID is 12 digits`}},
		{"dest owner not an account", func(j *Job) { j.Dst.Owner = "abcdefghijkl" }, []string{`--dest-owner "abcdefghijkl": an AWS account ID is 12 digits`}},
		{"no listers", func(j *Job) { j.Listers = 0 }, []string{"--listers 0: use 1 to 1000"}},
		{"too many listers", func(j *Job) { j.Listers = 1001 }, []string{"--listers 1001: use 1 to 1000"}},
		{"no batch keys", func(j *Job) { j.BatchKeys = 0 }, []string{"--batch-keys 0: use 1 to 10000"}},
		{"too many batch keys", func(j *Job) { j.BatchKeys = 10001 }, []string{"--batch-keys 10001: use 1 to 10000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := validJob()
			tc.edit(&j)
			var p cli.Problems
			j.Validate(&p)
			checkProblems(t, p, tc.want)
		})
	}
}

// checkProblems checks p holds one problem per want, each containing it.
func checkProblems(t *testing.T, p cli.Problems, want []string) {
	t.Helper()
	if len(p) != len(want) {
		t.Fatalf("problems %q, want %d like %q", p, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(p[i], w) {
			t.Errorf("problem %d: %q, want it to say %q", i, p[i], w)
		}
	}
}

func TestJobValidateKeepsTheFlagsOwnersAndPayer(t *testing.T) {
	t.Parallel()
	j := validJob()
	j.Src.Owner, j.Src.RequesterPays, j.Dst.Owner = "111122223333", true, "444455556666"
	var p cli.Problems
	j.Validate(&p)
	checkProblems(t, p, nil)
	want := plan.Location{Bucket: "src", Prefix: "a/", Owner: "111122223333", RequesterPays: true}
	if j.Src != want {
		t.Errorf("Src %+v, want %+v", j.Src, want)
	}
	if want := (plan.Location{Bucket: "dst", Prefix: "b/", Owner: "444455556666"}); j.Dst != want {
		t.Errorf("Dst %+v, want %+v", j.Dst, want)
	}
}

func TestKeysMapAcrossPrefixes(t *testing.T) {
	t.Parallel()
	j := Job{Src: plan.Location{Bucket: "s", Prefix: "data/"}, Dst: plan.Location{Bucket: "d", Prefix: "copy/of/"}}
	if got := j.DestKey("data/x/y.txt"); got != "copy/of/x/y.txt" {
		t.Errorf("DestKey = %q", got)
	}
	if got := j.SourceKey("copy/of/x/y.txt"); got != "data/x/y.txt" {
		t.Errorf("SourceKey = %q", got)
	}
	whole := Job{Src: plan.Location{Bucket: "s"}, Dst: plan.Location{Bucket: "d", Prefix: "p/"}}
	if got := whole.DestKey("k"); got != "p/k" {
		t.Errorf("DestKey from a whole bucket = %q", got)
	}
	if got := whole.SourceKey("p/k"); got != "k" {
		t.Errorf("SourceKey into a whole bucket = %q", got)
	}
}

func TestComparerAsOf(t *testing.T) {
	t.Parallel()
	j := Job{Src: plan.Location{Bucket: "s"}, Dst: plan.Location{Bucket: "d"}, Copy: plan.Copy{Redirects: true}}
	c := j.Comparer()
	if c.AsOf != nil {
		t.Errorf("without AsOf the comparer reads versions: %#v (a nil *AsOf in the interface?)", c.AsOf)
	}
	if c.SrcBucket != "s" || c.DstBucket != "d" || !c.Redirects {
		t.Errorf("comparer %+v", c)
	}
	j.AsOf = listing.NewAsOf(nil, testTime)
	if c := j.Comparer(); c.AsOf == nil {
		t.Error("with AsOf the comparer does not read the versions then")
	}
}

func TestRunRecord(t *testing.T) {
	t.Parallel()
	j := Job{Src: plan.Location{Bucket: "s"}, Dst: plan.Location{Bucket: "d"}, Copy: plan.Copy{ACL: "private"}}
	sum := j.NewSummary()
	if sum.Run == "" || sum.Source != j.Src || sum.Dest != j.Dst || sum.Copy.ACL != "private" || sum.Started.IsZero() {
		t.Fatalf("summary %+v", sum)
	}
	for _, tc := range []struct {
		from *From
		mode string
	}{
		{&From{}, ledger.ModeFull},
		{&From{Diff: true, Delete: true}, ledger.ModeDiff},
		{&From{File: "recon.jsonl"}, ledger.ModeFromFile},
	} {
		rec := j.RunRecord(sum, tc.from, "https://queue", map[string]string{"listers": "8"})
		if rec.Mode != tc.mode || rec.Delete != tc.from.Delete {
			t.Errorf("diff %v file %q: mode %q delete %v, want %q %v", tc.from.Diff, tc.from.File, rec.Mode, rec.Delete, tc.mode, tc.from.Delete)
		}
		if rec.ID != sum.Run || rec.Queue != "https://queue" || rec.Source != j.Src || rec.Dest != j.Dst || rec.Copy.ACL != "private" ||
			rec.Options["listers"] != "8" || rec.Version != cli.Version() || !rec.Started.Equal(sum.Started) || rec.Started.Location().String() != "UTC" {
			t.Errorf("record %+v", rec)
		}
	}
}

func TestSentGroup(t *testing.T) {
	t.Parallel()
	seqs, tot := SentGroup([]plan.Body{
		{Seq: 3, Objects: 10, Bytes: 1000},
		{Seq: 4, Objects: 5, Delete: true},
		{Seq: 7, Objects: 2, Bytes: 20},
	})
	if !slices.Equal(seqs, []int64{3, 4, 7}) {
		t.Errorf("seqs %v", seqs)
	}
	if want := (ledger.Totals{Messages: 3, Objects: 17, Bytes: 1020, Deletes: 5}); tot != want {
		t.Errorf("totals %+v, want %+v", tot, want)
	}
	if seqs, tot := SentGroup(nil); len(seqs) != 0 || tot != (ledger.Totals{}) {
		t.Errorf("an empty group: %v %+v", seqs, tot)
	}
}

func TestPrintPlan(t *testing.T) {
	t.Parallel()
	sum := &plan.Summary{Run: "r1", Source: plan.Location{Bucket: "s", Prefix: "p/"}, Dest: plan.Location{Bucket: "d"}}
	sum.Objects.Store(12)
	sum.Deletes.Store(2)
	sum.Bytes.Store(2048)
	sum.Messages.Store(3)
	if want := (ledger.Totals{Messages: 3, Objects: 12, Bytes: 2048, Deletes: 2}); summaryTotals(sum) != want {
		t.Errorf("summaryTotals %+v, want %+v", summaryTotals(sum), want)
	}
	var b strings.Builder
	PrintPlan(&b, sum, "how it listed", false)
	want := "run       r1\nsource    s3://s/p/\ndest      s3://d/\n" +
		"enqueued 10 objects, " + cli.FormatSize(2048) + " (2048 bytes), in 3 messages\n" +
		"deletes   2 destination objects not in the source\nhow it listed\n"
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	sum.Deletes.Store(0)
	PrintPlan(&b, sum, "how", true)
	if !strings.Contains(b.String(), "would enqueue (dry run) 12 objects") || strings.Contains(b.String(), "deletes") {
		t.Errorf("dry run printed\n%s", b.String())
	}
}

func TestEstimateParts(t *testing.T) {
	t.Parallel()
	e := newEstimate(plan.Copy{StorageClass: "GLACIER"})
	if e.Copy.StorageClass != "GLACIER" || e.Now.IsZero() || e.Parts == nil || e.Threshold <= 0 {
		t.Fatalf("estimate %+v", e)
	}
	for _, size := range []int64{1, e.Threshold + 1, 1 << 40} {
		n := e.Parts(size)
		if n < 1 || n > 10000 {
			t.Errorf("a copy of %d bytes in %d parts", size, n)
		}
	}
}
