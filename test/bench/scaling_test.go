package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/test/testbed"
)

// BenchmarkScaling: with each worker's concurrency capped at 32 behind a
// 100 ms latency proxy, going from 1 to 2 to 4 workers should multiply
// objects/s by at least 0.85 × the number of workers, until the server's
// ceiling. S3CLONE_BENCH_OBJECTS sets the size (default 12000: with fewer,
// the fixed cost of planning through 100 ms hides the copying rate). A last
// run, one worker with 128 copies in flight, is the control for four
// workers of 32: if it is no faster, what stops four workers short is the
// servers at 128 copies in flight, not the spreading over processes.
func BenchmarkScaling(b *testing.B) {
	env, n, _, slow, src := seeded(b, 12000, 100, true)
	base := env.EnvironFor(slow)
	for b.Loop() {
		var one, oneCopying float64
		var md strings.Builder
		fmt.Fprintf(&md, "# Scaling: %d objects, 100 ms latency, %s\n\n", n, time.Now().UTC().Format("20060102T150405Z"))
		md.WriteString("| workers × copies in flight | objects/s | × one worker of 32 | target | copying alone, objects/s | × | planning until the first copy, s | cores busy: clients, S3 server, SQS server, proxy, together |\n|---|---|---|---|---|---|---|---|\n")
		for _, run := range []struct{ k, conc int }{{1, 32}, {2, 32}, {4, 32}, {1, 128}} {
			k := run.k
			var p procs
			dst := env.Bucket(b)
			server0, _ := env.ServerCPU()
			proxy0, _ := env.ProxyCPU()
			sqs0, _ := env.SQSServerCPU()
			start := time.Now()
			first := firstObject(env, dst)
			idle := fleet(b, env, base, src, k, "--concurrency", fmt.Sprint(run.conc))(&p, dst)
			took := time.Since(start) - idle
			rate := float64(n) / took.Seconds()
			// The copying alone, from the first object in the destination to
			// the last: planning and preflight (a few requests through 100 ms
			// each) take the same time whatever the number of workers.
			copying := start.Add(took).Sub(<-first)
			copyRate := float64(n) / copying.Seconds()
			server1, _ := env.ServerCPU()
			proxy1, _ := env.ProxyCPU()
			sqs1, _ := env.SQSServerCPU()
			if copied := len(env.Keys(b, dst, "")); copied != n {
				b.Fatalf("%d workers copied %d of %d", k, copied, n)
			}
			if one == 0 {
				one, oneCopying = rate, copyRate
			}
			slots := k * run.conc / 32
			b.ReportMetric(rate, fmt.Sprintf("objects/s-%dx%d", k, run.conc))
			b.ReportMetric(copyRate, fmt.Sprintf("copying-objects/s-%dx%d", k, run.conc))
			b.Logf("%d workers × %d copies, 100 ms latency: %.0f objects/s = %.2f × one worker of 32 (target ≥ %.2f); "+
				"copying alone %.0f objects/s = %.2f ×, after %.2fs of planning until the first copy landed",
				k, run.conc, rate, rate/one, 0.85*float64(slots), copyRate, copyRate/oneCopying, took.Seconds()-copying.Seconds())
			// Is the machine the ceiling? CPU used by the clients, the S3 and
			// SQS servers and the latency proxy, in cores over the run.
			cores := func(d time.Duration) float64 { return d.Seconds() / took.Seconds() }
			all := p.cpu + server1 - server0 + proxy1 - proxy0 + sqs1 - sqs0
			b.Logf("  cores busy: clients %.2f, S3 server %.2f, SQS server %.2f, latency proxy %.2f, together %.2f of %d",
				cores(p.cpu), cores(server1-server0), cores(sqs1-sqs0), cores(proxy1-proxy0), cores(all), runtime.NumCPU())
			fmt.Fprintf(&md, "| %d × %d | %.0f | %.2f | ≥ %.2f | %.0f | %.2f | %.2f | %.2f, %.2f, %.2f, %.2f, %.2f of %d |\n",
				k, run.conc, rate, rate/one, 0.85*float64(slots), copyRate, copyRate/oneCopying, took.Seconds()-copying.Seconds(),
				cores(p.cpu), cores(server1-server0), cores(sqs1-sqs0), cores(proxy1-proxy0), cores(all), runtime.NumCPU())
		}
		dir := filepath.Join(env.Root, "bench", "results")
		name := filepath.Join(dir, "scaling-"+time.Now().UTC().Format("20060102T150405Z")+".md")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(md.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("wrote %s", name)
	}
}

// firstObject reports when the first object shows up in bucket, polling
// the server directly every 10 ms.
func firstObject(env *testbed.Env, bucket string) <-chan time.Time {
	at := make(chan time.Time, 1)
	go func() {
		for {
			out, err := env.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)})
			if err == nil && len(out.Contents) > 0 {
				at <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return at
}

// BenchmarkFirstCopy: the time from starting plan to the first object in
// the destination, with workers already waiting on the queue (target < 1s
// on any bucket size).
func BenchmarkFirstCopy(b *testing.B) {
	env, n, ms, slow, src := seeded(b, 10000, 20, false)
	base := env.EnvironFor(slow)
	for b.Loop() {
		dst := env.Bucket(b)
		work, _ := env.Queue(b, 0)
		led := "s3://" + env.Bucket(b) + "/s3clone/"
		var p procs
		var wg sync.WaitGroup
		wg.Go(func() {
			p.exe(b, base, filepath.Join(bin, "worker"), "--queue-url", work, "--ledger", led, "--idle-exit", "2s", "--log-level", "warn")
		})
		time.Sleep(500 * time.Millisecond) // the worker is polling
		start := time.Now()
		wg.Go(func() {
			p.exe(b, base, filepath.Join(bin, "planner"), "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--log-level", "warn")
		})
		var first time.Duration
		for first == 0 && time.Since(start) < 30*time.Second {
			out, err := env.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(dst), MaxKeys: aws.Int32(2)})
			if err == nil && len(out.Contents) > 0 {
				// Preflight copies one sample itself; count the workers' first.
				if len(out.Contents) > 1 {
					first = time.Since(start)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		wg.Wait()
		if first == 0 {
			b.Fatal("no worker copied anything within 30s")
		}
		b.ReportMetric(first.Seconds(), "s-to-first-copy")
		b.Logf("%d objects, %d ms latency: first object copied by a worker %.3fs after plan started (target < 1s)", n, ms, first.Seconds())
	}
}
