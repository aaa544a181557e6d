package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/test/testbed"
)

// BenchmarkFollowCutover is issue 24's window without a listing: planner
// follow started before the bulk plan, a planner and two workers copying
// the source (ImageStoreKey objects, seeded straight into versitygw) while
// a writer changes 1% of it through the Manners proxy (which sends S3's
// events, at their default manners: each once, at once) from the start of
// the bulk copy on until the freeze. The freeze stops the writer; planner
// cutover --follow then gives its verdict, timed from the freeze (target:
// under 5 s, and the same within 20% at 100,000 and 1,000,000 objects);
// planner verify of every key must match after.
//
// make bench runs 100,000 objects; make bench-scale (S3CLONE_BENCH_SCALE=1)
// 100,000 then 1,000,000; S3CLONE_BENCH_OBJECTS one size of its own. The
// writer makes S3CLONE_BENCH_FOLLOW_WRITES changes a second (default 15,
// about 1% of the source over the bulk copy at this box's rate), and goes
// on until the bulk copy has been done 5 s and 1% of the source changed.
// Follow runs with --config-settle 0s (the test bed applies a notification
// configuration at once), its other flags at their defaults. Workers, the
// plan and verify reach versitygw through a 20 ms latency proxy
// (S3CLONE_BENCH_LATENCY_MS), as in the other benchmarks; follow and the
// cutover must reach the Manners proxy (their notification configuration
// and marker objects are the events' business), through the test bed's
// Slow proxy holding each request as long. S3CLONE_BENCH_BATCH_KEYS sets
// the bulk plan's --batch-keys (more messages in the bulk run's ledger).
// Results go to bench/results/follow-*.md.
func BenchmarkFollowCutover(b *testing.B) {
	env := testbed.Get(b)
	sizes := []int{100000}
	target := "make bench"
	if os.Getenv("S3CLONE_BENCH_SCALE") != "" {
		sizes, target = []int{100000, 1000000}, "make bench-scale"
	}
	if n := setting("S3CLONE_BENCH_OBJECTS", 0); n > 0 {
		sizes = []int{n}
	}
	ms := setting("S3CLONE_BENCH_LATENCY_MS", 20)
	rate := setting("S3CLONE_BENCH_FOLLOW_WRITES", 15)
	slow := env.WithLatency(b, ms)
	mannered := env.Slow(b, time.Duration(ms)*time.Millisecond).URL
	report := &rows{b: b}
	code := codeState(env.Root)
	for b.Loop() {
		var windows []time.Duration
		for _, n := range sizes {
			windows = append(windows, followCutover(b, env, slow, mannered, n, rate, report.say))
		}
		if len(windows) == 2 {
			lo, hi := min(windows[0], windows[1]), max(windows[0], windows[1])
			report.say("| the window at %d and at %d objects | %.2fs and %.2fs | %.0f%% apart (target: within 20%%) |", sizes[0], sizes[1],
				windows[0].Seconds(), windows[1].Seconds(), 100*(hi-lo).Seconds()/lo.Seconds())
			if hi > lo*12/10 {
				b.Errorf("the window was %.2fs at %d objects and %.2fs at %d: more than 20%% apart", windows[0].Seconds(), sizes[0], windows[1].Seconds(), sizes[1])
			}
		}
	}
	title := fmt.Sprintf("Following the source: the window without a listing, %s objects behind %d ms", joinInts(sizes), ms)
	if err := writeFollowResult(env.Root, "follow", title, target, code+"| what | time | |\n|---|---|---|\n"+report.String()); err != nil {
		b.Fatal(err)
	}
}

// followCutover runs one size: the source seeded with n objects, follow,
// the bulk copy with the writer, the freeze, cutover --follow and verify.
// It returns the window, from the freeze to the verdict.
func followCutover(b *testing.B, env *testbed.Env, slow, mannered string, n, rate int, say func(string, ...any)) time.Duration {
	b.Helper()
	ctx := context.Background()
	src, dst, ledBucket := env.Bucket(b), env.Bucket(b), env.Bucket(b)
	S, D, led := "s3://"+src, "s3://"+dst, "s3://"+ledBucket+"/s3clone/"
	store := ledger.New(env.S3, ledBucket, "s3clone/")
	work, _ := env.Queue(b, 5)
	changes, _ := env.Queue(b, 0)
	base, followEnv := env.EnvironFor(slow), env.EnvironFor(mannered)

	seeding := env.Seed(b, src, n, 0, testbed.ImageStoreKey, testbed.ImageStoreSize)
	say("| **%d objects**: seeding (128 PUTs in flight, no proxy) | %.0fs | %.0f objects/s |", n, seeding.Seconds(), float64(n)/seeding.Seconds())
	env.Manners().Events(src, testbed.EventManners{}) // S3's events at their default: each once, at once

	fol := startFollow(b, followEnv, "follow", "--source", S, "--dest", D, "--queue-url", work, "--changes-url", changes, "--ledger", led, "--config-settle", "0s")
	defer fol.stop(b)
	run := fol.runID(b)
	anchoredAt := waitAnchored(b, store, run, fol)
	say("| follow started, its probe through: anchored | %.2fs | run %s |", anchoredAt.Sub(fol.started).Seconds(), run)

	// The bulk copy, and the writer from its start.
	w := &changer{env: env, bucket: src, n: n}
	stopWriter := w.start(rate)
	var workers []*tracked
	for i := range 2 {
		workers = append(workers, start(b, base, "worker", "--id", fmt.Sprint("w", i), "--queue-url", work, "--ledger", led,
			"--idle-exit", "60m", "--log-level", "warn"))
	}
	planArgs := []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--ledger", led, "--log-level", "warn"}
	if k := setting("S3CLONE_BENCH_BATCH_KEYS", 0); k > 0 {
		planArgs = append(planArgs, "--batch-keys", fmt.Sprint(k))
	}
	planner := start(b, base, "planner", planArgs...)
	planner.wait(b)
	bulkID := planRunID(b, planner.out.String())
	bulk := waitComplete(b, store, bulkID)
	copyTime := bulk.Last.Sub(planner.started)
	during := w.made()
	say("| bulk copy, planner + 2 workers (follow's work beside it) | %.0fs | %.0f objects/s, %d messages, %d keys failed as changed while copied (the events' to mend); %d changes made by its end (%.0f a second) |",
		copyTime.Seconds(), float64(n)/copyTime.Seconds(), bulk.Sent, bulk.Failed, during, float64(during)/time.Since(planner.started).Seconds())

	// On until 1% changed and a few seconds after the bulk copy, then the freeze.
	for w.made() < n/100 || time.Since(bulk.Last) < 5*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	freeze := stopWriter()
	cs := w.counts()
	say("| the writer, through the Manners proxy, from the bulk plan's start to the freeze | %d changes | %d overwritten, %d deleted, %d new (%.2f%% of the source); %d refused, %d skipped |",
		cs.total(), cs.overwritten, cs.deleted, cs.created, 100*float64(cs.total())/float64(n), cs.refused, cs.skipped)
	if cs.refused > 0 {
		b.Errorf("%d of the writer's changes were refused", cs.refused)
	}

	// The window: cutover --follow, from the freeze to its verdict, its
	// requests to S3 counted.
	counted := env.Counting(b, mannered)
	cut, verdictAt := cutoverFollow(b, env.EnvironFor(counted.URL), run, led)
	out := cut.out.String()
	if !strings.Contains(out, "verdict   clean") {
		b.Fatalf("cutover --follow:\n%s\n%s\nfollow's log:\n%s", out, tailOf(cut.errb.String()), tailOf(fol.errb.String()))
	}
	window := verdictAt.Sub(freeze)
	say("| **the window: freeze to verdict** | **%.2fs** | to exit %.2fs; the cutover's own: %s; %s; %s |", window.Seconds(), cut.finished.Sub(freeze).Seconds(),
		field(out, "window"), field(out, "mark"), field(out, "fleet")+"; "+field(out, "predicted"))
	b.ReportMetric(window.Seconds(), fmt.Sprintf("window-s-%d", n))
	say("| the cutover's requests to S3 (ledger and marker) | %d | %s |", counted.Passed.Load(), ledgerReads(b, env.Client(mannered), ledBucket, bulkID, run))
	if window > 5*time.Second {
		b.Errorf("%d objects: the window (freeze to verdict) took %.2fs; target under 5s", n, window.Seconds())
	}

	for _, p := range workers {
		p.cmd.Process.Signal(os.Interrupt)
		p.wait(b, 0, 3)
	}
	fol.stop(b)
	if rec, err := store.FollowRecord(ctx, run); err == nil {
		say("| follow, all told | | %d events, %d keys sent in %d messages; %s |", rec.Events, rec.Keys, rec.LastSeq, field(fol.out.String(), "stopped"))
	}
	st := env.Manners().EventStats()
	say("| the test bed's events | | %d sent, %d coalesced, %d failed, %d pending |", st.Sent, st.Coalesced, st.Failed, st.Pending)

	// The whole clone, verified.
	ver := start(b, base, "planner", "verify", "--source", S, "--dest", D, "--json", "--log-level", "warn")
	ver.wait(b, 0, 1)
	var v struct {
		Matching, Missing, Different, Extra, Unknown int64
	}
	if err := json.Unmarshal(bytes.SplitN(ver.out.Bytes(), []byte("\n"), 2)[0], &v); err != nil {
		b.Fatalf("verify: %v\n%s\n%s", err, ver.out.String(), tailOf(ver.errb.String()))
	}
	want := int64(n + cs.created - cs.deleted)
	exact := ver.cmd.ProcessState.ExitCode() == 0 && v.Matching == want
	say("| verify of every key after (exit %d) | %.1fs | %d matching of %d in the source, %d missing, %d different, %d extra, %d unknown |",
		ver.cmd.ProcessState.ExitCode(), ver.took().Seconds(), v.Matching, want, v.Missing, v.Different, v.Extra, v.Unknown)
	if !exact {
		b.Errorf("%d objects: the clone is not exact after cutover --follow: %s", n, ver.out.String())
	}
	return window
}

// followProc is planner follow, running: its output is read while it runs.
type followProc struct {
	cmd       *exec.Cmd
	out, errb lockedBuffer
	started   time.Time
	done      chan struct{}
	once      sync.Once
}

// lockedBuffer is a buffer a process writes while the benchmark reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func startFollow(b *testing.B, environ []string, args ...string) *followProc {
	b.Helper()
	f := &followProc{cmd: exec.Command(filepath.Join(bin, "planner"), args...), done: make(chan struct{})}
	f.cmd.Env = environ
	f.cmd.Stdout, f.cmd.Stderr = &f.out, &f.errb
	f.started = time.Now()
	if err := f.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		f.cmd.Wait()
		close(f.done)
	}()
	return f
}

var followRunRE = regexp.MustCompile(`: run (\S+), events from`)

// runID waits for follow to print its run id.
func (f *followProc) runID(b *testing.B) string {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m := followRunRE.FindStringSubmatch(f.out.String()); m != nil {
			return m[1]
		}
		select {
		case <-f.done:
			b.Fatalf("planner follow exited: %s\n%s", f.out.String(), tailOf(f.errb.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	b.Fatalf("planner follow printed no run id within a minute:\n%s\n%s", f.out.String(), tailOf(f.errb.String()))
	return ""
}

// stop stops follow (SIGTERM) and fails the benchmark unless it exits 0.
func (f *followProc) stop(b *testing.B) {
	b.Helper()
	f.once.Do(func() {
		f.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.done:
		case <-time.After(time.Minute):
			f.cmd.Process.Kill()
			<-f.done
		}
		if code := f.cmd.ProcessState.ExitCode(); code != 0 {
			b.Errorf("planner follow: exit %d\n%s\n%s", code, f.out.String(), tailOf(f.errb.String()))
		}
	})
}

// waitAnchored waits until follow's record says it is anchored, and
// returns when it saw that.
func waitAnchored(b *testing.B, store *ledger.Store, run string, f *followProc) time.Time {
	b.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		if r, err := store.FollowRecord(context.Background(), run); err == nil && r.Anchored {
			return time.Now()
		}
		select {
		case <-f.done:
			b.Fatalf("planner follow exited before it was anchored: %s\n%s", f.out.String(), tailOf(f.errb.String()))
		case <-time.After(100 * time.Millisecond):
		}
	}
	b.Fatalf("follow %s not anchored within 4 minutes:\n%s", run, tailOf(f.errb.String()))
	return time.Time{}
}

// planRunID is the run id planner plan printed.
func planRunID(b *testing.B, out string) string {
	b.Helper()
	for line := range strings.SplitSeq(out, "\n") {
		if id, ok := strings.CutPrefix(line, "run       "); ok {
			return strings.TrimSpace(id)
		}
	}
	b.Fatalf("no run id in plan's output:\n%s", out)
	return ""
}

// ledgerReads times, after the cutover, the ledger reads a cutover
// --follow makes in its window, through the same proxies: the bulk run
// read whole and its failures (the bulk check, before the mark), and the
// follow run read whole and its failures (the fleet's wait, after it).
func ledgerReads(b *testing.B, api *s3.Client, bucket, bulkID, run string) string {
	b.Helper()
	store := ledger.New(api, bucket, "s3clone/")
	var parts []string
	for _, r := range []struct{ what, id string }{{"the bulk run", bulkID}, {"follow's run", run}} {
		reader := store.Follow(r.id)
		began := time.Now()
		if err := reader.Refresh(context.Background()); err != nil {
			b.Fatalf("read %s: %v", r.id, err)
		}
		read := time.Since(began)
		began = time.Now()
		failed, err := reader.Failed(context.Background(), ledger.MaxFailures)
		if err != nil {
			b.Fatalf("read %s's failures: %v", r.id, err)
		}
		parts = append(parts, fmt.Sprintf("%s read again: %d messages in %.2fs, its %d entries with failures in %.2fs",
			r.what, reader.Tally().Status().Sent, read.Seconds(), len(failed), time.Since(began).Seconds()))
	}
	return strings.Join(parts, "; ")
}

// waitComplete reads the run's ledger every second until it is complete.
func waitComplete(b *testing.B, store *ledger.Store, run string) ledger.Status {
	b.Helper()
	r := store.Follow(run)
	for {
		if err := r.Refresh(context.Background()); err != nil {
			b.Fatalf("read run %s: %v", run, err)
		}
		if st := r.Tally().Status(); st.Complete {
			if st.Failed > 0 {
				b.Logf("the bulk run %s failed %d keys (a key changed while being copied is the events' to mend)", run, st.Failed)
			}
			return st
		}
		time.Sleep(time.Second)
	}
}

// cutoverFollow runs planner cutover --follow and returns it with the time
// its verdict line was printed.
func cutoverFollow(b *testing.B, environ []string, run, led string) (*tracked, time.Time) {
	b.Helper()
	p := &tracked{name: "planner cutover --follow", done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(bin, "planner"), "cutover", "--follow", run, "--ledger", led)
	p.cmd.Env = environ
	at := &stamped{line: "verdict", w: &p.out}
	p.cmd.Stdout, p.cmd.Stderr = at, &p.errb
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p.wait(b, 0, 1)
	if at.at.IsZero() {
		b.Fatalf("cutover printed no verdict:\n%s\n%s", p.out.String(), tailOf(p.errb.String()))
	}
	return p, at.at
}

// stamped passes output on and notes when a line beginning with line was
// first written.
type stamped struct {
	line string
	w    *bytes.Buffer
	at   time.Time
}

func (s *stamped) Write(p []byte) (int, error) {
	now := time.Now()
	before := s.w.Len()
	s.w.Write(p)
	if s.at.IsZero() {
		// A line may come in pieces: look from the start of the last line.
		text := s.w.String()
		from := strings.LastIndex(text[:before], "\n") + 1
		for l := range strings.SplitSeq(text[from:], "\n") {
			if strings.HasPrefix(l, s.line) {
				s.at = now
				break
			}
		}
	}
	return len(p), nil
}

// field is the rest of the output's line that begins with name.
func field(out, name string) string {
	m := regexp.MustCompile(`(?m)^` + name + `\s+(.*)$`).FindStringSubmatch(out)
	if m == nil {
		return name + " (not printed)"
	}
	return name + " " + strings.TrimSpace(m[1])
}

// changer changes the source through the Manners proxy: change i
// overwrites (i%4 of 0 or 1), deletes (2) or creates (3) a key, each of
// the seeded keys at most once (7919 is prime to the sizes used), so that
// the source's count after is known. Keys are changed in no order of the
// listing's: some before the bulk listing reaches them, some after.
type changer struct {
	env    *testbed.Env
	bucket string
	n      int
	c      changeCounts
	mu     sync.Mutex
}

type changeCounts struct {
	overwritten, deleted, created, refused int
	skipped                                int // never made: too many unanswered
}

func (c changeCounts) total() int { return c.overwritten + c.deleted + c.created }

func (w *changer) made() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.c.total()
}

func (w *changer) counts() changeCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.c
}

// start changes rate keys a second, 16 at most at once, until the
// function it returns is called; that returns when the last change was
// answered (the freeze). Change i is due at i/rate seconds: a late start
// catches up, where a ticker would drop ticks on a busy box.
func (w *changer) start(rate int) func() time.Time {
	client := w.env.Manners().Client(w.bucket)
	stop, stopped := make(chan struct{}), make(chan time.Time)
	go func() {
		began := time.Now()
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		for i := 0; ; i++ {
			select {
			case <-stop:
				wg.Wait()
				stopped <- time.Now()
				return
			case <-time.After(time.Until(began.Add(time.Duration(i) * time.Second / time.Duration(rate)))):
			}
			select {
			case sem <- struct{}{}:
			default:
				w.mu.Lock()
				w.c.skipped++ // 16 unanswered: this change is skipped
				w.mu.Unlock()
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				w.change(client, i)
			})
		}
	}()
	return func() time.Time {
		close(stop)
		return <-stopped
	}
}

func (w *changer) change(client *s3.Client, i int) {
	ctx := context.Background()
	key := testbed.ImageStoreKey((i*7919 + 13) % w.n)
	var err error
	kind := i % 4
	switch kind {
	case 0, 1:
		_, err = client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key),
			Body: bytes.NewReader(fmt.Appendf(nil, "changed by the writer: change %d", i))})
	case 2:
		_, err = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
	case 3:
		key = testbed.ImageStoreKey(w.n + i)
		_, err = client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key),
			Body: bytes.NewReader(fmt.Appendf(nil, "made by the writer: change %d", i))})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err != nil:
		w.c.refused++
	case kind == 2:
		w.c.deleted++
	case kind == 3:
		w.c.created++
	default:
		w.c.overwritten++
	}
}

func joinInts(ns []int) string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprint(n))
	}
	return strings.Join(out, " and ")
}

// codeState says which code the binaries were built from (at the
// benchmarks' start): the commit, and the files of cmd/ and internal/
// changed since, if any.
func codeState(root string) string {
	head, err := exec.Command("git", "-C", root, "log", "-1", "--format=%h %cI %s").Output()
	if err != nil {
		return ""
	}
	changed, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--", "cmd", "internal").Output()
	s := fmt.Sprintf("Built from %s", strings.TrimSpace(string(head)))
	if len(bytes.TrimSpace(changed)) > 0 {
		s += fmt.Sprintf(", with changes not committed to %d files of cmd/ and internal/", bytes.Count(bytes.TrimSpace(changed), []byte("\n"))+1)
	}
	return s + ".\n\n"
}

// writeFollowResult writes a report as bench/results/<name>-<time>.md.
func writeFollowResult(root, name, title, target, body string) error {
	host, _ := os.Hostname()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s (%s, %s)\n\n", title, target, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Host %s, %d CPUs; versitygw, the SQS emulator (behind the shim that answers long polls as SQS does), the test bed's proxies and every s3clone process on it.\n\n", host, runtime.NumCPU())
	b.WriteString(body)
	path := filepath.Join(root, "bench", "results", name+"-"+time.Now().UTC().Format("20060102T150405Z")+".md")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
