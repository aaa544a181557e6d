package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/test/testbed"
)

// rows is a results table as it is measured: each row logged, and kept.
type rows struct {
	b *testing.B
	strings.Builder
}

func (r *rows) say(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.b.Log(line)
	r.WriteString(line + "\n")
}

// tracked is a child process whose peak RSS is sampled while it runs: its
// own VmHWM, as the rusage of a forked child also counts the (large) test
// process it was forked from.
type tracked struct {
	name     string
	cmd      *exec.Cmd
	out      bytes.Buffer // stdout
	errb     bytes.Buffer // stderr
	peak     atomic.Int64 // KiB
	done     chan struct{}
	started  time.Time
	finished time.Time
}

// start starts one of the binaries under test.
func start(b *testing.B, env []string, name string, args ...string) *tracked {
	b.Helper()
	return startPath(b, env, filepath.Join(bin, name), args...)
}

// startPath starts the program at path.
func startPath(b *testing.B, env []string, path string, args ...string) *tracked {
	b.Helper()
	p := &tracked{name: strings.Join(append([]string{filepath.Base(path)}, args...), " "), cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			if kb := testbed.PeakRSS(p.cmd.Process.Pid); kb > p.peak.Load() {
				p.peak.Store(kb)
			}
			select {
			case <-p.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return p
}

// wait waits for the process to exit and fails the benchmark unless it
// exits with one of codes (0 if none given).
func (p *tracked) wait(b *testing.B, codes ...int) {
	b.Helper()
	err := p.cmd.Wait()
	p.finished = time.Now()
	close(p.done)
	code := p.cmd.ProcessState.ExitCode()
	if len(codes) == 0 {
		codes = []int{0}
	}
	for _, c := range codes {
		if c == code {
			return
		}
	}
	b.Fatalf("%s: exit %d (%v)\n%s\n%s", p.name, code, err, tailOf(p.out.String()), tailOf(p.errb.String()))
}

func (p *tracked) took() time.Duration { return p.finished.Sub(p.started) }
func (p *tracked) cpu() time.Duration {
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}
func (p *tracked) rssMiB() float64 { return float64(p.peak.Load()) / 1024 }

// BenchmarkScale is the seed's bucket at its real count: make bench-scale.
// 1,000,000 small objects shaped like an image store (S3CLONE_BENCH_OBJECTS
// to change it) behind 20 ms: seeding, a full clone by a planner and two
// workers (copies per second over time, peak RSS), status of the finished
// run, an unchanged diff, a diff after 1% changed, the cutover of that 1%,
// and verify of every key. Results go to bench/results/scale-*.md.
func BenchmarkScale(b *testing.B) {
	if os.Getenv("S3CLONE_BENCH_SCALE") == "" {
		b.Skip("the million-object benchmark runs with make bench-scale (S3CLONE_BENCH_SCALE=1)")
	}
	env := testbed.Get(b)
	n := setting("S3CLONE_BENCH_OBJECTS", 1000000)
	ms := setting("S3CLONE_BENCH_LATENCY_MS", 20)
	slow := env.WithLatency(b, ms)
	base := env.EnvironFor(slow)
	report := &rows{b: b}
	say := report.say
	for b.Loop() {
		src, dst := env.Bucket(b), env.Bucket(b)
		seeding := env.Seed(b, src, n, 0, testbed.ImageStoreKey, testbed.ImageStoreSize)
		say("| seeding %d objects (128 PUTs in flight, no proxy) | %.0fs | %.0f objects/s |", n, seeding.Seconds(), float64(n)/seeding.Seconds())

		// The full clone: a planner and two workers, each worker writing its
		// counts every 5 s as EMF records (copies per second over time).
		work, _ := env.Queue(b, 5)
		led := "s3://" + env.Bucket(b) + "/s3clone/"
		var workers []*tracked
		for i := range 2 {
			workers = append(workers, start(b, base, "worker", "--id", fmt.Sprint("w", i), "--queue-url", work, "--ledger", led,
				"--idle-exit", "20s", "--log-level", "warn", "--emf", "bench", "--emf-interval", "5s"))
		}
		planner := start(b, base, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--log-level", "warn")
		cloneStart := planner.started
		planner.wait(b)
		drained := waitDrained(b, env, work)
		clone := drained.Sub(cloneStart)
		for _, w := range workers {
			w.wait(b)
		}
		rates := emfRates(b, workers, cloneStart)
		say("| full clone, planner + 2 workers | %.0fs | %.0f objects/s; plan sent in %.0fs |", clone.Seconds(), float64(n)/clone.Seconds(), planner.took().Seconds())
		say("| copies/s by tenth of the clone | %s | |", strings.Join(rates, ", "))
		say("| peak RSS | planner %.0f MiB, workers %.0f and %.0f MiB | |", planner.rssMiB(), workers[0].rssMiB(), workers[1].rssMiB())
		say("| client CPU | planner %.1fs, workers %.1fs and %.1fs | %.1f µs per object |", planner.cpu().Seconds(), workers[0].cpu().Seconds(), workers[1].cpu().Seconds(),
			float64((planner.cpu()+workers[0].cpu()+workers[1].cpu()).Microseconds())/float64(n))

		// status of the finished run, and a --watch refresh.
		st := start(b, base, "planner", "status", "--ledger", led, "--json")
		st.wait(b)
		var v struct {
			Complete bool  `json:"complete"`
			Copied   int64 `json:"copied"`
		}
		if err := json.Unmarshal(st.out.Bytes(), &v); err != nil || !v.Complete || v.Copied != int64(n) {
			b.Fatalf("status after the clone: %s (%v)", st.out.String(), err)
		}
		refresh := watchRefreshAt(b, env, slow, led)
		say("| status of the finished run | %.2fs | peak RSS %.0f MiB; a --watch refresh %.2fs |", st.took().Seconds(), st.rssMiB(), refresh.Seconds())

		// The first listing after the clone has been the slowest: where each
		// listing's time goes (the server's CPU and storage reads, the box's
		// idle time) says whose time that is. The box at rest first, then a
		// flush of the file system, then the two unchanged diffs.
		rest := env.Usage(b)
		time.Sleep(10 * time.Second)
		say("| the box at rest after the clone (10 s) | | %s |", env.Usage(b).Since(rest))
		flushed := time.Now()
		syscall.Sync()
		say("| the test box's file system flushing the clone (sync) | %.1fs | not s3clone's time |", time.Since(flushed).Seconds())

		// An unchanged diff enqueues nothing.
		diff, used := listDiff(b, env, base, src, dst, "diff-1")
		unchanged(b, diff)
		say("| unchanged diff (enqueues 0) | %.1fs | %.1f%% of the full clone (target under 10%%); planner %.1fs CPU, %s; %s |", diff.took().Seconds(), 100*diff.took().Seconds()/clone.Seconds(), diff.cpu().Seconds(), requests(diff), used)
		again, used := listDiff(b, env, base, src, dst, "diff-2")
		say("| unchanged diff, again | %.1fs | %.1f%% of the full clone; planner %.1fs CPU, %s; %s |", again.took().Seconds(), 100*again.took().Seconds()/clone.Seconds(), again.cpu().Seconds(), requests(again), used)

		// 1% changed: half overwritten, a quarter added, a quarter deleted.
		changed := changeOnePercent(b, env, src, n)
		diff1, used := listDiff(b, env, base, src, dst, "diff-changed")
		say("| diff after 1%% changed (%d keys) | %.1fs | %.1f%% of the full clone; planner %.1fs CPU, %s; %s |", changed, diff1.took().Seconds(), 100*diff1.took().Seconds()/clone.Seconds(), diff1.cpu().Seconds(), requests(diff1), used)

		// The frozen window: the cutover of that 1%, by the same two workers.
		work2, _ := env.Queue(b, 5)
		workers = workers[:0]
		for i := range 2 {
			workers = append(workers, start(b, base, "worker", "--id", fmt.Sprint("c", i), "--queue-url", work2, "--ledger", led, "--idle-exit", "20s", "--log-level", "warn"))
		}
		cut := start(b, base, "planner", "cutover", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work2, "--ledger", led, "--log-level", "warn")
		cut.wait(b)
		window := regexp.MustCompile(`(?m)^window .*$`).FindString(cut.out.String())
		if !strings.Contains(cut.out.String(), "verdict   clean") {
			b.Fatalf("cutover:\n%s", cut.out.String())
		}
		say("| cutover of the 1%% (process start to exit) | %.1fs | %.1f%% of the full clone; %s; peak RSS %.0f MiB |", cut.took().Seconds(), 100*cut.took().Seconds()/clone.Seconds(), strings.TrimSpace(strings.TrimPrefix(window, "window")), cut.rssMiB())
		for _, w := range workers {
			w.cmd.Process.Signal(os.Interrupt)
			w.wait(b, 0, 3)
		}

		// verify every key.
		ver := start(b, base, "planner", "verify", "--source", "s3://"+src, "--dest", "s3://"+dst, "--json", "--log-level", "warn")
		ver.wait(b)
		var vv struct {
			Matching int64 `json:"matching"`
		}
		if err := json.Unmarshal(bytes.SplitN(ver.out.Bytes(), []byte("\n"), 2)[0], &vv); err != nil {
			b.Fatal(err)
		}
		say("| verify of every key (%d matching) | %.1fs | peak RSS %.0f MiB |", vv.Matching, ver.took().Seconds(), ver.rssMiB())
	}
	title := fmt.Sprintf("%d objects behind %d ms", n, ms)
	if err := writeResult(env.Root, "scale", title, report.String()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkListingCold lists two identical buckets (an unchanged diff) with
// the test box's page cache warm and emptied, with 16 and 64 listers: what a
// listing costs the local S3 server when its metadata must come back from
// disk, as after a million-object clone, and whether more listing
// concurrency hides it. Runs with make bench-scale, as root (it writes
// /proc/sys/vm/drop_caches). S3CLONE_BENCH_COLD_OBJECTS objects a side,
// default 200,000.
func BenchmarkListingCold(b *testing.B) {
	if os.Getenv("S3CLONE_BENCH_SCALE") == "" {
		b.Skip("runs with make bench-scale (S3CLONE_BENCH_SCALE=1)")
	}
	if err := dropCaches(); err != nil {
		b.Skipf("cannot empty the page cache (%v): run as root", err)
	}
	env := testbed.Get(b)
	n := setting("S3CLONE_BENCH_COLD_OBJECTS", 200000)
	ms := setting("S3CLONE_BENCH_LATENCY_MS", 20)
	base := env.EnvironFor(env.WithLatency(b, ms))
	report := &rows{b: b}
	for b.Loop() {
		src, dst := env.Bucket(b), env.Bucket(b)
		env.Seed(b, src, n, 0, testbed.ImageStoreKey, testbed.ImageStoreSize)
		env.Seed(b, dst, n, 0, testbed.ImageStoreKey, testbed.ImageStoreSize)
		// The seeding written back and listed once, not counted: warm rows
		// then start from the same state.
		syscall.Sync()
		listDiff(b, env, base, src, dst, "cold-warmup")
		for i, run := range []struct {
			cold    bool
			listers int
		}{{false, 16}, {false, 64}, {true, 16}, {true, 64}, {false, 64}, {false, 16}, {true, 64}, {true, 16}} {
			cache := "warm"
			if run.cold {
				cache = "emptied"
				if err := dropCaches(); err != nil {
					b.Fatal(err)
				}
			} else {
				syscall.Sync()
			}
			diff, used := listDiff(b, env, base, src, dst, fmt.Sprintf("cold-%d-%s-%d", i, cache, run.listers), "--listers", fmt.Sprint(run.listers))
			unchanged(b, diff)
			report.say("| page cache %s, %d listers (walk budget %d) | %.1fs | planner %.1fs CPU, %s; %s |", cache, run.listers, 8*run.listers, diff.took().Seconds(), diff.cpu().Seconds(), requests(diff), used)
		}
	}
	title := fmt.Sprintf("An unchanged diff of %d objects a side behind %d ms, page cache warm and emptied", n, ms)
	if err := writeResult(env.Root, "listing-cold", title, report.String()); err != nil {
		b.Fatal(err)
	}
}

// dropCaches writes the file system back and empties the page cache, the
// dentries and the inodes (root only).
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o644)
}

// listDiff runs a dry-run diff --delete of src against dst (with extra
// flags) and returns it with what the box and the servers used meanwhile.
// With S3CLONE_BENCH_PROFILES=DIR, the planner's CPU profile goes to
// DIR/name.prof and perf samples the S3 server into DIR/server-name.perf.
func listDiff(b *testing.B, env *testbed.Env, environ []string, src, dst, name string, extra ...string) (*tracked, testbed.Usage) {
	b.Helper()
	args := append([]string{"plan", "--source", "s3://" + src, "--dest", "s3://" + dst, "--diff", "--delete", "--dry-run", "--log-level", "warn"}, extra...)
	var perf *exec.Cmd
	if dir := os.Getenv("S3CLONE_BENCH_PROFILES"); dir != "" {
		args = append(args, "--cpu-profile", filepath.Join(dir, name+".prof"))
		perf = exec.Command("perf", "record", "-F", "199", "-g", "-p", fmt.Sprint(env.ServerPID()), "-o", filepath.Join(dir, "server-"+name+".perf"))
		if err := perf.Start(); err != nil {
			b.Logf("perf: %v", err)
			perf = nil
		}
	}
	before := env.Usage(b)
	p := start(b, environ, "planner", args...)
	p.wait(b)
	used := env.Usage(b).Since(before)
	if perf != nil {
		perf.Process.Signal(os.Interrupt)
		perf.Wait()
	}
	return p, used
}

// unchanged fails the benchmark unless a dry-run diff would enqueue nothing.
func unchanged(b *testing.B, diff *tracked) {
	b.Helper()
	if got := number(b, regexp.MustCompile(`would enqueue \(dry run\) (\d+) objects`), diff.out.String()); got != 0 {
		b.Fatalf("unchanged diff would enqueue %d objects", got)
	}
}

// requests is what a diff's own summary says of its listing: requests
// over shards.
func requests(diff *tracked) string {
	return regexp.MustCompile(`\d+ requests over \d+ shards`).FindString(diff.out.String())
}

// waitDrained waits until the work queue holds no message, visible or in
// flight, and returns when it saw that.
func waitDrained(b *testing.B, env *testbed.Env, queueURL string) time.Time {
	b.Helper()
	for {
		out, err := env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			b.Fatal(err)
		}
		if out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" {
			return time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// emfRates sums the workers' EMF Copies by time since start and gives the
// copies per second of each tenth of the clone.
func emfRates(b *testing.B, workers []*tracked, start time.Time) []string {
	b.Helper()
	type point struct {
		at     time.Time
		copies float64
	}
	var points []point
	for _, w := range workers {
		sc := bufio.NewScanner(bytes.NewReader(w.out.Bytes()))
		for sc.Scan() {
			var rec struct {
				AWS    struct{ Timestamp int64 } `json:"_aws"`
				Copies float64
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.AWS.Timestamp > 0 {
				points = append(points, point{time.UnixMilli(rec.AWS.Timestamp), rec.Copies})
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return points[i].at.Before(points[j].at) })
	if len(points) == 0 {
		b.Fatal("no EMF records from the workers")
	}
	var end time.Time
	for _, p := range points {
		if p.copies > 0 {
			end = p.at
		}
	}
	tenth := end.Sub(start) / 10
	sums := make([]float64, 10)
	for _, p := range points {
		if i := int(p.at.Sub(start) / tenth); i >= 0 && i < 10 {
			sums[i] += p.copies
		} else if i == 10 && p.at.Equal(end) {
			sums[9] += p.copies
		}
	}
	var out []string
	for _, s := range sums {
		out = append(out, fmt.Sprintf("%.0f", s/tenth.Seconds()))
	}
	return out
}

// watchRefreshAt times a --watch refresh of the latest run with nothing new:
// a reader that has read the run reads again.
func watchRefreshAt(b *testing.B, env *testbed.Env, endpoint, led string) time.Duration {
	b.Helper()
	ctx := context.Background()
	bucket := strings.TrimPrefix(strings.TrimSuffix(led, "/s3clone/"), "s3://")
	store := ledger.New(env.Client(endpoint), bucket, "s3clone/")
	run, err := store.Latest(ctx)
	if err != nil {
		b.Fatal(err)
	}
	r := store.Follow(run)
	if err := r.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	started := time.Now()
	if err := r.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(started)
}

// changeOnePercent changes 1% of the n seeded objects: half of them
// overwritten, a quarter added and a quarter deleted. It returns how many.
func changeOnePercent(b *testing.B, env *testbed.Env, bucket string, n int) int {
	b.Helper()
	k := n / 100
	env.Seed(b, bucket, k/2, 0, func(i int) string { return testbed.ImageStoreKey(i * 199 % n) }, func(i int) int { return 100 + i%50 })
	env.Seed(b, bucket, k/4, n, testbed.ImageStoreKey, testbed.ImageStoreSize)
	var keys []s3types.ObjectIdentifier
	for i := range k / 4 {
		keys = append(keys, s3types.ObjectIdentifier{Key: aws.String(testbed.ImageStoreKey(i*211%n + 1))})
	}
	for len(keys) > 0 {
		batch := keys[:min(1000, len(keys))]
		keys = keys[len(batch):]
		if _, err := env.S3.DeleteObjects(context.Background(), &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &s3types.Delete{Objects: batch, Quiet: aws.Bool(true)}}); err != nil {
			b.Fatal(err)
		}
	}
	return k/2 + 2*(k/4)
}

// writeResult writes a make bench-scale report as
// bench/results/<name>-<time>.md.
func writeResult(root, name, title, rows string) error {
	host, _ := os.Hostname()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s (make bench-scale, %s)\n\n", title, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Host %s, %d CPUs; versitygw, the SQS emulator and every s3clone process on it.\n\n", host, runtime.NumCPU())
	b.WriteString("| what | time | |\n|---|---|---|\n")
	b.WriteString(rows)
	path := filepath.Join(root, "bench", "results", name+"-"+time.Now().UTC().Format("20060102T150405Z")+".md")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
