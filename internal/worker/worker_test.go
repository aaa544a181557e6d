package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/test/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }

// scriptedCopier stands in for S3 so that tests control how long each copy
// takes and how it fails; the copier itself is tested against versitygw.
type scriptedCopier struct {
	mu    sync.Mutex
	calls map[string]int // destination key -> copies
	fn    func(ctx context.Context, src copier.Source, dstKey string) error
}

func newScripted(fn func(ctx context.Context, src copier.Source, dstKey string) error) *scriptedCopier {
	return &scriptedCopier{calls: map[string]int{}, fn: fn}
}

func (s *scriptedCopier) Copy(ctx context.Context, src copier.Source, dst copier.Target) error {
	s.mu.Lock()
	s.calls[dst.Bucket+"/"+dst.Key]++
	s.mu.Unlock()
	if s.fn == nil {
		return nil
	}
	return s.fn(ctx, src, dst.Key)
}

func (s *scriptedCopier) Delete(_ context.Context, dst copier.Target, objs []copier.Doomed) ([]copier.KeyError, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range objs {
		s.calls["delete "+dst.Bucket+"/"+o.Key]++
	}
	return nil, nil
}

func (s *scriptedCopier) Current(_ context.Context, src copier.Source) (copier.Source, error) {
	return src, nil
}

func (s *scriptedCopier) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

func batchBody(t *testing.T, seq int64, keys ...string) queue.Outgoing {
	t.Helper()
	b := plan.Batch{Version: plan.SchemaVersion, Run: "run-1", Seq: seq,
		Source: plan.Location{Bucket: "src", Prefix: "in/"}, Dest: plan.Location{Bucket: "dst", Prefix: "out/"}}
	for _, k := range keys {
		b.Entries = append(b.Entries, plan.Entry{Key: "in/" + k, Size: 10, ETag: `"e"`})
	}
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return queue.Outgoing{Body: body}
}

func send(t *testing.T, q *queue.SQS, msgs ...queue.Outgoing) {
	t.Helper()
	if err := q.Send(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// newLedger starts a journal in a fresh ledger on the test S3 server.
func newLedger(t *testing.T, env *testbed.Env) (*ledger.Store, *ledger.Journal) {
	t.Helper()
	store := ledger.New(env.S3, env.Bucket(t), "ledger/")
	j, err := store.OpenJournal(context.Background(), "test-worker", "test")
	if err != nil {
		t.Fatal(err)
	}
	return store, j
}

// recorded reads what the ledger holds of run-1: its status, and how many
// entries (duplicates included) the journal wrote.
func recorded(t *testing.T, store *ledger.Store) (ledger.Status, int) {
	t.Helper()
	r := store.Follow("run-1")
	if err := r.Refresh(context.Background()); err != nil && !errors.Is(err, ledger.ErrNotFound) {
		t.Fatal(err)
	}
	st := r.Tally().Status()
	failures, err := r.Failures(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	st.Failures = failures
	return st, int(st.Done + st.Unrecorded + st.Duplicates)
}

// beginRun writes run-1's record, so the ledger's reader finds the run.
func beginRun(t *testing.T, store *ledger.Store) {
	t.Helper()
	l, err := store.BeginRun(context.Background(), ledger.Run{ID: "run-1", Mode: ledger.ModeFull, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.End(context.Background(), 0, nil); err != nil {
		t.Fatal(err)
	}
}

func depth(t *testing.T, q *queue.SQS) queue.Depth {
	t.Helper()
	d, err := q.Depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: "scripted"} }

func runWorker(t *testing.T, ctx context.Context, cfg Config, src Source, rec Recorder, cp Copier) (*Worker, <-chan error) {
	t.Helper()
	if rec == nil {
		rec = TallyRecorder{Tally: ledger.NewTally()}
	}
	w := New(cfg, src, rec, cp, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return w, done
}

func waitDone(t *testing.T, done <-chan error, within time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(within):
		t.Fatalf("worker still running after %s", within)
	}
}

func TestCopiesRecordsAndDeletes(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, batchBody(t, 1, "a", "b", "changed"), batchBody(t, 2, "c", "gone"), batchBody(t, 3, "d"))
	cp := newScripted(func(_ context.Context, src copier.Source, _ string) error {
		switch src.Key {
		case "in/changed":
			return apiErr("PreconditionFailed")
		case "in/gone":
			return apiErr("NoSuchKey")
		}
		return nil
	})
	w, done := runWorker(t, context.Background(), Config{Concurrency: 8, IdleExit: 2 * time.Second}, work, journal, cp)
	waitDone(t, done, 30*time.Second)

	for _, k := range []string{"a", "b", "c", "d", "changed", "gone"} {
		if n := cp.count("dst/out/" + k); n != 1 {
			t.Errorf("dst/out/%s copied %d times, want once (source prefix mapped to dest prefix)", k, n)
		}
	}
	st, n := recorded(t, store)
	if n != 3 || st.Unrecorded != 3 || st.Copied != 4 || st.Skipped != 1 || st.Failed != 1 || st.Bytes != 40 {
		t.Fatalf("%d entries; status %+v", n, st)
	}
	if f := st.Failures[0]; f.Key != "in/changed" || f.Reason != string(copier.ReasonChanged) || f.Size != 10 || f.ETag != `"e"` {
		t.Errorf("failure %+v: want the key as listed, with why", f)
	}
	if d := depth(t, work); d.Visible+d.InFlight != 0 {
		t.Fatalf("work queue still holds %+v", d)
	}
	if w.Stats.Messages.Load() != 3 {
		t.Errorf("stats: %d messages", w.Stats.Messages.Load())
	}
}

// TestExtendsVisibilityWhileWorking holds a copy for well past the
// visibility timeout: no one else may receive the message meanwhile.
func TestExtendsVisibilityWhileWorking(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	send(t, work, batchBody(t, 1, "slow"))
	started := make(chan struct{}, 1)
	cp := newScripted(func(ctx context.Context, _ copier.Source, _ string) error {
		started <- struct{}{}
		time.Sleep(7 * time.Second)
		return nil
	})
	_, done := runWorker(t, context.Background(), Config{Concurrency: 2, Visibility: 2 * time.Second, IdleExit: time.Second}, work, nil, cp)
	<-started
	stolen := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		msgs, err := work.Receive(context.Background(), 10, time.Second, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		stolen += len(msgs)
	}
	waitDone(t, done, 30*time.Second)
	if stolen != 0 {
		t.Fatalf("another consumer received the message %d times while it was worked on", stolen)
	}
	if n := cp.count("dst/out/slow"); n != 1 {
		t.Fatalf("copied %d times", n)
	}
	if d := depth(t, work); d.Visible+d.InFlight != 0 {
		t.Fatalf("work queue still holds %+v", d)
	}
}

// TestStopFinishesWithinGrace: on stop, a copy that ends within the grace
// period completes, and its message is recorded and deleted.
func TestStopFinishesWithinGrace(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, batchBody(t, 1, "k1", "k2"))
	started := make(chan struct{}, 2)
	cp := newScripted(func(ctx context.Context, _ copier.Source, _ string) error {
		started <- struct{}{}
		time.Sleep(time.Second)
		return ctx.Err()
	})
	ctx, stop := context.WithCancel(context.Background())
	_, done := runWorker(t, ctx, Config{Concurrency: 4, Grace: 10 * time.Second, Wait: time.Second}, work, journal, cp)
	// Both keys under way: a key not yet started when the stop comes is
	// handed back with its message, by design.
	<-started
	<-started
	stop()
	waitDone(t, done, 15*time.Second)
	if _, n := recorded(t, store); n != 1 {
		t.Fatalf("%d entries, want 1", n)
	}
	if d := depth(t, work); d.Visible+d.InFlight != 0 {
		t.Fatalf("work queue still holds %+v after a graceful stop", d)
	}
}

// TestStopReleasesAfterGrace: a copy that outlasts the grace period is cut
// short; its message is neither recorded nor deleted, but handed back.
func TestStopReleasesAfterGrace(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, batchBody(t, 1, "stuck"))
	started := make(chan struct{}, 1)
	cp := newScripted(func(ctx context.Context, _ copier.Source, _ string) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	ctx, stop := context.WithCancel(context.Background())
	_, done := runWorker(t, ctx, Config{Concurrency: 4, Grace: 300 * time.Millisecond, Visibility: 60 * time.Second, Wait: time.Second}, work, journal, cp)
	<-started
	stopped := time.Now()
	stop()
	waitDone(t, done, 10*time.Second)
	if took := time.Since(stopped); took > 5*time.Second {
		t.Errorf("stop took %s with a 300ms grace", took)
	}
	if _, n := recorded(t, store); n != 0 {
		t.Fatalf("%d entries for an unfinished message", n)
	}
	// Released: receivable long before its 60s visibility would end.
	msgs, err := work.Receive(context.Background(), 10, 5*time.Second, 30*time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("the cut-short message was not handed back: %v %v", msgs, err)
	}
}

// TestTransientFailureIsRetried: a throttled copy is not recorded; the
// message comes back after the backoff and is finished then.
func TestTransientFailureIsRetried(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, batchBody(t, 1, "ok", "flaky"))
	var flaky atomic.Int32
	cp := newScripted(func(_ context.Context, src copier.Source, _ string) error {
		if src.Key == "in/flaky" && flaky.Add(1) == 1 {
			return apiErr("SlowDown")
		}
		return nil
	})
	w, done := runWorker(t, context.Background(), Config{Concurrency: 4, IdleExit: 4 * time.Second, RetryBackoff: time.Second, Wait: time.Second}, work, journal, cp)
	waitDone(t, done, 60*time.Second)
	if n := cp.count("dst/out/flaky"); n != 2 {
		t.Fatalf("flaky key copied %d times, want 2", n)
	}
	if st, n := recorded(t, store); n != 1 || st.Copied != 2 || st.Failed != 0 {
		t.Fatalf("%d entries, status %+v; want one entry of 2 copied", n, st)
	}
	if w.Stats.Retried.Load() != 1 {
		t.Errorf("retried %d", w.Stats.Retried.Load())
	}
}

// TestMalformedMessageGoesToDeadLetters: a foreign body is never deleted by
// the worker, ends in the dead-letter queue, and good work goes on.
func TestMalformedMessageGoesToDeadLetters(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	workURL, dlqURL := env.Queue(t, 2)
	work := queue.NewSQS(env.SQS, workURL)
	send(t, work, queue.Outgoing{Body: []byte(`{"Records":"not ours"}`)}, batchBody(t, 1, "good"))
	cp := newScripted(nil)
	w, done := runWorker(t, context.Background(), Config{Concurrency: 4, Visibility: 2 * time.Second, IdleExit: 8 * time.Second, Wait: time.Second}, work, nil, cp)
	waitDone(t, done, 60*time.Second)
	if cp.count("dst/out/good") != 1 {
		t.Fatal("the good message was not done")
	}
	if w.Stats.Malformed.Load() < 1 {
		t.Fatal("the malformed message was not noticed")
	}
	if d := depth(t, queue.NewSQS(env.SQS, dlqURL)); d.Visible != 1 {
		t.Fatalf("dead-letter queue holds %+v, want the malformed message", d)
	}
}

// recordingSource records, at every receive, how many messages were asked
// for and how many keys were then in flight.
type recordingSource struct {
	Source
	w     *Worker
	mu    sync.Mutex
	asked [][2]int
}

func (r *recordingSource) Receive(ctx context.Context, n int, wait, vis time.Duration) ([]queue.Message, error) {
	r.mu.Lock()
	r.asked = append(r.asked, [2]int{n, int(r.w.Stats.InFlight.Load())})
	r.mu.Unlock()
	return r.Source.Receive(ctx, n, wait, vis)
}

func TestReceivesOnlyWhatFits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem := queue.NewMemory(100)
	for i := range 40 {
		body := batchBody(t, int64(i+1), fmt.Sprint(i, "a"), fmt.Sprint(i, "b"))
		if err := mem.Send(ctx, []queue.Outgoing{body}); err != nil {
			t.Fatal(err)
		}
	}
	mem.Close()
	var inFlight, peak atomic.Int32
	cp := newScripted(func(context.Context, copier.Source, string) error {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		return nil
	})
	rec := &recordingSource{Source: mem}
	w := New(Config{Concurrency: 6}, rec, TallyRecorder{Tally: ledger.NewTally()}, cp, zerolog.Nop())
	rec.w = w
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Stats.Copied.Load() != 80 {
		t.Fatalf("copied %d of 80", w.Stats.Copied.Load())
	}
	if peak.Load() > 6 {
		t.Errorf("%d copies at once with concurrency 6", peak.Load())
	}
	for _, a := range rec.asked {
		n, busy := a[0], a[1]
		free := 6 - busy
		if busy >= 6 || n > max(1, free/2) {
			t.Fatalf("asked for %d messages of 2 keys with %d keys in flight (room for %d)", n, busy, free)
		}
	}
	if !slices.ContainsFunc(rec.asked, func(a [2]int) bool { return a[0] > 1 }) {
		t.Error("never asked for more than one message at a time")
	}
}

// greedySource hands out every message it has in one receive, which SQS
// never does (ten at most): the way to have many messages received and not
// yet dispatched at once.
type greedySource struct {
	*queue.Memory
	once sync.Once
}

func (g *greedySource) Receive(ctx context.Context, n int, wait, vis time.Duration) ([]queue.Message, error) {
	got := false
	var msgs []queue.Message
	var err error
	g.once.Do(func() {
		got = true
		msgs, err = g.Memory.Receive(ctx, 1000, wait, vis)
	})
	if got {
		return msgs, err
	}
	return g.Memory.Receive(ctx, n, wait, vis)
}

// TestStopReleasesUndispatchedMessages: 51 messages received at once, one
// copy slot, the first copy slow. A stop releases the 50 messages waiting
// for a slot at once (they were held, never left to time out), lets the
// copy under way finish within the grace, and returns.
func TestStopReleasesUndispatchedMessages(t *testing.T) {
	t.Parallel()
	mem := queue.NewMemory(100)
	for i := range 51 {
		if err := mem.Send(context.Background(), []queue.Outgoing{batchBody(t, int64(i+1), fmt.Sprint("k", i))}); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan struct{}, 1)
	cp := newScripted(func(ctx context.Context, _ copier.Source, _ string) error {
		select {
		case started <- struct{}{}:
			time.Sleep(500 * time.Millisecond) // the one copy under way
		default:
		}
		return nil
	})
	tally := ledger.NewTally()
	ctx, stop := context.WithCancel(context.Background())
	src := &greedySource{Memory: mem}
	_, done := runWorker(t, ctx, Config{Concurrency: 1, Grace: 5 * time.Second, Visibility: 60 * time.Second}, src, TallyRecorder{Tally: tally}, cp)
	<-started
	stopped := time.Now()
	stop()
	waitDone(t, done, 10*time.Second)
	if took := time.Since(stopped); took > 3*time.Second {
		t.Fatalf("stopping took %s", took)
	}
	if st := tally.Status(); st.Copied != 1 || st.Unrecorded != 1 {
		t.Fatalf("the copy under way: %+v", st)
	}
	// All 50 are receivable now, long before their 60s visibility.
	msgs, err := mem.Receive(context.Background(), 100, 0, time.Minute)
	if err != nil || len(msgs) != 50 {
		t.Fatalf("%d of 50 undispatched messages released (%v)", len(msgs), err)
	}
}

// twiceSource delivers one message twice, as SQS does when a message's
// visibility lapses (a failed extension, say) while a worker still has it,
// and records what the worker does with it.
type twiceSource struct {
	mu       sync.Mutex
	body     []byte
	received int
	extended []time.Time // extensions of the message's visibility
	deleted  int
}

func (s *twiceSource) Receive(ctx context.Context, n int, wait, vis time.Duration) ([]queue.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.received < 2 {
		s.received++
		return []queue.Message{{ID: "m1", Body: s.body, Receives: s.received}}, nil
	}
	s.mu.Unlock()
	time.Sleep(wait)
	s.mu.Lock()
	return nil, nil
}

func (s *twiceSource) Delete(_ context.Context, msgs []queue.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted += len(msgs)
	return nil
}

func (s *twiceSource) ChangeVisibility(_ context.Context, msgs []queue.Message, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d > 0 && len(msgs) > 0 {
		s.extended = append(s.extended, time.Now())
	}
	return nil
}

// TestAMessageReceivedTwiceStaysHeld: finishing and deleting the first
// delivery of a message must not drop the hold of its second delivery,
// still being copied: its visibility goes on being extended.
func TestAMessageReceivedTwiceStaysHeld(t *testing.T) {
	t.Parallel()
	src := &twiceSource{body: batchBody(t, 1, "k").Body}
	var calls atomic.Int32
	cp := newScripted(func(context.Context, copier.Source, string) error {
		if calls.Add(1) == 1 {
			time.Sleep(100 * time.Millisecond)
		} else {
			time.Sleep(3 * time.Second)
		}
		return nil
	})
	_, done := runWorker(t, context.Background(), Config{Concurrency: 2, Visibility: 2 * time.Second, Wait: 100 * time.Millisecond, IdleExit: time.Second},
		src, TallyRecorder{Tally: ledger.NewTally()}, cp)
	waitDone(t, done, 30*time.Second)
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.deleted != 2 {
		t.Fatalf("%d deletes, want both deliveries deleted once done", src.deleted)
	}
	if len(src.extended) < 2 {
		t.Fatalf("the second delivery's visibility was extended %d times over its 3s copy (every 1s wanted)", len(src.extended))
	}
}

func TestFailHintRestoreCommand(t *testing.T) {
	b := &plan.Batch{Source: plan.Location{Bucket: "src"}, Dest: plan.Location{Bucket: "dst"}}
	archived := &copier.Error{Reason: copier.ReasonArchived, Err: errors.New("InvalidObjectState")}
	cases := []struct {
		f    ledger.Failure
		want string
	}{
		{ledger.Failure{Key: "a/b.jpg", Class: "GLACIER"},
			`aws s3api restore-object --bucket 'src' --key 'a/b.jpg' --restore-request '{"Days":7,"GlacierJobParameters":{"Tier":"Bulk"}}'`},
		{ledger.Failure{Key: "it's $HOME `x`", Class: "DEEP_ARCHIVE"},
			`--key 'it'\''s $HOME ` + "`x`" + `'`},
		{ledger.Failure{Key: "tiered", Class: "INTELLIGENT_TIERING"},
			`--key 'tiered' --restore-request '{}'`},
	}
	for _, c := range cases {
		got := failHint(b, c.f, archived)
		if !strings.Contains(got, c.want) {
			t.Errorf("hint for %+v:\n%s\nwant it to contain\n%s", c.f, got, c.want)
		}
	}
	if got := failHint(b, ledger.Failure{Key: "k"}, &copier.Error{Reason: copier.ReasonRejected, Err: errors.New("x")}); got != "" {
		t.Errorf("hint for a rejected key: %q, want none", got)
	}
}

func TestShellQuoteRoundTrips(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	for _, s := range []string{"plain", "it's", "'", "''", "a\nb", "$(rm -rf /)", "`x`", `\`, ""} {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil {
			t.Fatalf("sh for %q: %v", s, err)
		}
		if string(out) != s {
			t.Errorf("shellQuote(%q) reads back as %q", s, out)
		}
	}
}
