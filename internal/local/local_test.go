package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/worker"
)

// parse is planner run's flags as the command parses them.
func parse(t *testing.T, args ...string) *Options {
	t.Helper()
	var o Options
	f := cli.NewFlags("planner run", Usage, io.Discard)
	o.Register(f)
	if err := f.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return &o
}

// TestValidateRefusesWhatARunCannotDo: the flags a plan takes are checked
// as a plan's, and what only a run refuses is said: a checkpoint (its
// queue is in memory) and a ledger inside what is copied.
func TestValidateRefusesWhatARunCannotDo(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // each in the message; none: valid
	}{
		{"a plain run", []string{"--source", "s3://src-bucket", "--dest", "s3://dst-bucket"}, nil},
		{"a recorded run", []string{"--source", "s3://src-bucket", "--dest", "s3://dst-bucket", "--ledger", "s3://led-bucket/runs/"}, nil},
		{"no buckets", nil, []string{"--source is required", "--dest is required"}},
		{"a checkpoint", []string{"--source", "s3://src-bucket", "--dest", "s3://dst-bucket", "--checkpoint", "ledger:x"},
			[]string{"--checkpoint goes with planner plan: planner run keeps its queue in memory, so an interrupted run starts again"}},
		{"the ledger in the source", []string{"--source", "s3://src-bucket", "--dest", "s3://dst-bucket", "--ledger", "s3://src-bucket/runs/"}, []string{"--ledger s3://src-bucket/runs/ overlaps --source"}},
		{"the ledger in the destination", []string{"--source", "s3://src-bucket", "--dest", "s3://dst-bucket/x/", "--ledger", "s3://dst-bucket/"}, []string{"overlaps --dest"}},
		{"a bad concurrency", []string{"--source", "s3://src-bucket", "--dest", "s3://dst-bucket", "--concurrency", "-3"}, []string{"--concurrency"}},
		{"--delete alone", []string{"--source", "s3://src-bucket", "--dest", "s3://dst-bucket", "--delete"}, []string{"--delete needs --diff or --from-file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parse(t, tc.args...).Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ue *cli.UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("Validate = %v, want a usage error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestOutcomeSaysHowTheRunEnded: the first of the plan's and the worker's
// errors, dead messages, unfinished messages, failed objects and keys a
// diff could not inspect, in that order; nil when all was done.
func TestOutcomeSaysHowTheRunEnded(t *testing.T) {
	done := ledger.Status{Complete: true, Sent: 3, Done: 3}
	planErr, workErr := errors.New("listing failed"), errors.New("worker failed")
	for _, tc := range []struct {
		name            string
		planErr, work   error
		dead            int
		st              ledger.Status
		unknown         int64
		want            string // "" for nil
		objects, differ bool   // wraps cli.ErrObjectsFailed, cli.ErrMismatch
	}{
		{"all done", nil, nil, 0, done, 0, "", false, false},
		{"the plan failed", planErr, nil, 0, done, 0, "listing failed", false, false},
		{"both failed", planErr, workErr, 2, done, 0, "listing failed\nworker failed", false, false},
		{"dead messages", nil, nil, 2, done, 0, "2 messages still failing after 5 tries (see the log)", true, false},
		{"unfinished", nil, nil, 0, ledger.Status{Sent: 5, Done: 3}, 0, "2 of 5 messages were not finished", false, false},
		{"failed objects", nil, nil, 0, ledger.Status{Complete: true, Failed: 2, Planned: ledger.Totals{Objects: 9}}, 0, "2 of 9", true, false},
		{"keys not inspected", nil, nil, 0, done, 4, "the diff could not inspect 4 keys (listed above; enqueued as copies)", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := outcome(tc.planErr, tc.work, tc.dead, tc.st, tc.unknown)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("outcome = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("outcome = %v, want %q", err, tc.want)
			}
			if got := errors.Is(err, cli.ErrObjectsFailed); got != tc.objects {
				t.Errorf("errors.Is(ErrObjectsFailed) = %v, want %v", got, tc.objects)
			}
			if got := errors.Is(err, cli.ErrMismatch); got != tc.differ {
				t.Errorf("errors.Is(ErrMismatch) = %v, want %v", got, tc.differ)
			}
		})
	}
}

// TestRunCountsNeverShowMoreDoneThanPlanned: keys finished in any way
// count as done, a message tried again does not push done past planned,
// and the run is complete only once the plan has ended.
func TestRunCountsNeverShowMoreDoneThanPlanned(t *testing.T) {
	var st worker.Stats
	st.Copied.Store(5)
	st.Deleted.Store(2)
	st.Skipped.Store(1)
	st.Failed.Store(1)
	st.Bytes.Store(700)
	sum := &plan.Summary{}
	sum.Objects.Store(20)
	sum.Bytes.Store(1000)
	tally := ledger.NewTally()
	tally.SetRun(ledger.Run{ID: "r", Started: time.Now(), Ended: time.Now()})

	c := runCounts(&st, sum, tally, false)
	if c.Done != 9 || c.Bytes != 700 || c.Failed != 1 || c.Planned != 20 || c.PlannedBytes != 1000 || c.PlanFinished || c.Complete {
		t.Fatalf("while listing: %+v", c)
	}
	st.Copied.Store(30) // copies tried again
	st.Bytes.Store(5000)
	c = runCounts(&st, sum, tally, true)
	if c.Done != 20 || c.Bytes != 1000 || !c.PlanFinished || !c.Complete {
		t.Fatalf("listed, with copies tried again: %+v, want done and bytes at the plan's", c)
	}
}

// fakeCopier copies every key but those fail says to fail, with their
// error; it records the keys it was asked to copy.
type fakeCopier struct {
	fail map[string]error
	mu   sync.Mutex
	asks map[string]int
}

func (f *fakeCopier) Copy(_ context.Context, src copier.Source, _ copier.Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.asks == nil {
		f.asks = map[string]int{}
	}
	f.asks[src.Key]++
	return f.fail[src.Key]
}

func (f *fakeCopier) Delete(context.Context, copier.Target, []copier.Doomed) ([]copier.KeyError, error) {
	return nil, nil
}

func (f *fakeCopier) Current(_ context.Context, src copier.Source) (copier.Source, error) {
	return src, nil
}

var _ worker.Copier = (*fakeCopier)(nil)

// newClone is a run of keys (two a message) with cp as its copier.
func newClone(cp worker.Copier) *clone {
	now := time.Now()
	c := &clone{
		sum:   &plan.Summary{Run: plan.NewRunID(now), Source: plan.Location{Bucket: "src"}, Dest: plan.Location{Bucket: "dst"}, Started: now},
		mem:   newQueue(4, 2),
		tally: ledger.NewTally(),
	}
	cfg := worker.Config{ID: "local", Concurrency: 4, Visibility: 5 * time.Minute, RetryBackoff: time.Millisecond}
	c.w = worker.New(cfg, c.mem, worker.TallyRecorder{Tally: c.tally}, cp, zerolog.Nop())
	return c
}

// listOf is a plan's source listing keys, or failing with err after them.
func listOf(keys []string, err error) plan.Source {
	return func(ctx context.Context, copies, deletes chan<- []listing.Object) error {
		close(deletes)
		defer close(copies)
		objs := make([]listing.Object, len(keys))
		for i, k := range keys {
			objs[i] = listing.Object{Key: k, Size: 10, ETag: `"e"`}
		}
		select {
		case copies <- objs:
		case <-ctx.Done():
			return ctx.Err()
		}
		return err
	}
}

// runClone runs the plan of src through c and reports it.
func runClone(t *testing.T, c *clone, src plan.Source) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := ledger.Run{ID: c.sum.Run, Source: c.sum.Source, Dest: c.sum.Dest, Started: c.sum.Started}
	c.tally.SetRun(rec)
	planErr, workErr := c.copyAll(ctx, func(ctx context.Context, send plan.SendFunc, sent plan.SentFunc) error {
		return plan.Enqueue(ctx, src, c.sum, plan.Options{MaxKeys: 2}, send, sent)
	}, rec)
	var out bytes.Buffer
	err := c.report(&out, "listed", planErr, workErr, 0)
	return out.String(), err
}

// TestCopyAllEndsAsItsCopiesDid: over the in-memory queue, a run whose
// copies all succeed ends nil and complete; a key failing for good fails
// the run with its count; a key failing every time it is tried leaves its
// message dead after MaxReceives tries; a listing that fails is the
// run's error and its record's stop.
func TestCopyAllEndsAsItsCopiesDid(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e"}
	transient := &copier.Error{Reason: copier.ReasonTransient, Err: errors.New("slow down")}
	archived := &copier.Error{Reason: copier.ReasonArchived, Err: errors.New("in glacier")}
	for _, tc := range []struct {
		name    string
		fail    map[string]error
		listErr error
		want    string // "" for nil
		objects bool
		tries   map[string]int
	}{
		{"all copied", nil, nil, "", false, map[string]int{"a": 1, "e": 1}},
		{"one failed for good", map[string]error{"c": archived}, nil, "1 of 5", true, map[string]int{"c": 1}},
		{"one failing every try", map[string]error{"c": transient}, nil, "1 messages still failing after 5 tries", true, map[string]int{"c": MaxReceives}},
		{"the listing failed", nil, errors.New("list refused"), "list refused", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cp := &fakeCopier{fail: tc.fail}
			c := newClone(cp)
			out, err := runClone(t, c, listOf(keys, tc.listErr))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("run = %v, want nil\n%s", err, out)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want %q\n%s", err, tc.want, out)
			}
			if got := errors.Is(err, cli.ErrObjectsFailed); got != tc.objects {
				t.Errorf("errors.Is(ErrObjectsFailed) = %v, want %v", got, tc.objects)
			}
			for k, n := range tc.tries {
				if cp.asks[k] != n {
					t.Errorf("%s copied %d times, want %d", k, cp.asks[k], n)
				}
			}
			st := c.tally.Status()
			if st.Run == nil || st.Run.Ended.IsZero() || !c.listed.Load() {
				t.Errorf("the run's end is not recorded: %+v", st.Run)
			}
			if tc.listErr != nil {
				if st.Run.Stopped != tc.listErr.Error() {
					t.Errorf("record stopped %q, want %q", st.Run.Stopped, tc.listErr)
				}
				return
			}
			if st.Sent != 3 || st.Planned.Objects != 5 {
				t.Errorf("sent %d messages of %d objects, want 3 of 5", st.Sent, st.Planned.Objects)
			}
			if !strings.Contains(out, "elapsed ") {
				t.Errorf("the report has no elapsed line:\n%s", out)
			}
		})
	}
}
