// Package bench measures whole runs of the binaries against the local
// servers behind a latency proxy: `make bench`. Sizes and latency come from
// S3CLONE_BENCH_OBJECTS (default 10000) and S3CLONE_BENCH_LATENCY_MS
// (default 20).
package bench

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/s3clone/s3clone/test/testbed"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := testbed.BuildBinaries(false) // measured as shipped: no race detector
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	code := testbed.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func setting(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// seed fills a bucket with n objects of 1–64 KiB in mixed prefixes.
func seed(b *testing.B, env *testbed.Env, bucket string, n int) {
	b.Helper()
	objs := make([]testbed.Object, n)
	for i := range n {
		body := make([]byte, 1024+(i*7919)%(63*1024))
		_, _ = rand.Read(body) // never fails
		objs[i] = testbed.Object{Key: fmt.Sprintf("img/%d/%02d/photo-%06d.jpg", 2020+i%5, i%12, i), Body: body}
		if i%100 == 0 {
			objs[i].Key = fmt.Sprintf("top-%06d.txt", i)
		}
	}
	env.Put(b, bucket, objs)
}

// seeded is the setup every clone benchmark shares: the testbed, a latency
// proxy of ms milliseconds (S3CLONE_BENCH_LATENCY_MS overrides it unless
// fixed), and a source bucket of n objects (S3CLONE_BENCH_OBJECTS, default
// objects). It returns the proxy's URL.
func seeded(b *testing.B, objects, ms int, fixedLatency bool) (env *testbed.Env, n int, latency int, slow, src string) {
	b.Helper()
	env = testbed.Get(b)
	n = setting("S3CLONE_BENCH_OBJECTS", objects)
	latency = ms
	if !fixedLatency {
		latency = setting("S3CLONE_BENCH_LATENCY_MS", ms)
	}
	slow = env.WithLatency(b, latency)
	src = env.Bucket(b)
	seed(b, env, src, n)
	return env, n, latency, slow, src
}

// timed runs the planner with the given S3 endpoint and returns its output
// and wall time.
func timed(b *testing.B, env *testbed.Env, s3 string, args ...string) (string, time.Duration) {
	b.Helper()
	cmd := exec.Command(filepath.Join(bin, "planner"), args...)
	cmd.Env = env.EnvironFor(s3)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("planner %v: %v\n%s\n%s", args, err, out.String(), errb.String())
	}
	return out.String(), took
}

var copiedRE = regexp.MustCompile(`copied\s+(\d+) objects`)
var enqueuedRE = regexp.MustCompile(`enqueued (\d+) objects`)

func number(b *testing.B, re *regexp.Regexp, out string) int {
	b.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("%s not in output:\n%s", re, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// BenchmarkDiffAfterClone: a full clone, then a --diff re-run with nothing
// changed (target: enqueues 0 and takes at most 10% of the clone's time),
// then 1% of the source changed (target: copies exactly those).
func BenchmarkDiffAfterClone(b *testing.B) {
	env, n, ms, slow, src := seeded(b, 10000, 20, false)
	for b.Loop() {
		dst := env.Bucket(b)
		S, D := "s3://"+src, "s3://"+dst
		out, full := timed(b, env, slow, "run", "--source", S, "--dest", D, "--log-level", "warn")
		if got := number(b, copiedRE, out); got != n {
			b.Fatalf("full clone copied %d of %d", got, n)
		}
		out, diff := timed(b, env, slow, "run", "--source", S, "--dest", D, "--diff", "--log-level", "warn")
		if got := number(b, enqueuedRE, out); got != 0 {
			b.Fatalf("diff of an unchanged clone enqueued %d objects", got)
		}
		b.Log(regexp.MustCompile(`(?m)^diff .*$`).FindString(out))
		changed := n / 100
		var objs []testbed.Object
		for i := range changed {
			objs = append(objs, testbed.Object{Key: fmt.Sprintf("img/%d/%02d/photo-%06d.jpg", 2020+(i*97+1)%5, ((i*97 + 1) % 12), i*97+1), Body: []byte(fmt.Sprintf("changed %d", i))})
		}
		env.Put(b, src, objs)
		out, delta := timed(b, env, slow, "run", "--source", S, "--dest", D, "--diff", "--log-level", "warn")
		if got := number(b, copiedRE, out); got != changed {
			b.Fatalf("after changing %d objects the diff copied %d", changed, got)
		}
		ratio := 100 * diff.Seconds() / full.Seconds()
		b.ReportMetric(full.Seconds(), "full-clone-s")
		b.ReportMetric(diff.Seconds(), "unchanged-diff-s")
		b.ReportMetric(ratio, "diff-%-of-clone")
		b.ReportMetric(delta.Seconds(), "1%-delta-s")
		b.Logf("%d objects, %d ms latency: full clone %.2fs (%.0f objects/s); unchanged diff %.2fs = %.1f%% of it (target <= 10%%); %d changed objects copied in %.2fs",
			n, ms, full.Seconds(), float64(n)/full.Seconds(), diff.Seconds(), ratio, changed, delta.Seconds())
		if ratio > 10 {
			b.Errorf("unchanged diff took %.1f%% of the full clone's time; target is at most 10%%", ratio)
		}
	}
}
