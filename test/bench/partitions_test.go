package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3clone/s3clone/test/testbed"
)

// BenchmarkPartitions clones buckets through the test bed's partition
// emulation (testbed.Partitions: a write limit per prefix, 503 SlowDown
// beyond, a partition that splits after sustained load), behind 20 ms of
// latency, and holds the fleet's pacing to the targets of issue 23:
//   - one partition, fleets of 1, 4 and 8 workers: goodput at least 0.9 of
//     the limit, at most 5% of write requests throttled, the last copy
//     within 2 s of the time the limit allows;
//   - two prefixes of different limits, 4 workers: each within 10% of its own;
//   - a partition that splits (its limit doubles) mid-run, 4 workers: the
//     fleet reaches the new limit within 10 s.
//
// Every run is exact (the copies counted by the partitions and by status).
// Results go to bench/results/partitions-*.md.
func BenchmarkPartitions(b *testing.B) {
	env := testbed.Get(b)
	slow := env.WithLatency(b, 20)
	var report, notes strings.Builder
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		b.Log(line)
		if strings.HasPrefix(line, "\n") { // below the table
			notes.WriteString(line + "\n")
			return
		}
		report.WriteString(line + "\n")
	}
	for b.Loop() {
		report.Reset()
		notes.Reset()
		say("# Partition emulation: the fleet's pacing (%s)\n", time.Now().UTC().Format(time.RFC3339))
		say("Each run: a fresh destination behind testbed.Partitions, 20 ms latency, workers with default flags, messages of %d keys (scaled down with the limits: see batchKeys); times from the first accepted write to the last.\n", batchKeys)
		say("| run | workers | objects | limit/s | goodput/s | of limit | throttled | last copy vs limit's time |")
		say("|---|---|---|---|---|---|---|---|")

		if only("one") {
			onePartition(b, env, slow, say)
		}
		if only("two") {
			twoPrefixes(b, env, slow, say)
		}
		if only("split") {
			aSplit(b, env, slow, say)
		}
	}
	dir := filepath.Join(env.Root, "bench", "results")
	name := filepath.Join(dir, "partitions-"+time.Now().UTC().Format("20060102T150405Z")+".md")
	if err := os.WriteFile(name, []byte(report.String()+notes.String()), 0o644); err != nil {
		b.Error(err)
	}
}

// onePartition: fleets of 1, 4 and 8 workers on one partition.
func onePartition(b *testing.B, env *testbed.Env, slow string, say func(string, ...any)) {
	const limit, n = 250.0, 6000
	src := env.Bucket(b)
	seedFlat(b, env, src, "img/", n)
	for _, k := range []int{1, 4, 8} {
		r := partitionRun(b, env, slow, src, k, testbed.Partition{Prefix: "", Limit: limit})
		st := r.parts[0]
		good := float64(st.Accepted) / st.Last.Sub(st.First).Seconds()
		share := float64(st.Throttled) / float64(st.Accepted+st.Throttled)
		late := st.Last.Sub(st.First) - time.Duration(float64(n)/limit*float64(time.Second))
		say("| one partition | %d | %d | %.0f | %.0f | %.2f | %.1f%% | %+.1fs |", k, n, limit, good, good/limit, 100*share, late.Seconds())
		b.ReportMetric(good/limit, fmt.Sprintf("goodput-of-limit-%dw", k))
		b.ReportMetric(100*share, fmt.Sprintf("throttled-%%-%dw", k))
		if good < 0.9*limit || share > 0.05 || late > 2*time.Second {
			b.Errorf("%d workers: goodput %.0f/s (target >= %.0f), %.1f%% throttled (target <= 5%%), last copy %.1fs after the limit's time (target <= 2s)",
				k, good, 0.9*limit, 100*share, late.Seconds())
		}
		r.exact(b, n)
	}
}

// twoPrefixes: two prefixes of different limits, 4 workers.
func twoPrefixes(b *testing.B, env *testbed.Env, slow string, say func(string, ...any)) {
	src := env.Bucket(b)
	seedFlat(b, env, src, "a/", 8000)
	seedFlat(b, env, src, "b/", 4000)
	r := partitionRun(b, env, slow, src, 4, testbed.Partition{Prefix: "a/", Limit: 300}, testbed.Partition{Prefix: "b/", Limit: 150})
	for _, st := range r.parts {
		good := float64(st.Accepted) / st.Last.Sub(st.First).Seconds()
		share := float64(st.Throttled) / float64(st.Accepted+st.Throttled)
		say("| two prefixes: %s | 4 | %d | %.0f | %.0f | %.2f | %.1f%% | |", st.Prefix, st.Accepted, st.Limit, good, good/st.Limit, 100*share)
		b.ReportMetric(good/st.Limit, "goodput-of-limit-"+strings.TrimSuffix(st.Prefix, "/"))
		if good < 0.9*st.Limit || good > 1.1*st.Limit {
			b.Errorf("prefix %s: goodput %.0f/s, want within 10%% of its limit %.0f", st.Prefix, good, st.Limit)
		}
	}
	r.exact(b, 12000)
	for _, st := range r.parts {
		say("\n%s: writes S3 took in each second: %v", st.Prefix, st.PerSecond)
	}
}

// aSplit: a partition that splits (its limit doubles) mid-run, 4 workers.
func aSplit(b *testing.B, env *testbed.Env, slow string, say func(string, ...any)) {
	src := env.Bucket(b)
	const before, m = 150.0, 6000
	seedFlat(b, env, src, "img/", m)
	r := partitionRun(b, env, slow, src, 4, testbed.Partition{Prefix: "", Limit: before, SplitAfter: 8 * time.Second})
	st := r.parts[0]
	if st.Splits != 1 {
		b.Fatalf("the partition split %d times, want 1", st.Splits)
	}
	reached, ok := reach(st, 0.9*st.Limit)
	say("| split at %.1fs: %.0f→%.0f | 4 | %d | %.0f | | %.1f%% | new limit reached (90%%) %.1fs after the split |",
		st.SplitAt[0].Sub(st.First).Seconds(), before, st.Limit, st.Accepted, st.Limit,
		100*float64(st.Throttled)/float64(st.Accepted+st.Throttled), reached.Sub(st.SplitAt[0]).Seconds())
	say("\nthe partition that split: writes S3 took in each second: %v", st.PerSecond)
	if !ok || reached.Sub(st.SplitAt[0]) > 10*time.Second {
		b.Errorf("after the split the fleet did not reach 90%% of the new limit %.0f within 10s (reached: %v, per second %v)", st.Limit, ok, st.PerSecond)
	}
	r.exact(b, m)
	b.ReportMetric(reached.Sub(st.SplitAt[0]).Seconds(), "split-to-new-limit-s")
}

// only says whether the scenario runs: all of them, or those
// S3CLONE_BENCH_PARTITIONS names (one, two, split; comma-separated).
func only(scenario string) bool {
	v := os.Getenv("S3CLONE_BENCH_PARTITIONS")
	return v == "" || slices.Contains(strings.Split(v, ","), scenario)
}

// reach is the end of the first whole second after the first split in
// which the accepted writes were at least rate.
func reach(st testbed.PartitionStats, rate float64) (time.Time, bool) {
	start := st.First.Truncate(time.Second)
	for i, n := range st.PerSecond {
		at := start.Add(time.Duration(i+1) * time.Second)
		if at.After(st.SplitAt[0]) && float64(n) >= rate {
			return at, true
		}
	}
	return time.Time{}, false
}

// seedFlat puts n 1 KiB objects under prefix.
func seedFlat(b *testing.B, env *testbed.Env, bucket, prefix string, n int) {
	b.Helper()
	objs := make([]testbed.Object, n)
	for i := range n {
		objs[i] = testbed.Object{Key: fmt.Sprintf("%s%d/%06d.jpg", prefix, i%7, i), Body: bytes.Repeat([]byte{byte(i)}, 1024)}
	}
	env.Put(b, bucket, objs)
}

type partitionResult struct {
	parts  []testbed.PartitionStats
	copied int
}

// exact fails unless the clone copied n objects, each once.
func (r partitionResult) exact(b *testing.B, n int) {
	b.Helper()
	var accepted int64
	for _, st := range r.parts {
		accepted += st.Accepted
	}
	if r.copied != n || accepted != int64(n) {
		b.Errorf("status counts %d copies and the partitions %d accepted writes; want %d of each", r.copied, accepted, n)
	}
}

// batchKeys is the plan's message size, scaled down with the limits: what
// decides a fleet's tail is how long a worker takes over one message at
// its share of a prefix's rate. On AWS (3,500 writes a second a prefix, 8
// workers: about 440 each) a message of 100 keys takes a quarter of a
// second; here (250 a second, 8 workers: about 31 each) 20 keys take
// two thirds of one.
const batchKeys = 20

// partitionRun clones src into a fresh bucket played by parts, with k
// workers (the planner's own requests go around the partitions: its
// preflight writes one object).
func partitionRun(b *testing.B, env *testbed.Env, upstream, src string, k int, parts ...testbed.Partition) partitionResult {
	b.Helper()
	dst := env.Bucket(b)
	proxy := testbed.PartitionsBefore(b, upstream, dst, parts...)
	work, _ := env.Queue(b, 0)
	ledger := "s3://" + env.Bucket(b) + "/s3clone/"
	cmd := exec.Command(filepath.Join(bin, "planner"), "plan", "--source", "s3://"+src, "--dest", "s3://"+dst,
		"--queue-url", work, "--ledger", ledger, "--log-level", "warn", "--batch-keys", fmt.Sprint(batchKeys))
	cmd.Env = env.EnvironFor(upstream)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("plan: %v\n%s", err, out)
	}
	proxy.Reset() // the preflight's probe is not the clone
	var wg sync.WaitGroup
	for i := range k {
		wg.Go(func() {
			w := exec.Command(filepath.Join(bin, "worker"), "--id", fmt.Sprint("w", i), "--queue-url", work, "--ledger", ledger,
				"--idle-exit", "3s", "--log-level", "warn")
			w.Env = env.EnvironFor(proxy.URL)
			if out, err := w.CombinedOutput(); err != nil {
				b.Errorf("worker %d: %v\n%s", i, err, out)
			}
		})
	}
	wg.Wait()
	st := exec.Command(filepath.Join(bin, "planner"), "status", "--ledger", ledger, "--json")
	st.Env = env.EnvironFor(upstream)
	out, err := st.Output()
	if err != nil {
		b.Fatalf("status: %v\n%s", err, out)
	}
	var copied int
	if i := bytes.Index(out, []byte(`"copied":`)); i >= 0 {
		fmt.Sscanf(string(out[i+len(`"copied":`):]), "%d", &copied)
	}
	return partitionResult{parts: proxy.Stats(), copied: copied}
}
