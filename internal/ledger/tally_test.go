package ledger

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/plan"
)

func TestRanges(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   []int64
		want []Range
	}{
		{nil, nil},
		{[]int64{5}, []Range{{5, 5}}},
		{[]int64{3, 1, 2, 2, 7, 9, 8, 11}, []Range{{1, 3}, {7, 9}, {11, 11}}},
	} {
		if got := Ranges(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Ranges(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestEntryNameRoundTrip(t *testing.T) {
	t.Parallel()
	start := time.UnixMilli(1764606223123).UTC()
	e := &Entry{Seq: 17, Copied: 97, Deleted: 0, Bytes: 4821300, Skipped: make([]Failure, 2), Failed: make([]Failure, 1),
		Started: start, Finished: start.Add(2333 * time.Millisecond)}
	name := entryName(42, e)
	if name != "0000000042-q17-c97-d0-s2-f1-b4821300-t1764606223123-u2333.json" {
		t.Fatalf("entry name %q", name)
	}
	var s Summary
	if err := parseEntryName(name, &s); err != nil {
		t.Fatal(err)
	}
	want := Summary{N: 42, Seq: 17, Copied: 97, Skipped: 2, Failed: 1, Bytes: 4821300, Started: start, Finished: e.Finished}
	if s != want {
		t.Fatalf("parsed %+v, want %+v", s, want)
	}
	for _, bad := range []string{"run.json", "0000000042-q17.json", "0000000042-q17-c97-d0-s2-f1-b48-t1-u2", "x-q1-c1-d0-s0-f0-b1-t1-u1.json",
		"0000000042-q17-c97-d0-s2-f1-b-5-t1-u2.json", "0000000042-c17-q97-d0-s2-f1-b4-t1-u2.json"} {
		if err := parseEntryName(bad, &s); err == nil {
			t.Errorf("%q parsed as an entry", bad)
		}
	}
}

func TestJournalNames(t *testing.T) {
	t.Parallel()
	a, b := journalName("ip-10-0-1-23.ec2.internal-4711"), journalName("ip-10-0-1-23.ec2.internal-4711")
	if a == b {
		t.Fatal("two journals of one worker id share a name: a restarted worker would overwrite entries")
	}
	if n := journalName("w/1 ☃"); n[:6] != "w_1__." || len(journalName(string(make([]byte, 500)))) > 64+9 {
		t.Fatalf("unsafe worker ids not made safe: %q", n)
	}
}

func summary(seq int64, journal string, copied int64, finished int) Summary {
	start := time.Unix(1000, 0)
	return Summary{Key: fmt.Sprintf("%s/%d/%d", journal, seq, finished), Journal: journal, Seq: seq, Copied: copied, Bytes: copied * 10,
		Started: start, Finished: start.Add(time.Duration(finished) * time.Second)}
}

func TestTallyCountsEachMessageOnceWhicheverOrder(t *testing.T) {
	t.Parallel()
	entries := []Summary{summary(1, "w1", 10, 5), summary(2, "w1", 10, 6), summary(1, "w2", 10, 9), summary(3, "w2", 7, 7)}
	var first Status
	for i := range 20 {
		tl := NewTally()
		tl.SetRun(Run{ID: "r", Started: time.Unix(1000, 0), Ended: time.Unix(1100, 0)})
		tl.AddSent(Sent{Seqs: []Range{{1, 3}}, Totals: Totals{Messages: 3, Objects: 27, Bytes: 270}})
		order := slices.Clone(entries)
		for j := range order { // a different order each time
			k := (j*7 + i) % len(order)
			order[j], order[k] = order[k], order[j]
		}
		for _, e := range order {
			tl.AddSummary(e)
		}
		st := tl.StatusAt(time.Unix(1010, 0))
		if st.Done != 3 || st.Copied != 27 || st.Bytes != 270 || st.Duplicates != 1 || !st.Complete || st.Remaining() != 0 {
			t.Fatalf("order %d: %+v", i, st)
		}
		if i == 0 {
			first = st
		} else if st.Last != first.Last || st.Workers != first.Workers || st.RecentRate != first.RecentRate {
			t.Fatalf("order %d: %+v differs from %+v", i, st, first)
		}
	}
}

// TestCompleteIsASetNotACount is the resumed plan whose half-failed send
// was planned again under new numbers: as many entries as sent messages is
// not complete while one sent number has none.
func TestCompleteIsASetNotACount(t *testing.T) {
	t.Parallel()
	tl := NewTally()
	tl.SetRun(Run{ID: "r", Ended: time.Unix(2000, 0)})
	tl.AddSent(Sent{Seqs: []Range{{1, 3}}, Totals: Totals{Messages: 3, Objects: 30}}) // session 1: 4 was lost in the failed send
	tl.AddSent(Sent{Seqs: []Range{{5, 5}}, Totals: Totals{Messages: 1, Objects: 10}}) // session 2 sent 4's keys as 5
	for _, seq := range []int64{1, 2, 4} {                                            // 4 was accepted after all, unrecorded
		tl.AddSummary(summary(seq, "w", 10, int(seq)))
	}
	tl.AddSummary(summary(5, "w", 10, 5))
	st := tl.Status()
	if st.Complete || st.Done != 3 || st.Sent != 4 || st.Unrecorded != 1 || st.Remaining() != 10 {
		t.Fatalf("4 entries for 4 sent messages, but message 3 has none: %+v", st)
	}
	tl.AddSummary(summary(3, "w", 10, 8))
	if st := tl.Status(); !st.Complete {
		t.Fatalf("every sent message done: %+v", st)
	}
}

func TestNotCompleteUntilThePlanEnds(t *testing.T) {
	t.Parallel()
	tl := NewTally()
	tl.SetRun(Run{ID: "r"})
	tl.AddSent(Sent{Seqs: []Range{{1, 1}}, Totals: Totals{Messages: 1, Objects: 10}})
	tl.AddSummary(summary(1, "w", 10, 1))
	if tl.Status().Complete {
		t.Fatal("complete while the planner is still sending")
	}
	tl.SetRun(Run{ID: "r", Ended: time.Unix(2000, 0), Stopped: "send: throttled"})
	if tl.Status().Complete {
		t.Fatal("complete although the plan stopped before sending everything")
	}
	tl.SetRun(Run{ID: "r", Ended: time.Unix(2000, 0)})
	if !tl.Status().Complete {
		t.Fatal("not complete after the plan finished and its message is done")
	}
}

func TestRecentRatePerWorker(t *testing.T) {
	t.Parallel()
	tl := NewTally()
	start := time.Unix(10000, 0)
	for i := range 60 { // two workers, 10 objects a second each, over the last minute
		for j, w := range []string{"a", "b"} {
			tl.AddSummary(Summary{Key: fmt.Sprint(w, i), Journal: w, Seq: int64(i*2 + j), Copied: 10,
				Started: start.Add(time.Duration(i) * time.Second), Finished: start.Add(time.Duration(i+1) * time.Second)})
		}
	}
	st := tl.StatusAt(start.Add(61 * time.Second))
	if st.RecentWorkers != 2 || st.RecentRate < 19 || st.RecentRate > 21 {
		t.Fatalf("recent rate %.1f by %d workers, want about 20 by 2", st.RecentRate, st.RecentWorkers)
	}
	// The fleet stopped: a minute later there is no recent rate.
	if st := tl.StatusAt(start.Add(3 * time.Minute)); st.RecentRate != 0 || st.RecentWorkers != 0 || st.Rate < 19 {
		t.Fatalf("two minutes after the last entry: recent rate %.1f by %d workers, overall %.1f", st.RecentRate, st.RecentWorkers, st.Rate)
	}
	// S3's clock, not the workers': an entry stored late counts when stored.
	tl.AddSummary(Summary{Key: "late", Journal: "c", Seq: 999, Copied: 600, Started: start, Finished: start.Add(time.Second),
		Written: start.Add(170 * time.Second)})
	if st := tl.StatusAt(start.Add(3 * time.Minute)); st.RecentWorkers != 1 || st.RecentRate < 9 {
		t.Fatalf("an entry stored 10s ago: recent rate %.1f by %d workers", st.RecentRate, st.RecentWorkers)
	}
}

func TestFailureRecords(t *testing.T) {
	t.Parallel()
	src, dst := plan.Location{Bucket: "s", Prefix: "in/"}, plan.Location{Bucket: "d", Prefix: "out/"}
	copies := &Entry{Source: src, Dest: dst}
	r := copies.Record(Failure{Key: "in/a.jpg", Size: 5, ETag: `"e"`, Class: "GLACIER", Reason: "archived"})
	if r.Problem != plan.Failed || r.Key != "a.jpg" || r.Source == nil || r.Source.ETag != `"e"` || r.Source.StorageClass != "GLACIER" || r.Dest != nil {
		t.Fatalf("failed copy: %+v", r)
	}
	if r := copies.Record(Failure{Key: "in/b.jpg", ETag: `"old"`, Reason: "changed"}); r.Source.ETag != "" {
		t.Fatalf("a changed source is enqueued pinned to its old ETag: %+v", r.Source)
	}
	deletes := &Entry{Op: plan.OpDelete, Source: src, Dest: dst}
	if r := deletes.Record(Failure{Key: "out/x", Reason: "access-denied"}); r.Key != "x" || r.Dest == nil || r.Source != nil {
		t.Fatalf("failed deletion: %+v", r)
	}
}

// TestJournalLowWater: a journal is read again from its first missing
// entry number, until it turns up or has been missing for the settle time.
func TestJournalLowWater(t *testing.T) {
	t.Parallel()
	j := &journalState{above: map[int64]bool{}}
	t0 := time.Unix(0, 0)
	settle := 5 * time.Minute
	j.saw(2)
	j.saw(3)
	j.settle(t0, settle)
	if j.low != 0 || j.after("p/") != "p/00000/0000000001" {
		t.Fatalf("entry 1 missing: low %d, after %q", j.low, j.after("p/"))
	}
	j.saw(1)
	j.settle(t0.Add(time.Minute), settle)
	if j.low != 3 || !j.gap.IsZero() {
		t.Fatalf("entries 1-3 read: low %d gap %v", j.low, j.gap)
	}
	j.saw(5) // 4 never lands
	j.settle(t0.Add(2*time.Minute), settle)
	j.settle(t0.Add(6*time.Minute), settle)
	if j.low != 3 {
		t.Fatalf("entry 4 missing for 4 minutes: low %d, want 3", j.low)
	}
	j.settle(t0.Add(8*time.Minute), settle)
	if j.low != 5 || j.after("p/") != "p/00000/0000000006" {
		t.Fatalf("entry 4 given up on: low %d, after %q", j.low, j.after("p/"))
	}
	j.saw(1000)
	for n := int64(6); n < 1000; n++ {
		j.saw(n)
	}
	j.settle(t0.Add(9*time.Minute), settle)
	if j.after("p/") != "p/00001/0000001001" {
		t.Fatalf("into the second folder: %q", j.after("p/"))
	}
}

// TestNotDone: the entries holding keys not done as planned (failed or
// skipped), in order.
func TestNotDone(t *testing.T) {
	tally := NewTally()
	tally.AddSent(Sent{Seqs: Ranges([]int64{1, 2, 3, 4, 5, 7})})
	for _, s := range []Summary{
		{Key: "a", Seq: 1, Copied: 10},
		{Key: "b", Seq: 3, Copied: 8, Failed: 2},
		{Key: "c", Seq: 4, Copied: 9, Skipped: 1},
		{Key: "d", Seq: 9, Copied: 1},
	} {
		tally.AddSummary(s)
	}
	var seqs []int64
	for _, s := range tally.notDone() {
		seqs = append(seqs, s.Seq)
	}
	if !slices.Equal(seqs, []int64{3, 4}) {
		t.Errorf("entries with keys not done: %v, want [3 4]", seqs)
	}
}
