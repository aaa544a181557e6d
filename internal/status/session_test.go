package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

var (
	finishedRun = &ledger.Run{ID: "r", Ended: time.Unix(100, 0)}
	completed   = New("r", ledger.Status{Run: finishedRun, Sent: 2, Done: 2, Complete: true}, nil, 0)
	copying     = New("r", ledger.Status{Run: &ledger.Run{ID: "r"}, Sent: 2, Done: 1}, nil, 0)
	stalled     = New("r", ledger.Status{Run: finishedRun, Sent: 10, Done: 9}, &Depth{DeadLettered: ptr(int64(3))}, 0)
	stopped     = New("r", ledger.Status{Run: &ledger.Run{ID: "r", Ended: time.Unix(100, 0), Stopped: "send: throttled"}, Sent: 5, Done: 5}, nil, 0)
)

func TestWatchEnd(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		v     View
		done  bool
		error string // "": none
	}{
		{"complete", completed, true, ""},
		{"still copying", copying, false, ""},
		{"stalled on dead letters", stalled, true, "run incomplete: some objects could not be copied: the work queue is empty and 3 messages are in its dead-letter queue"},
		{"the plan stopped, what it sent done", stopped, true, "run incomplete: some objects could not be copied: the plan did not finish (send: throttled)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			done, err := watchEnd(&c.v)
			if done != c.done || (err == nil) != (c.error == "") {
				t.Fatalf("done %v, error %v", done, err)
			}
			if err == nil {
				return
			}
			if !strings.HasPrefix(err.Error(), c.error) {
				t.Errorf("error %q, want it to start %q", err, c.error)
			}
			if !errors.Is(err, cli.ErrObjectsFailed) {
				t.Errorf("error %v is not cli.ErrObjectsFailed: the watch would not exit 1", err)
			}
		})
	}
}

// fakeViews gives the views in order, each after its refresh error (if any).
type fakeViews struct {
	refreshErrs []error // the i-th refresh's error; nil past the end
	views       []View  // the i-th view; the last again past the end
	refreshes   int
	shown       int
	cancel      context.CancelFunc // called at the view numbered cancelAt, if set
	cancelAt    int
}

func (f *fakeViews) refresh(context.Context) error {
	f.refreshes++
	if f.refreshes <= len(f.refreshErrs) {
		return f.refreshErrs[f.refreshes-1]
	}
	return nil
}

func (f *fakeViews) view(context.Context) (*View, error) {
	f.shown++
	if f.cancel != nil && f.shown == f.cancelAt {
		f.cancel()
	}
	v := f.views[min(f.shown, len(f.views))-1]
	return &v, nil
}

func TestWatchLoop(t *testing.T) {
	t.Parallel()
	errRead := errors.New("read: connection reset")
	for _, c := range []struct {
		name      string
		src       *fakeViews
		cancelAt  int    // cancel the context at this view (0: never)
		error     string // "": the watch ends with no error
		refreshes int    // refreshes made: the first view is of what Run read
		headers   int    // views printed
	}{
		{"ends when complete", &fakeViews{views: []View{copying, copying, completed}}, 0, "", 2, 3},
		{"ends with exit 1 when stalled", &fakeViews{views: []View{copying, stalled}}, 0, "run incomplete", 1, 2},
		{"carries on over failed refreshes", &fakeViews{refreshErrs: []error{errRead, errRead, errRead, errRead}, views: []View{copying, completed}}, 0, "", 5, 2},
		{"gives up after five failed in a row", &fakeViews{refreshErrs: []error{errRead, errRead, errRead, errRead, errRead}, views: []View{copying}}, 0,
			"5 refreshes in a row failed, the last: read: connection reset", 5, 1},
		{"an interrupt ends it cleanly", &fakeViews{views: []View{copying}}, 3, "", 2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancelAt > 0 {
				c.src.cancel, c.src.cancelAt = cancel, c.cancelAt
			}
			s := &session{Options: Options{Watch: time.Millisecond}, Clients: Clients{Log: zerolog.Nop()}}
			var out bytes.Buffer
			err := s.watchLoop(ctx, &out, c.src)
			if c.error == "" && err != nil || c.error != "" && (err == nil || !strings.HasPrefix(err.Error(), c.error)) {
				t.Fatalf("error %v, want %q", err, c.error)
			}
			if c.src.refreshes != c.refreshes {
				t.Errorf("%d refreshes, want %d", c.src.refreshes, c.refreshes)
			}
			if n := strings.Count(out.String(), "--- "); n != c.headers {
				t.Errorf("%d views printed, want %d:\n%s", n, c.headers, out.String())
			}
			if !strings.Contains(out.String(), "(every 1ms; Ctrl-C to stop)\nrun ") {
				t.Errorf("no view under its header:\n%s", out.String())
			}
		})
	}
}

func TestWatchLoopJSONIsAnObjectALine(t *testing.T) {
	t.Parallel()
	s := &session{Options: Options{Watch: time.Millisecond, JSON: true}, Clients: Clients{Log: zerolog.Nop()}}
	var out bytes.Buffer
	if err := s.watchLoop(context.Background(), &out, &fakeViews{views: []View{copying, completed}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one a view:\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		var v View
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Complete != (i == 1) {
			t.Errorf("line %d: %v, complete %v: %s", i, err, v.Complete, l)
		}
	}
}

func TestShowIndentsOneJSONView(t *testing.T) {
	t.Parallel()
	s := &session{Options: Options{JSON: true}}
	var out bytes.Buffer
	if err := s.show(&out, &completed); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "{\n  \"run\": \"r\",") {
		t.Fatalf("not indented JSON:\n%s", out.String())
	}
}

func TestPrintNoRun(t *testing.T) {
	t.Parallel()
	hold := ledger.FleetHold{Service: "c/s", Holder: "planner fleet", Host: "h", Since: time.Unix(0, 0).UTC()}
	for _, c := range []struct {
		name   string
		holds  []ledger.FleetHold
		asJSON bool
		want   string
	}{
		{"text", nil, false, "no run recorded in s3://l/p/ yet\n"},
		{"text, a held fleet", []ledger.FleetHold{hold}, false, "no run recorded in s3://l/p/ yet\nfleet       c/s: dynamic scale-in held suspended by planner fleet on h since 1970-01-01T00:00:00Z"},
		{"JSON", nil, true, "{}\n"},
		{"JSON, a held fleet", []ledger.FleetHold{hold}, true, `{"fleet_holds":[{"layout":0,"service":"c/s","holder":"planner fleet"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			if err := printNoRun(&out, "s3://l/p/", c.holds, c.asJSON); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out.String(), c.want) {
				t.Fatalf("printed %q, want it to start %q", out.String(), c.want)
			}
		})
	}
}

// fakeRun is a run's reader whose tally is given.
type fakeRun struct {
	tally     *ledger.Tally
	err       error
	refreshes int
}

func (f *fakeRun) Refresh(context.Context) error { f.refreshes++; return f.err }
func (f *fakeRun) Tally() *ledger.Tally          { return f.tally }

func TestBulkRate(t *testing.T) {
	t.Parallel()
	src, dst := plan.Location{Bucket: "src"}, plan.Location{Bucket: "dst"}
	follow := &ledger.Run{ID: "f", Source: src, Dest: dst}
	t0 := time.Now().Add(-time.Hour)
	tally := ledger.NewTally()
	tally.AddEntry("1", &ledger.Entry{Seq: 1, Copied: 50, Started: t0, Finished: t0.Add(5 * time.Second)})
	tally.AddEntry("2", &ledger.Entry{Seq: 2, Copied: 50, Started: t0.Add(5 * time.Second), Finished: t0.Add(10 * time.Second)})

	t.Run("the latest bulk run's rate, found once", func(t *testing.T) {
		t.Parallel()
		bulk := &fakeRun{tally: tally}
		var finds int
		var opened []string
		b := bulkReader{
			find: func(_ context.Context, s, d plan.Location) ([]*ledger.Run, error) {
				finds++
				if s != src || d != dst {
					t.Errorf("looked for the bulk copy of %s -> %s", s, d)
				}
				return []*ledger.Run{{ID: "first"}, {ID: "again"}}, nil
			},
			open: func(run string) runReader { opened = append(opened, run); return bulk },
		}
		for range 2 {
			if r := b.rate(context.Background(), follow); r != 10 {
				t.Errorf("rate %v, want 10 objects/s", r)
			}
		}
		if finds != 1 || len(opened) != 1 || opened[0] != "again" || bulk.refreshes != 2 {
			t.Errorf("%d finds, opened %q, %d refreshes: want the last run found once, read at each refresh", finds, opened, bulk.refreshes)
		}
	})
	t.Run("no bulk run", func(t *testing.T) {
		t.Parallel()
		b := bulkReader{
			find: func(context.Context, plan.Location, plan.Location) ([]*ledger.Run, error) {
				return nil, ledger.ErrNotFound
			},
			open: func(string) runReader { t.Error("opened a run that was not found"); return nil },
		}
		if r := b.rate(context.Background(), follow); r != 0 {
			t.Errorf("rate %v, want 0 (unknown)", r)
		}
	})
	t.Run("an unreadable bulk run", func(t *testing.T) {
		t.Parallel()
		b := bulkReader{
			find: func(context.Context, plan.Location, plan.Location) ([]*ledger.Run, error) {
				return []*ledger.Run{{ID: "b"}}, nil
			},
			open: func(string) runReader { return &fakeRun{tally: tally, err: errors.New("denied")} },
		}
		if r := b.rate(context.Background(), follow); r != 0 {
			t.Errorf("rate %v, want 0 (unknown)", r)
		}
	})
}
