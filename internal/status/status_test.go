package status

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
)

func ptr[T any](v T) *T { return &v }

func TestNew(t *testing.T) {
	t.Parallel()
	ended := &ledger.Run{ID: "r", Ended: time.Unix(100, 0)}
	stopped := &ledger.Run{ID: "r", Ended: time.Unix(100, 0), Stopped: "send: throttled"}
	planning := &ledger.Run{ID: "r"}
	emptyQueue := &Depth{DeadLettered: ptr(int64(0))}
	deadLetters := &Depth{DeadLettered: ptr(int64(3))}
	for _, c := range []struct {
		name      string
		st        ledger.Status
		depth     *Depth
		plan      string
		complete  bool
		stalled   bool
		ended     bool
		remaining int64
		eta       float64 // 0: none
	}{
		{"planning, half done", ledger.Status{Run: planning, Planned: ledger.Totals{Objects: 1000}, DoneObjects: 500, Sent: 10, Done: 5, Rate: 50, RecentRate: 100},
			nil, PlanRunning, false, false, false, 500, 5},
		{"the recent rate wins over the run's", ledger.Status{Run: ended, Planned: ledger.Totals{Objects: 1000}, DoneObjects: 800, Rate: 10, RecentRate: 40},
			nil, PlanFinished, false, false, false, 200, 5},
		{"no recent rate: the run's", ledger.Status{Run: ended, Planned: ledger.Totals{Objects: 1000}, DoneObjects: 800, Rate: 20},
			nil, PlanFinished, false, false, false, 200, 10},
		{"complete", ledger.Status{Run: ended, Planned: ledger.Totals{Objects: 1000}, DoneObjects: 1000, Sent: 10, Done: 10, Complete: true, Rate: 5},
			emptyQueue, PlanFinished, true, false, true, 0, 0},
		{"stalled on dead letters", ledger.Status{Run: ended, Planned: ledger.Totals{Objects: 1000}, DoneObjects: 900, Sent: 10, Done: 9, Rate: 5},
			deadLetters, PlanFinished, false, true, false, 100, 20},
		{"not stalled while work waits", ledger.Status{Run: ended, Planned: ledger.Totals{Objects: 1000}, DoneObjects: 900, Sent: 10, Done: 9},
			&Depth{Visible: 1, DeadLettered: ptr(int64(3))}, PlanFinished, false, false, false, 100, 0},
		{"not stalled on an unreadable queue", ledger.Status{Run: ended, Sent: 10, Done: 9},
			&Depth{Error: "denied", DeadLettered: ptr(int64(3))}, PlanFinished, false, false, false, 0, 0},
		{"the plan stopped, what it sent is done", ledger.Status{Run: stopped, Planned: ledger.Totals{Objects: 50}, DoneObjects: 50, Sent: 5, Done: 5},
			emptyQueue, PlanStopped, false, false, true, 0, 0},
		{"the plan stopped, work left", ledger.Status{Run: stopped, Planned: ledger.Totals{Objects: 50}, DoneObjects: 40, Sent: 5, Done: 4, Rate: 10},
			nil, PlanStopped, false, false, false, 10, 1},
		{"not stalled while the plan still sends", ledger.Status{Run: planning, Now: time.Unix(30, 0), Sent: 10, Done: 9},
			deadLetters, PlanRunning, false, false, false, 0, 0},
		{"a planner silent for minutes, what it sent done", ledger.Status{Run: &ledger.Run{ID: "r", Started: time.Unix(0, 0), Alive: time.Unix(60, 0)},
			Now: time.Unix(60+181, 0), Sent: 5, Done: 5}, emptyQueue, PlanSilent, false, false, true, 0, 0},
		{"a planner heard from recently", ledger.Status{Run: &ledger.Run{ID: "r", Started: time.Unix(0, 0), Alive: time.Unix(60, 0)},
			Now: time.Unix(60+170, 0), Sent: 5, Done: 5}, emptyQueue, PlanRunning, false, false, false, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := New("r", c.st, c.depth, 0)
			if v.Plan != c.plan || v.Complete != c.complete || v.Stalled != c.stalled || v.Ended() != c.ended || *v.Remaining != c.remaining {
				t.Fatalf("plan %s complete %v stalled %v ended %v remaining %d", v.Plan, v.Complete, v.Stalled, v.Ended(), *v.Remaining)
			}
			switch {
			case c.eta == 0 && v.ETASeconds != nil:
				t.Fatalf("eta %v, want none", *v.ETASeconds)
			case c.eta != 0 && (v.ETASeconds == nil || *v.ETASeconds != c.eta):
				t.Fatalf("eta %v, want %v", v.ETASeconds, c.eta)
			}
			var out bytes.Buffer
			if err := v.Print(&out); err != nil || !strings.Contains(out.String(), "run         r\n") {
				t.Fatalf("printed (%v):\n%s", err, out.String())
			}
		})
	}
}

func TestPlanDeadline(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		remaining int64
		rate      float64
		workers   int
		deadline  time.Duration
		want      int
	}{
		{"no rate yet", 1000, 0, 0, time.Minute, 0},
		{"one worker does it", 600, 20, 2, time.Minute, 1},
		{"rounds up", 6001, 10, 1, 10 * time.Minute, 2},
		{"a tight deadline", 100000, 100, 4, 5 * time.Minute, 14},
		{"nothing left", 0, 10, 1, time.Minute, 0},
		{"a passed deadline sizes for at once", 1000, 10, 1, time.Nanosecond, 100000000000},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := PlanDeadline(c.remaining, ledger.Status{RecentRate: c.rate, RecentWorkers: c.workers}, c.deadline)
			if d.WorkersNeeded != c.want {
				t.Fatalf("workers needed %d, want %d (per worker %.1f/s)", d.WorkersNeeded, c.want, d.PerWorkerRate)
			}
		})
	}
}

// NewPacing sums what the workers writing to the run's destination last
// reported: each prefix's allowed and sent rates and throttled share, the
// busiest first; workers writing elsewhere are left out.
func TestNewPacing(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	presences := []ledger.Presence{
		{Worker: "w1", Queued: 30, Waiting: 2, Longest: &ledger.KeyWait{Bucket: "dst", Key: "img/b", Since: now.Add(-3 * time.Second)},
			Prefixes: []ledger.PrefixRate{
				{Bucket: "dst", Prefix: "img/", Allowed: 100, Sent: 450, Throttled: 9, Seconds: 5},
				{Bucket: "dst", Prefix: "", Allowed: 50, Sent: 5, Seconds: 5},
			}},
		{Worker: "w2", Queued: 10, Waiting: 1, Longest: &ledger.KeyWait{Bucket: "dst", Key: "img/c", Since: now.Add(-time.Second)},
			Prefixes: []ledger.PrefixRate{{Bucket: "dst", Prefix: "img/", Allowed: 100, Sent: 500, Throttled: 1, Seconds: 5}}},
		{Worker: "other-run", Prefixes: []ledger.PrefixRate{{Bucket: "elsewhere", Prefix: "x/", Allowed: 9, Sent: 9, Seconds: 1}}},
	}
	pc := NewPacing(presences, "dst", now)
	if pc == nil || pc.Workers != 2 || pc.Queued != 40 || pc.Waiting != 3 || pc.Longest.Key != "img/b" || pc.WaitSeconds != 3 {
		t.Fatalf("pacing %+v", pc)
	}
	if len(pc.Prefixes) != 2 {
		t.Fatalf("prefixes %+v, want img/ and the bucket's", pc.Prefixes)
	}
	img := pc.Prefixes[0]
	if img.Prefix != "img/" || img.Rate != 200 || img.Writes != 190 || img.Throttled != 2.0/190 {
		t.Errorf("img/ %+v: want 200 allowed, 190 sent a second, 2 of 190 throttled", img)
	}
	var out strings.Builder
	v := View{Run: "r", Planned: &ledger.Totals{}, Pacing: pc}
	if err := v.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 workers writing here share", "40 keys wait", "img/: 200 writes/s allowed, 190/s sent, 1.1% throttled", "s3://dst/img/b, for 3s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status text lacks %q:\n%s", want, out.String())
		}
	}
	if NewPacing(presences, "nowhere", now) != nil {
		t.Error("pacing for a bucket nobody writes to")
	}
}
