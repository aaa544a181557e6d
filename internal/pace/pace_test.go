package pace

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
)

// board is the ledger's pace/ in memory: versions change on every write,
// and writes are conditional on them as S3's If-Match / If-None-Match are.
type board struct {
	mu       sync.Mutex
	rates    map[string]ledger.Rate
	workers  map[string]time.Time
	n        int
	puts     int
	refusals int
}

func newBoard() *board {
	return &board{rates: map[string]ledger.Rate{}, workers: map[string]time.Time{}}
}

func (b *board) RateKey(bucket, prefix string) string { return bucket + "/p=" + prefix }

func (b *board) Pace(context.Context) (ledger.PaceView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := ledger.PaceView{Workers: map[string]time.Time{}}
	for k, r := range b.rates {
		v.Rates = append(v.Rates, ledger.RateHead{Key: k, Version: r.Version})
	}
	for w, at := range b.workers {
		v.Workers[w] = at
	}
	return v, nil
}

func (b *board) Rate(_ context.Context, key string) (*ledger.Rate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.rates[key]
	if !ok {
		return nil, nil
	}
	return &r, nil
}

func (b *board) PutRate(_ context.Context, r ledger.Rate) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := b.RateKey(r.Bucket, r.Prefix)
	if b.rates[key].Version != r.Version {
		b.refusals++
		return "", fmt.Errorf("write %s: %w", key, ledger.ErrRateMoved)
	}
	b.n++
	b.puts++
	r.Version = fmt.Sprint("v", b.n)
	b.rates[key] = r
	return r.Version, nil
}

func (b *board) PutPresence(_ context.Context, p ledger.Presence) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.workers[p.Worker] = p.At
	return nil
}

func (b *board) DeletePresence(_ context.Context, w string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.workers, w)
	return nil
}

func (b *board) rate(bucket, prefix string) ledger.Rate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rates[b.RateKey(bucket, prefix)]
}

// others puts the presence of workers, written at at, on the board.
func others(t *testing.T, bd *board, at time.Time, workers ...string) {
	t.Helper()
	for _, w := range workers {
		if err := bd.PutPresence(context.Background(), ledger.Presence{Worker: w, At: at}); err != nil {
			t.Fatal(err)
		}
	}
}

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newPacer(cfg Config, c *clock) *Pacer {
	p := New(cfg)
	p.now = c.now
	return p
}

// busy makes a prefix's demand exceed its rate, as a worker's queue of keys
// does: a request waited.
func busy(t *testing.T, p *Pacer, bucket, key string) {
	t.Helper()
	d := p.domain(context.Background(), bucket, Prefix(key))
	d.tokens.mu.Lock()
	d.tokens.lastWait = p.now()
	d.tokens.mu.Unlock()
}

func (p *Pacer) rateOf(bucket, prefix string) (rate, share float64, slow bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.domains[domainKey{bucket, prefix}]
	return d.rate, d.tokens.Rate(), d.slow
}

func TestPrefixIsTheFirstFolder(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"img/2024/01/a.jpg": "img/",
		"a.jpg":             "",
		"/lead":             "/",
		"":                  "",
		"dir/":              "dir/",
	} {
		if got := Prefix(key); got != want {
			t.Errorf("Prefix(%q) = %q, want %q", key, got, want)
		}
	}
}

// Alone, a prefix's rate doubles each step while demand is above it (slow
// start); a throttle cuts it to just below what S3 took in the last second
// (by 5% at least, by half at most), at most once per cutEvery; then it is
// raised by steps that grow while S3 takes them.
func TestRateStartsSlowlyCutsAndProbes(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	p := newPacer(Config{Worker: "w"}, c)
	busy(t, p, "dst", "img/a")
	if r, _, slow := p.rateOf("dst", "img/"); r != startRate || !slow {
		t.Fatalf("a new prefix: rate %v (slow %v), want %v in slow start", r, slow, startRate)
	}
	for i, want := range []float64{200, 400, 800} {
		c.add(raiseEvery)
		busy(t, p, "dst", "img/a")
		p.raise()
		if r, _, _ := p.rateOf("dst", "img/"); r != want {
			t.Fatalf("step %d: rate %v, want %v", i, r, want)
		}
	}
	c.add(raiseEvery)
	p.raise() // nobody waited: demand below the rate, no raise
	if r, _, _ := p.rateOf("dst", "img/"); r != 800 {
		t.Fatalf("raised to %v without demand", r)
	}
	// S3 took 500 in the last second, 40 of them before it: the cut goes
	// to 95% of 500.
	for i := range 540 {
		if i == 40 {
			c.add(window)
		}
		p.Done("dst", "img/ok", false)
	}
	c.add(10 * time.Millisecond)
	busy(t, p, "dst", "img/a") // it sent all it was allowed
	p.Done("dst", "img/a", true)
	if r, _, slow := p.rateOf("dst", "img/"); r != 475 || slow {
		t.Fatalf("first throttle: rate %v (slow %v), want 475 (95%% of what S3 took), out of slow start", r, slow)
	}
	p.Done("dst", "img/b", true) // the same burst
	if r, _, _ := p.rateOf("dst", "img/"); r != 475 {
		t.Fatalf("a second throttle within cutEvery cut again: %v", r)
	}
	// Half a second later S3 still shows 500 taken: it never cuts by less
	// than 5%, nor by more than half.
	c.add(cutEvery)
	p.Done("dst", "img/c", true)
	if r, _, _ := p.rateOf("dst", "img/"); r != 451.25 {
		t.Fatalf("a later throttle: rate %v, want 451.25 (5%% less)", r)
	}
	c.add(2 * window) // S3 took nothing lately, though it was sent: cut by half
	busy(t, p, "dst", "img/c")
	p.Done("dst", "img/c", true)
	if r, _, _ := p.rateOf("dst", "img/"); r != 225.625 {
		t.Fatalf("a throttle after a quiet: rate %v, want half of 451.25", r)
	}
	// Another prefix is not touched by img/'s throttles.
	busy(t, p, "dst", "doc/x")
	if r, _, _ := p.rateOf("dst", "doc/"); r != startRate {
		t.Fatalf("doc/ starts at %v, want %v", r, startRate)
	}
	// No raise within raiseEvery of a throttle; then steps that grow.
	busy(t, p, "dst", "img/a")
	p.raise()
	if r, _, _ := p.rateOf("dst", "img/"); r != 225.625 {
		t.Fatalf("raised to %v right after a throttle", r)
	}
	base := 225.625
	step := base * firstStep
	for i := range 4 {
		c.add(raiseEvery)
		busy(t, p, "dst", "img/a")
		p.raise()
		if i < 2 { // additive steps that grow
			next := min(step*stepGrowth, base*maxStep)
			base += step
			step = next
		} else { // quietAfter without a throttle: doubled
			base *= 2
		}
		if r, _, _ := p.rateOf("dst", "img/"); fmt.Sprintf("%.3f", r) != fmt.Sprintf("%.3f", base) {
			t.Fatalf("probe %d: rate %v, want %v", i, r, base)
		}
	}
	// A worker that did not send all it was allowed learns nothing of the
	// partition from what S3 took: its cut is cutFactor's.
	other := newPacer(Config{Worker: "o"}, c)
	busy(t, other, "dst", "img/a")
	c.add(raiseEvery)
	busy(t, other, "dst", "img/a")
	other.raise() // 200
	c.add(2 * window)
	other.Done("dst", "img/a", true)
	if r, _, _ := other.rateOf("dst", "img/"); r != 2*startRate*cutFactor {
		t.Fatalf("a throttle without demand: rate %v, want %v", r, 2*startRate*cutFactor)
	}
	// Throttled keys wait until their call is over.
	if tot := p.Totals(); tot.Waiting != 3 || tot.Throttled != 4 || tot.Cuts != 3 {
		t.Fatalf("totals %+v: want 3 keys waiting, 4 throttles, 3 cuts", tot)
	}
	for _, k := range []string{"img/a", "img/b", "img/c"} {
		p.Settle("dst", k)
	}
	if tot := p.Totals(); tot.Waiting != 0 {
		t.Fatalf("%d keys still waiting after their calls ended", tot.Waiting)
	}
}

func TestRatesNeverFallBelowTheFloorNorRiseAboveTheCap(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	bd := newBoard()
	ctx := context.Background()
	others(t, bd, c.now(), "w1", "w2", "w3")
	p := newPacer(Config{Worker: "w0", MaxRate: 600, Board: bd}, c)
	p.sync(ctx)
	busy(t, p, "dst", "k")
	for range 100 {
		c.add(cutEvery)
		others(t, bd, c.now(), "w1", "w2", "w3")
		p.sync(ctx)
		p.Done("dst", "k", true)
	}
	p.sync(ctx) // the last cut written
	if r, _, _ := p.rateOf("dst", ""); r != minRate/4 {
		t.Fatalf("after 100 cuts: %v, want the floor %v: the fleet's least rate over its 4 workers", r, minRate/4)
	}
	for range 100 {
		c.add(raiseEvery)
		busy(t, p, "dst", "k")
		p.raise()
	}
	if r, share, _ := p.rateOf("dst", ""); r != 150 || share != 150 {
		t.Fatalf("after 100 raises: rate %v, allowed %v; want the cap 600 over 4 workers", r, share)
	}
}

// A fleet shares one rate per prefix: a slow start stays each worker's
// own until S3 throttles; a cut by one worker slows the others; every
// worker raises its own rate by the same share, and the board keeps one
// of the raises; a worker that joins starts at the fleet's rate, not in
// slow start.
func TestTheFleetSharesOneRate(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	bd := newBoard()
	ctx := context.Background()
	var fleet []*Pacer
	for i := range 4 {
		p := newPacer(Config{Worker: fmt.Sprint("w", i), Board: bd}, c)
		p.present(ctx)
		fleet = append(fleet, p)
	}
	for _, p := range fleet {
		p.sync(ctx)
		busy(t, p, "dst", "img/a")
	}
	if _, share, _ := fleet[0].rateOf("dst", "img/"); share != startRate/4 {
		t.Fatalf("a worker of 4 starts at %v a second, want a quarter of %v", share, startRate)
	}
	c.add(raiseEvery)
	for _, p := range fleet {
		busy(t, p, "dst", "img/a")
		p.raise()
		p.sync(ctx)
	}
	if bd.puts != 0 {
		t.Fatalf("%d rates written in slow start, want none", bd.puts)
	}
	// One worker meets a throttle: the rate is cut for all.
	c.add(raiseEvery)
	for range 40 {
		fleet[2].Done("dst", "img/ok", false) // S3 took 40 in the last second
	}
	busy(t, fleet[2], "dst", "img/z")
	fleet[2].Done("dst", "img/z", true)
	fleet[2].sync(ctx)
	if got := bd.rate("dst", "img/"); got.PerWorker != 38 || got.SlowStart || got.By != "w2" || got.Workers != 4 {
		t.Fatalf("after w2's throttle the board says %+v, want 38 (95%% of the 40 taken) for 4 workers, out of slow start, by w2", got)
	}
	for _, p := range fleet {
		p.sync(ctx)
		if r, _, slow := p.rateOf("dst", "img/"); r != 38 || slow {
			t.Fatalf("%s did not take up the cut: %v (slow %v)", p.cfg.Worker, r, slow)
		}
	}
	// Every worker raises: the board keeps one, the rest are refused and
	// find it the same.
	puts := bd.puts
	c.add(raiseEvery)
	for _, p := range fleet {
		busy(t, p, "dst", "img/a")
		p.raise()
	}
	for _, p := range fleet {
		p.sync(ctx)
	}
	want := 38 * (1 + firstStep)
	if got := bd.rate("dst", "img/"); fmt.Sprintf("%.3f", got.PerWorker) != fmt.Sprintf("%.3f", want) || bd.puts != puts+1 {
		t.Fatalf("rate %v after %d more writes, want %v after one", got.PerWorker, bd.puts-puts, want)
	}
	// A fifth joins: it starts at the fleet's rate.
	late := newPacer(Config{Worker: "w4", Board: bd}, c)
	late.present(ctx)
	late.sync(ctx)
	busy(t, late, "dst", "img/a")
	if r, _, slow := late.rateOf("dst", "img/"); fmt.Sprintf("%.3f", r) != fmt.Sprintf("%.3f", want*4/5) || slow {
		t.Fatalf("a joining worker: rate %v slow %v; want the fleet's total over 5, not in slow start", r, slow)
	}
	if tot := fleet[0].Totals(); tot.Workers != 4 {
		t.Fatalf("w0 counts %d workers, want 4 (w4 joined after its last sync)", tot.Workers)
	}
	fleet[0].sync(ctx)
	if tot := fleet[0].Totals(); tot.Workers != 5 {
		t.Fatalf("w0 counts %d workers, want 5", tot.Workers)
	}
	// The others go quiet: they stop counting.
	c.add(Fresh)
	late.present(ctx)
	late.sync(ctx)
	if tot := late.Totals(); tot.Workers != 1 {
		t.Fatalf("alone after the others went quiet: %d workers counted", tot.Workers)
	}
}

// Two workers cut for the same burst: the board keeps one cut, not two.
func TestCutsOfOneBurstCountOnce(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	bd := newBoard()
	ctx := context.Background()
	others(t, bd, c.now(), "c", "d")
	a := newPacer(Config{Worker: "a", Board: bd}, c)
	b := newPacer(Config{Worker: "b", Board: bd}, c)
	a.present(ctx)
	b.present(ctx)
	for _, p := range []*Pacer{a, b} {
		p.sync(ctx)
		busy(t, p, "dst", "k")
		p.Done("dst", "k", true) // slow start ends: half of 25
	}
	a.sync(ctx)
	b.sync(ctx) // refused: a wrote first; b merges
	b.sync(ctx)
	want := max(startRate/4/2, minRate/4)
	if got := bd.rate("dst", ""); got.PerWorker != want || bd.puts != 1 {
		t.Fatalf("board %+v after %d writes; want one cut to %v", got, bd.puts, want)
	}
	if r, _, _ := b.rateOf("dst", ""); r != want {
		t.Fatalf("b's rate %v, want %v", r, want)
	}
	// b raises for a while, then cuts again (a new burst): its cut is
	// written over its raises.
	for range 6 {
		c.add(raiseEvery)
		busy(t, b, "dst", "k")
		b.raise()
	}
	b.sync(ctx)
	raised := bd.rate("dst", "").PerWorker
	if raised <= want {
		t.Fatalf("b's raises were not written: %v", raised)
	}
	c.add(cutEvery)
	b.Done("dst", "k", true)
	b.sync(ctx)
	if got := bd.rate("dst", ""); got.PerWorker >= raised || got.By != "b" || got.Cut.IsZero() {
		t.Fatalf("board %+v, want b's cut below %v", got, raised)
	}
	a.sync(ctx)
	if r, _, _ := a.rateOf("dst", ""); r != bd.rate("dst", "").PerWorker {
		t.Fatalf("a did not take up b's raises and cut: %v", r)
	}
}

// A rate not changed for staleAfter is started from half, slowly.
func TestAStaleRateStartsAgainFromHalf(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	bd := newBoard()
	if _, err := bd.PutRate(context.Background(), ledger.Rate{Bucket: "dst", Prefix: "img/", PerWorker: 3000, At: c.now()}); err != nil {
		t.Fatal(err)
	}
	c.add(staleAfter + time.Second)
	p := newPacer(Config{Worker: "w", Board: bd}, c)
	p.sync(context.Background())
	busy(t, p, "dst", "img/x")
	if r, _, slow := p.rateOf("dst", "img/"); r != 1500 || !slow {
		t.Fatalf("rate %v slow %v, want 1500 in slow start", r, slow)
	}
}

func TestBucketPacesInOrderCallsUnderWayFirst(t *testing.T) {
	t.Parallel()
	b := newBucket(200, time.Now())
	start := time.Now()
	for range 40 {
		if err := b.Wait(context.Background(), false); err != nil {
			t.Fatal(err)
		}
	}
	// 40 requests at 200 a second with a burst of 10: at least 0.15 s.
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("40 requests at 200/s took %v", took)
	}
	if !b.WaitedSince(start) || b.WaitedSince(time.Now()) {
		t.Fatal("WaitedSince: want true since the start, false since now")
	}
	// At 5 a second: three keys not started queue, then a retry comes;
	// the retry goes first, the keys in the order they came.
	b.Set(5)
	_ = b.Wait(context.Background(), true) // spend what is left
	order := make(chan string, 4)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if b.Wait(context.Background(), false) == nil {
				order <- fmt.Sprint("key", i)
			}
		})
		waitQueued(t, b, i+1)
	}
	wg.Go(func() {
		if b.Wait(context.Background(), true) == nil {
			order <- "retry"
		}
	})
	waitQueued(t, b, 4)
	wg.Wait()
	close(order)
	var got []string
	for o := range order {
		got = append(got, o)
	}
	if strings.Join(got, " ") != "retry key0 key1 key2" {
		t.Fatalf("served %v, want the retry first, then the keys in order", got)
	}
	// A waiter that gives up takes no token from the next.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx, false); err == nil {
		t.Fatal("a canceled wait was granted")
	}
}

func waitQueued(t *testing.T, b *bucket, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		q := b.queued()
		b.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want %d", q, n)
		}
	}
}

// The operator's fleet-wide cap is shared out among the workers present.
func TestMaxFleetRateIsTheFleets(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	bd := newBoard()
	ctx := context.Background()
	others(t, bd, c.now(), "w1", "w2", "w3")
	p := newPacer(Config{Worker: "w0", MaxFleetRate: 400, Board: bd}, c)
	p.sync(ctx)
	if r := p.fleet.Rate(); r != 100 {
		t.Fatalf("a worker of 4 under a fleet cap of 400: %v a second, want 100", r)
	}
}

// Workers joining keep the fleet's total: each sends less; a joining
// worker takes the rate written for the fleet its writer counted, over
// its own count.
func TestWorkersJoiningKeepTheTotal(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	bd := newBoard()
	ctx := context.Background()
	a := newPacer(Config{Worker: "a", Board: bd}, c)
	a.present(ctx)
	a.sync(ctx)
	busy(t, a, "dst", "k")
	a.Done("dst", "k", true) // slow start ends: the rate is written
	for range 4 {
		c.add(raiseEvery)
		busy(t, a, "dst", "k")
		a.raise()
	}
	a.sync(ctx)
	alone, _, _ := a.rateOf("dst", "")
	if got := bd.rate("dst", ""); got.PerWorker != alone || got.Workers != 1 {
		t.Fatalf("board %+v, want a's %v for a fleet of 1", got, alone)
	}
	others(t, bd, c.now(), "b", "c", "d")
	a.sync(ctx)
	if r, _, _ := a.rateOf("dst", ""); r != alone/4 {
		t.Fatalf("a with 4 workers: %v, want a quarter of %v", r, alone)
	}
	d := newPacer(Config{Worker: "d", Board: bd}, c)
	d.sync(ctx)
	busy(t, d, "dst", "k")
	if r, _, _ := d.rateOf("dst", ""); r != alone/4 {
		t.Fatalf("d joining: %v, want a quarter of %v", r, alone)
	}
}

// boardHook is a board that runs a hook in the middle of a rate's write.
type boardHook struct {
	*board
	during func()
}

func (b boardHook) PutRate(ctx context.Context, r ledger.Rate) (string, error) {
	if b.during != nil {
		b.during()
	}
	return b.board.PutRate(ctx, r)
}

// A cut made while an earlier change is being written is written next.
func TestACutWhileARateIsWrittenIsNotLost(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	hook := boardHook{board: newBoard()}
	ctx := context.Background()
	p := newPacer(Config{Worker: "w", Board: &hook}, c)
	p.sync(ctx)
	busy(t, p, "dst", "k")
	for range 3 {
		c.add(raiseEvery)
		busy(t, p, "dst", "k")
		p.raise()
	}
	c.add(cutEvery)
	p.Done("dst", "k", true) // the first cut: dirty
	c.add(cutEvery)
	hook.during = func() { hook.during = nil; busy(t, p, "dst", "k"); p.Done("dst", "k", true) }
	p.sync(ctx) // writes the first cut; the second comes meanwhile
	second, _, _ := p.rateOf("dst", "")
	p.sync(ctx)
	if got := hook.rate("dst", ""); got.PerWorker != second {
		t.Fatalf("board %v after the next sync, want the second cut's %v", got.PerWorker, second)
	}
}

// A board that refuses this worker is an error at Start, not a silent
// worker pacing alone.
func TestStartSaysTheBoardRefuses(t *testing.T) {
	t.Parallel()
	p := New(Config{Worker: "w", Board: refusing{newBoard()}})
	if err := p.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("Start: %v, want the refusal", err)
	}
	if err := New(Config{Worker: "w", Board: newBoard()}).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

type refusing struct{ *board }

func (refusing) PutPresence(context.Context, ledger.Presence) error {
	return fmt.Errorf("write pace/workers/w.json: AccessDenied")
}

// Room: a worker takes the keys its rates send within Lead, less those
// already waiting, and always a message's worth when none waits.
func TestRoomFollowsTheRates(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	p := newPacer(Config{Worker: "w"}, c)
	if r := p.Room(); r != minRoom {
		t.Fatalf("room with no prefix: %d, want %d", r, minRoom)
	}
	ctx := context.Background()
	if err := p.Wait(ctx, "dst", "a/1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx, "dst", "b/1"); err != nil {
		t.Fatal(err)
	}
	want := int(2 * startRate * Lead.Seconds())
	if r := p.Room(); r != want {
		t.Fatalf("room with two prefixes at %v: %d, want %d", startRate, r, want)
	}
	c.add(6 * time.Second) // a/ and b/ not written to lately
	if r := p.Room(); r != minRoom {
		t.Fatalf("room after a quiet: %d, want %d", r, minRoom)
	}
}
