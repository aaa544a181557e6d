package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
)

// fakeHistory is a ledger's earlier runs: the last follow (or lastErr),
// and the bulk chains Bulk returns in turn (the last one again and again),
// or bulkErr.
type fakeHistory struct {
	mu      sync.Mutex
	last    *ledger.Follow
	lastErr error
	chains  [][]*ledger.Run
	bulkErr error
	bulks   int // calls of Bulk
}

func (h *fakeHistory) LastFollow(_ context.Context, changesURL string) (*ledger.Run, *ledger.Follow, error) {
	if h.lastErr != nil {
		return nil, nil, h.lastErr
	}
	if h.last == nil {
		return nil, nil, fmt.Errorf("no follow run of %s: %w", changesURL, ledger.ErrNotFound)
	}
	return &ledger.Run{ID: h.last.Run, Mode: ledger.ModeFollow}, h.last, nil
}

func (h *fakeHistory) Bulk(context.Context, plan.Location, plan.Location) ([]*ledger.Run, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bulks++
	if h.bulkErr != nil {
		return nil, h.bulkErr
	}
	if len(h.chains) == 0 {
		return nil, fmt.Errorf("no bulk run: %w", ledger.ErrNotFound)
	}
	c := h.chains[0]
	if len(h.chains) > 1 {
		h.chains = h.chains[1:]
	}
	if c == nil {
		return nil, fmt.Errorf("no bulk run: %w", ledger.ErrNotFound)
	}
	return c, nil
}

func (h *fakeHistory) String() string { return "s3://ledger/runs/" }

func (h *fakeHistory) calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bulks
}

var (
	pairSrc = plan.Location{Bucket: "src", Prefix: "in/"}
	pairDst = plan.Location{Bucket: "dst", Prefix: "out/"}
)

const testChangesURL = "https://sqs.us-east-1.amazonaws.com/1/changes"

// TestAwaitNextCycleWaitsOnlyAfterACutoversStop: no follow before, or one
// that did not stop at a mark, goes on at once; one stopped at a mark
// waits (saying so once) until a bulk plan begun after that stop, or the
// end of ctx; a ledger that cannot be read is a *LedgerError.
func TestAwaitNextCycleWaitsOnlyAfterACutoversStop(t *testing.T) {
	t.Parallel()
	stopped := time.Now().Add(-time.Hour)
	old := []*ledger.Run{{ID: "bulk-old", Started: stopped.Add(-time.Hour)}}
	next := []*ledger.Run{{ID: "bulk-next", Started: stopped.Add(time.Minute)}}
	atMark := &ledger.Follow{Run: "follow-1", Stopped: stopped, StoppedAt: "cut-1"}
	refused := errors.New("refused")
	for _, tc := range []struct {
		name    string
		h       *fakeHistory
		cancel  bool // ctx ends while it waits
		err     error
		waiting bool // it said it waits
		bulks   int  // at least this many reads of the bulk run
	}{
		{"no follow before", &fakeHistory{}, false, nil, false, 0},
		{"the last follow was stopped by hand", &fakeHistory{last: &ledger.Follow{Run: "follow-1", Stopped: stopped}}, false, nil, false, 0},
		{"a new clone began", &fakeHistory{last: atMark, chains: [][]*ledger.Run{next}}, false, nil, false, 1},
		{"until a new clone begins", &fakeHistory{last: atMark, chains: [][]*ledger.Run{nil, old, next}}, false, nil, true, 3},
		{"until stopped", &fakeHistory{last: atMark, chains: [][]*ledger.Run{old}}, true, nil, true, 1},
		{"the ledger refuses", &fakeHistory{lastErr: refused}, false, refused, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.cancel {
				go func() {
					for tc.h.calls() < 2 {
						time.Sleep(time.Millisecond)
					}
					cancel()
				}()
			}
			var out bytes.Buffer
			err := awaitNextCycle(ctx, tc.h, pairSrc, pairDst, testChangesURL, time.Millisecond, &out, zerolog.Nop())
			var le *LedgerError
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("awaitNextCycle = %v, want nil", err)
			case tc.err != nil && (!errors.As(err, &le) || !errors.Is(err, tc.err)):
				t.Fatalf("awaitNextCycle = %v, want a *LedgerError of %v", err, tc.err)
			}
			if tc.cancel != (ctx.Err() != nil) {
				t.Errorf("ctx ended: %v, want %v", ctx.Err(), tc.cancel)
			}
			said := out.String()
			if tc.waiting != (said != "") || strings.Count(said, "waiting ") > 1 {
				t.Errorf("said %q, want waiting said once: %v", said, tc.waiting)
			}
			if tc.waiting && !strings.Contains(said, "follow follow-1 stopped at cutover cut-1's mark") ||
				tc.waiting && !strings.Contains(said, "a new planner plan of s3://src/in/ -> s3://dst/out/") {
				t.Errorf("said %q", said)
			}
			if tc.h.calls() < tc.bulks {
				t.Errorf("the bulk run read %d times, want at least %d", tc.h.calls(), tc.bulks)
			}
		})
	}
}

// fakeProgress is a bulk run's progress: complete after doneAfter
// refreshes, failing those failAt says.
type fakeProgress struct {
	refreshes, doneAfter int
	failAt               map[int]bool
	tally                *ledger.Tally
}

func (p *fakeProgress) Refresh(context.Context) error {
	p.refreshes++
	if p.failAt[p.refreshes] {
		return errors.New("slow down")
	}
	r := ledger.Run{ID: "bulk-1", Started: time.Now()}
	if p.refreshes >= p.doneAfter {
		r.Ended = time.Now()
	}
	p.tally.SetRun(r)
	return nil
}

func (p *fakeProgress) Tally() *ledger.Tally { return p.tally }

// TestCatchUpTakesWhatDiffersOnceTheBulkRunIsDone: with no bulk run, or
// one begun after follow's events, nothing is listed; with one begun
// before, the catch-up waits until it is done (through failed reads), then
// takes each key that differs, in the source's prefix; a failed listing
// is its error.
func TestCatchUpTakesWhatDiffersOnceTheBulkRunIsDone(t *testing.T) {
	t.Parallel()
	subscribed := time.Now().Add(-time.Minute)
	before := []*ledger.Run{{ID: "from-file", Started: subscribed.Add(time.Second)}, {ID: "bulk-1", Started: subscribed.Add(-time.Hour)}}
	after := []*ledger.Run{{ID: "bulk-2", Started: subscribed.Add(time.Second)}}
	found := []plan.Finding{{Pair: listing.Pair{Key: "a"}}, {Pair: listing.Pair{Key: "b/c"}}}
	refused := errors.New("refused")
	for _, tc := range []struct {
		name      string
		h         *fakeHistory
		diffErr   error
		progress  *fakeProgress
		want      []string
		err       string
		refreshes int
	}{
		{"no bulk run yet", &fakeHistory{}, nil, nil, nil, "", 0},
		{"a bulk run begun after the events", &fakeHistory{chains: [][]*ledger.Run{after}}, nil, nil, nil, "", 0},
		{"a bulk run begun before", &fakeHistory{chains: [][]*ledger.Run{before}}, nil,
			&fakeProgress{doneAfter: 3, failAt: map[int]bool{2: true}}, []string{"in/a", "in/b/c"}, "", 3},
		{"the listing fails", &fakeHistory{chains: [][]*ledger.Run{before}}, refused, &fakeProgress{doneAfter: 1}, nil, "catch-up listing: refused", 1},
		{"the ledger fails", &fakeHistory{bulkErr: refused}, nil, nil, nil, "refused", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var base []string
			diffs := 0
			c := catchUp{runs: tc.h, src: pairSrc, dst: pairDst, poll: time.Millisecond, log: zerolog.Nop(),
				progress: func(run string) runProgress {
					base = append(base, run)
					tc.progress.tally = ledger.NewTally()
					return tc.progress
				},
				diff: func(ctx context.Context, counts *plan.DiffCounts, f func(context.Context, plan.Finding) error) error {
					diffs++
					if tc.diffErr != nil {
						return tc.diffErr
					}
					for _, x := range found {
						counts.Different.Add(1)
						if err := f(ctx, x); err != nil {
							return err
						}
					}
					return nil
				}}
			var took []string
			err := c.run(context.Background(), subscribed, func(k string) { took = append(took, k) })
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
				t.Fatalf("catch-up = %v, want %q", err, tc.err)
			}
			if !slices.Equal(took, tc.want) {
				t.Errorf("took %q, want %q", took, tc.want)
			}
			if tc.progress == nil {
				if diffs != 0 || base != nil {
					t.Errorf("listed %d times, read %q: want nothing", diffs, base)
				}
				return
			}
			if !slices.Equal(base, []string{"bulk-1"}) || tc.progress.refreshes != tc.refreshes || diffs != 1 {
				t.Errorf("read %q %d times then listed %d times; want the chain's base read %d times, then one listing", base, tc.progress.refreshes, diffs, tc.refreshes)
			}
		})
	}
}

// TestCatchUpWaitsForTheConfiguration: a configuration not yet in effect
// everywhere is waited for; ctx ending meanwhile ends the catch-up.
func TestCatchUpWaitsForTheConfiguration(t *testing.T) {
	t.Parallel()
	h := &fakeHistory{}
	c := catchUp{runs: h, src: pairSrc, dst: pairDst, poll: time.Millisecond, log: zerolog.Nop()}
	began := time.Now()
	if err := c.run(context.Background(), began.Add(50*time.Millisecond), func(string) {}); err != nil || time.Since(began) < 50*time.Millisecond || h.calls() != 1 {
		t.Errorf("catch-up = %v after %s, %d reads; want nil after the configuration's time, then the bulk run read", err, time.Since(began), h.calls())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.run(ctx, time.Now().Add(time.Hour), func(string) {}); !errors.Is(err, context.Canceled) || h.calls() != 1 {
		t.Errorf("catch-up stopped = %v, %d reads; want context.Canceled and no read", err, h.calls())
	}
}

// TestBridgeOwnedReadsFollowsRecord: without a ledger or a follow in it,
// it cannot tell (a usage error saying so); a ledger that cannot be read
// is a *LedgerError; else the record says.
func TestBridgeOwnedReadsFollowsRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := bridgeOwned(ctx, nil, testChangesURL); !isUsage(err, "--unsubscribe --via eventbridge needs --ledger") {
		t.Errorf("without a ledger: %v", err)
	}
	if _, err := bridgeOwned(ctx, &fakeHistory{}, testChangesURL); !isUsage(err, "no follow of "+testChangesURL+" in the ledger s3://ledger/runs/: nothing says follow turned EventBridge on") {
		t.Errorf("without a follow: %v", err)
	}
	refused := errors.New("refused")
	var le *LedgerError
	if _, err := bridgeOwned(ctx, &fakeHistory{lastErr: refused}, testChangesURL); !errors.As(err, &le) || le.Err != refused {
		t.Errorf("a ledger refusing: %v, want a *LedgerError", err)
	}
	for _, owned := range []bool{true, false} {
		if got, err := bridgeOwned(ctx, &fakeHistory{last: &ledger.Follow{BridgeOwned: owned}}, testChangesURL); got != owned || err != nil {
			t.Errorf("record says %v: %v, %v", owned, got, err)
		}
	}
}

// isUsage reports whether err is a cli.UsageError saying want.
func isUsage(err error, want string) bool {
	var ue *cli.UsageError
	return errors.As(err, &ue) && strings.Contains(err.Error(), want)
}
