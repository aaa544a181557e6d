package report

import (
	"fmt"
	"testing"
	"time"
)

func result(run string, seq int64, worker string, copied int64, failed ...string) Result {
	r := Result{Run: run, Seq: seq, Worker: worker, Copied: copied, Bytes: copied * 10,
		Started: time.Unix(1000+seq, 0), Finished: time.Unix(1001+seq, 0)}
	for _, k := range failed {
		r.Failed = append(r.Failed, Failure{Key: k, Reason: "changed"})
	}
	return r
}

func TestTallyCountsEachMessageOnce(t *testing.T) {
	t.Parallel()
	tl := NewTally()
	tl.AddPlan(Plan{Run: "r1", Objects: 30, Messages: 3})
	if !tl.AddResult(result("r1", 1, "w1", 10)) {
		t.Fatal("first result not counted")
	}
	if tl.AddResult(result("r1", 1, "w2", 10)) {
		t.Fatal("a redelivered message's second report was counted")
	}
	tl.AddResult(result("r1", 2, "w2", 9, "k"))
	tl.AddResult(result("r2", 1, "w1", 5))
	st := tl.Status("r1")
	if st.Done != 2 || st.Copied != 19 || st.Failed != 1 || st.Bytes != 190 || st.Workers != 2 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Failures) != 1 || st.Failures[0].Key != "k" {
		t.Fatalf("failures %+v", st.Failures)
	}
	if runs := tl.Runs(); len(runs) != 2 || runs[1] != "r2" {
		t.Fatalf("runs %v", runs)
	}
}

// TestBundlesRoundTrip writes a tally as bundles, reads them into a new one
// together with duplicates, and checks the totals are unchanged.
func TestBundlesRoundTrip(t *testing.T) {
	t.Parallel()
	tl := NewTally()
	tl.AddPlan(Plan{Run: "r1", Objects: 5000, Messages: 500})
	for seq := int64(1); seq <= 500; seq++ {
		var failed []string
		if seq%50 == 0 {
			failed = []string{fmt.Sprintf("key-%d with a long name %0200d", seq, seq)}
		}
		tl.AddResult(result("r1", seq, fmt.Sprintf("w%d", seq%3), 9, failed...))
	}
	bundles := tl.Bundles(16 << 10)
	if len(bundles) < 2 {
		t.Fatalf("%d bundles: the size limit was not applied", len(bundles))
	}
	again := NewTally()
	for _, b := range bundles {
		body, err := Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(body) > 16<<10 {
			t.Errorf("bundle of %d bytes over the 16 KiB asked for", len(body))
		}
		env, err := Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		again.Add(env)
		again.Add(env) // a bundle read twice changes nothing
	}
	want, got := tl.Status("r1"), again.Status("r1")
	if got.Done != want.Done || got.Copied != want.Copied || got.Failed != want.Failed || got.Bytes != want.Bytes || got.Plan == nil {
		t.Fatalf("after a round trip: %+v, want %+v", got, want)
	}
}

func TestDecodeRejectsOtherVersions(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"v":2,"kind":"batch"}`, `{"v":1,"kind":"other"}`, `not json`} {
		if _, err := Decode([]byte(body)); err == nil {
			t.Errorf("Decode(%s) accepted it", body)
		}
	}
}

func TestRates(t *testing.T) {
	t.Parallel()
	tl := NewTally()
	start := time.Unix(0, 0)
	tl.AddPlan(Plan{Run: "r", Objects: 1000, Messages: 10, Started: start})
	for i := range 5 {
		tl.AddResult(Result{Run: "r", Seq: int64(i + 1), Copied: 100,
			Started: start.Add(time.Duration(i) * 10 * time.Second), Finished: start.Add(time.Duration(i+1) * 10 * time.Second)})
	}
	st := tl.Status("r")
	if st.Rate != 10 {
		t.Fatalf("rate %.2f objects/s, want 10 (500 objects in 50s)", st.Rate)
	}
	if st.RecentRate < 9.9 || st.RecentRate > 10.1 {
		t.Fatalf("recent rate %.2f, want 10", st.RecentRate)
	}
}
