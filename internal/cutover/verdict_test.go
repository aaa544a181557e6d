package cutover

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

func TestVerdictClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		v     verdict
		clean bool
	}{
		{"nothing found", verdict{}, true},
		{"changed live and verified", verdict{changedLive: 3, verified: 10}, true},
		{"a key", verdict{notRight: []notRight{{rec: plan.Record{Key: "k", Problem: plan.Missing}}}}, false},
		{"a key right now", verdict{notRight: []notRight{{rec: plan.Record{Key: "k", Problem: plan.Match}}}}, false},
		{"an early end", verdict{why: "gave up waiting"}, false},
	} {
		if got := tc.v.clean(); got != tc.clean {
			t.Errorf("%s: clean %v, want %v", tc.name, got, tc.clean)
		}
	}
}

// TestWriteRecon: the keys not right, but for those right after all, go
// to --out and to the ledger alike.
func TestWriteRecon(t *testing.T) {
	t.Parallel()
	v := verdict{notRight: []notRight{
		{rec: plan.Record{Key: "a<b>&", Problem: plan.Missing, Reason: "failed", Source: &plan.ObjectInfo{Key: "a/a<b>&", Size: 3, ETag: `"e"`}}},
		{rec: plan.Record{Key: "right", Problem: plan.Match, Reason: "same ETag"}},
		{rec: plan.Record{Key: "gone", Problem: plan.Extra}},
	}}
	out := filepath.Join(t.TempDir(), "recon.jsonl")
	rec, err := plan.NewRecordFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Discard()
	recon, err := v.writeRecon(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"key":"a<b>&","problem":"missing","reason":"failed","src":{"key":"a/a<b>&","size":3,"etag":"\"e\""}}` + "\n" +
		`{"key":"gone","problem":"extra"}` + "\n"
	if string(recon) != want {
		t.Errorf("recon\n%s\nwant\n%s", recon, want)
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != want {
		t.Errorf("--out holds\n%s\nwant\n%s", file, want)
	}

	// Without --out, the ledger's copy all the same.
	none, err := plan.NewRecordFile("")
	if err != nil {
		t.Fatal(err)
	}
	if recon, err := v.writeRecon(none); err != nil || string(recon) != want {
		t.Errorf("without --out: %q, %v", recon, err)
	}
	if recon, err := (&verdict{}).writeRecon(none); err != nil || len(recon) != 0 {
		t.Errorf("a clean verdict's file: %q, %v", recon, err)
	}
}

// notClean is a verdict naming a key in each state a second look leaves it.
func notClean() *verdict {
	return &verdict{
		why:       "gave up waiting after --timeout 1m0s: 2 of 3 messages done",
		unchecked: 1,
		notRight: []notRight{
			{rec: plan.Record{Key: "k1", Problem: plan.Missing}, why: "failed (AccessDenied)"},
			{rec: plan.Record{Key: "k2", Problem: plan.Match, Reason: "same ETag"}, why: "not finished (message 2)"},
			{rec: plan.Record{Key: "k3", Problem: plan.Failed}, why: "not finished (message 3)", unchecked: true},
			{rec: plan.Record{Key: "k4", Problem: plan.Failed}, why: "delete failed", unread: "HeadObject: 403 Forbidden"},
		},
	}
}

func TestPrint(t *testing.T) {
	t.Parallel()
	st := ledger.Status{Done: 2, Sent: 3, Copied: 5, Deleted: 1, Skipped: 2, Failed: 1, DoneObjects: 9}
	win := window{plan: 1500 * time.Millisecond, fleet: 2250 * time.Millisecond, total: 3750 * time.Millisecond}
	const (
		fleet = "fleet     2 of 3 messages done: 5 copied, 1 deleted, 2 skipped, 1 failed\n"
		times = "window    3.75s: plan 1.50s, then the fleet 2.25s\n"
		clean = "verdict   clean: every difference was copied or deleted as listed\n"
		keys  = "verdict   NOT CLEAN: 4 keys not copied or deleted as listed\n" +
			"          gave up waiting after --timeout 1m0s: 2 of 3 messages done\n" +
			"  k1\tfailed (AccessDenied)\tnow: missing\n" +
			"  k2\tnot finished (message 2)\tnow: right now (same ETag)\n" +
			"  k3\tnot finished (message 3)\tnow: not looked at again\n" +
			"  k4\tdelete failed\tnow: cannot tell (HeadObject: 403 Forbidden)\n" +
			"          1 of them not looked at again: their records are as the plan listed them\n"
	)
	verified := window{plan: win.plan, fleet: win.fleet, verify: time.Second, total: 4750 * time.Millisecond}
	asOf := notClean()
	asOf.asOf = time.Date(2026, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		name     string
		v        *verdict
		win      window
		out      string
		rehearse bool
		mirror   bool
		want     string
	}{
		{"clean", &verdict{}, win, "", false, true, fleet + times + clean},
		{"clean verified", &verdict{verified: 10}, verified, "", false, true,
			fleet + "window    4.75s: plan 1.50s, then the fleet 2.25s, verify 1.00s (10 keys)\n" + clean},
		{"rehearsal", &verdict{changedLive: 2}, win, "", true, true, fleet + times +
			"rehearsal this delta (9 keys) took 3.75s; the window at the freeze takes about the plan's 1.50s\n" +
			"          (listing and comparing both buckets), plus the fleet's time for what changes until then\n" +
			"          2 keys changed while production was live (expected in a rehearsal)\n" + clean},
		{"not clean, no --out", notClean(), win, "", false, true, fleet + times + keys +
			"          (--out FILE writes them for planner plan --from-file)\n"},
		{"not clean, --out", notClean(), win, "recon.jsonl", false, true, fleet + times + keys +
			"written   recon.jsonl (planner plan --from-file recon.jsonl --delete, once the cause is fixed)\n"},
		{"not clean, --no-delete", notClean(), win, "recon.jsonl", false, false, fleet + times + keys +
			"written   recon.jsonl (planner plan --from-file recon.jsonl, once the cause is fixed)\n"},
		{"not clean, as of a time", asOf, win, "recon.jsonl", false, true, fleet + times + keys +
			"          once the cause is fixed, run planner cutover --as-of 2026-01-02T03:04:05Z again: it copies the versions then of what still differs\n" +
			"written   recon.jsonl (the keys, as of now: not for plan --from-file with --as-of)\n"},
	} {
		var b strings.Builder
		tc.v.print(&b, st, tc.win, tc.out, tc.rehearse, tc.mirror)
		if b.String() != tc.want {
			t.Errorf("%s: printed\n%s\nwant\n%s", tc.name, b.String(), tc.want)
		}
	}
}

// TestPrintShowsFifty: a long verdict names fifty keys, and counts the rest.
func TestPrintShowsFifty(t *testing.T) {
	t.Parallel()
	v := &verdict{}
	for i := range 52 {
		v.notRight = append(v.notRight, notRight{rec: plan.Record{Key: fmt.Sprintf("k%02d", i), Problem: plan.Missing}, why: "failed"})
	}
	var b, f strings.Builder
	v.print(&b, ledger.Status{}, window{}, "", false, true)
	printFollowVerdict(&f, v, ledger.Status{}, followTimes{}, "")
	for name, out := range map[string]string{"print": b.String(), "printFollowVerdict": f.String()} {
		if !strings.Contains(out, "k49\t") || strings.Contains(out, "k50\t") || !strings.Contains(out, "          ... and 2 more\n") {
			t.Errorf("%s printed\n%s", name, out)
		}
	}
}

func TestPrintFollowVerdict(t *testing.T) {
	t.Parallel()
	st := ledger.Status{Copied: 4, Deleted: 1, Failed: 2}
	win := followTimes{mark: 2 * time.Second, fleet: 500 * time.Millisecond, total: 2500 * time.Millisecond}
	const (
		fleet = "fleet     4 copied, 1 deleted or found absent, 2 failed in follow's work\n"
		times = "window    2.50s: the mark 2.00s, then the fleet 0.50s\n"
	)
	v := &verdict{why: "follow F did not see the mark", notRight: []notRight{
		{rec: plan.Record{Key: "k1", Problem: plan.Failed}, why: "follow: AccessDenied"},
		{rec: plan.Record{Key: "k2", Problem: plan.Failed}, why: "bulk run R: NoSuchKey"},
	}}
	for _, tc := range []struct {
		name string
		v    *verdict
		win  followTimes
		out  string
		want string
	}{
		{"clean", &verdict{}, win, "", fleet + times + "verdict   clean: every change up to the freeze was copied or deleted as seen\n"},
		{"clean verified", &verdict{verified: 7}, followTimes{mark: win.mark, fleet: win.fleet, verify: time.Second, total: 3500 * time.Millisecond}, "",
			fleet + "window    3.50s: the mark 2.00s, then the fleet 0.50s, verify 1.00s (7 keys)\n" +
				"verdict   clean: every change up to the freeze was copied or deleted as seen\n"},
		{"not clean", v, win, "", fleet + times + "verdict   NOT CLEAN: 2 keys not copied or deleted as seen\n" +
			"          follow F did not see the mark\n  k1\tfollow: AccessDenied\n  k2\tbulk run R: NoSuchKey\n"},
		{"not clean, --out", v, win, "r.jsonl", fleet + times + "verdict   NOT CLEAN: 2 keys not copied or deleted as seen\n" +
			"          follow F did not see the mark\n  k1\tfollow: AccessDenied\n  k2\tbulk run R: NoSuchKey\n" +
			"written   r.jsonl (planner plan --from-file r.jsonl --delete, once the cause is fixed)\n"},
	} {
		var b strings.Builder
		printFollowVerdict(&b, tc.v, st, tc.win, tc.out)
		if b.String() != tc.want {
			t.Errorf("%s: printed\n%s\nwant\n%s", tc.name, b.String(), tc.want)
		}
	}
}

func TestNewVerdict(t *testing.T) {
	t.Parallel()
	v := notClean()
	v.verified = 12
	w := ledger.VerdictWindow{Plan: time.Second, Fleet: 2 * time.Second, Total: 3 * time.Second}
	lv := newVerdict("R", "rehearsal", false, v, ledger.Status{Copied: 5, Deleted: 1}, w)
	if lv.Run != "R" || lv.Mode != "rehearsal" || lv.Clean || lv.Why != v.why || lv.NotRight != 4 || lv.Verified != 12 ||
		lv.Copied != 5 || lv.Deleted != 1 || lv.Window != w {
		t.Errorf("ledger verdict %+v", lv)
	}
}
