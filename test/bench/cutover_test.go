package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/test/testbed"
)

// BenchmarkCutover is the frozen window against the bulk copy before it:
// 8,000 objects (S3CLONE_BENCH_OBJECTS) behind 20 ms, cloned by a planner
// and two workers; then 1% of the source changes (half overwritten, a
// quarter added, a quarter deleted) and planner cutover copies it, timed
// from its start to its exit (target: at most 0.4 of the bulk copy). Then
// another 1% changes and the step-by-step runbook (plan --diff --delete,
// status --watch until complete, verify) is timed the same way, for
// comparison. Results go to bench/results/cutover-*.md.
func BenchmarkCutover(b *testing.B) {
	env, n, ms, slow, src := seeded(b, 8000, 20, false)
	base := env.EnvironFor(slow)
	report := &rows{b: b}
	say := report.say
	for b.Loop() {
		dst := env.Bucket(b)
		S, D := "s3://"+src, "s3://"+dst
		work, _ := env.Queue(b, 5)
		led := "s3://" + env.Bucket(b) + "/s3clone/"
		var workers []*tracked
		for i := range 2 {
			workers = append(workers, start(b, base, "worker", "--id", fmt.Sprint("w", i), "--queue-url", work, "--ledger", led,
				"--idle-exit", "10m", "--log-level", "warn"))
		}
		planner := start(b, base, "planner", "plan", "--source", S, "--dest", D, "--queue-url", work, "--ledger", led, "--log-level", "warn")
		planner.wait(b)
		bulk := waitDrained(b, env, work).Sub(planner.started)
		say("| bulk copy, planner + 2 workers | %.2fs | %.0f objects/s |", bulk.Seconds(), float64(n)/bulk.Seconds())

		changeSome(b, env, src, n, 0)
		cut := start(b, base, "planner", "cutover", "--source", S, "--dest", D, "--queue-url", work, "--ledger", led, "--log-level", "warn")
		cut.wait(b)
		if !strings.Contains(cut.out.String(), "verdict   clean") {
			b.Fatalf("cutover:\n%s", cut.out.String())
		}
		window := strings.TrimSpace(strings.TrimPrefix(regexp.MustCompile(`(?m)^window .*$`).FindString(cut.out.String()), "window"))
		ratio := cut.took().Seconds() / bulk.Seconds()
		say("| planner cutover, 1%% changed | %.2fs | %.2f of the bulk copy (target at most 0.4); %s |", cut.took().Seconds(), ratio, window)
		b.ReportMetric(ratio, "cutover/bulk")
		if ratio > 0.4 {
			b.Errorf("the cutover took %.2f of the bulk copy's time; target is at most 0.4", ratio)
		}

		// The same window step by step, as the runbook had it.
		changeSome(b, env, src, n, 1)
		started := time.Now()
		plan := start(b, base, "planner", "plan", "--source", S, "--dest", D, "--queue-url", work, "--ledger", led, "--diff", "--delete", "--log-level", "warn")
		plan.wait(b)
		watch := start(b, base, "planner", "status", "--ledger", led, "--watch", "2s", "--json")
		watch.wait(b)
		ver := start(b, base, "planner", "verify", "--source", S, "--dest", D, "--log-level", "warn")
		ver.wait(b)
		runbook := time.Since(started)
		say("| runbook: plan --diff --delete, status --watch 2s, verify | %.2fs | %.2f of the bulk copy (plan %.2fs, watch %.2fs, verify %.2fs) |",
			runbook.Seconds(), runbook.Seconds()/bulk.Seconds(), plan.took().Seconds(), watch.took().Seconds(), ver.took().Seconds())

		for _, w := range workers {
			w.cmd.Process.Signal(os.Interrupt)
			w.wait(b, 0, 3)
		}
	}
	dir := filepath.Join(env.Root, "bench", "results")
	text := fmt.Sprintf("# The frozen window: %d objects of 1–64 KiB behind %d ms (make bench, %s)\n\n| what | time | |\n|---|---|---|\n%s",
		n, ms, time.Now().UTC().Format(time.RFC3339), report.String())
	if err := os.WriteFile(filepath.Join(dir, "cutover-"+time.Now().UTC().Format("20060102T150405Z")+".md"), []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
}

// changeSome changes 1% of the n objects seed made: half of them overwritten,
// a quarter added, a quarter deleted; round picks other keys each time.
func changeSome(b *testing.B, env *testbed.Env, bucket string, n, round int) {
	b.Helper()
	k := max(n/100, 4)
	var objs []testbed.Object
	for i := range k / 2 {
		j := (i*97 + round*31 + 1) % n
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("img/%d/%02d/photo-%06d.jpg", 2020+j%5, j%12, j), Body: []byte(fmt.Sprintf("changed %d in round %d", j, round))})
	}
	for i := range k / 4 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("new/%d/%06d.jpg", round, i), Body: []byte(fmt.Sprintf("new %d", i))})
	}
	env.Put(b, bucket, objs)
	var gone []s3types.ObjectIdentifier
	for i := range k / 4 {
		j := (i*89 + round*53 + 2) % n
		if j%100 == 0 {
			continue // a top-level key, named otherwise
		}
		gone = append(gone, s3types.ObjectIdentifier{Key: aws.String(fmt.Sprintf("img/%d/%02d/photo-%06d.jpg", 2020+j%5, j%12, j))})
	}
	if _, err := env.S3.DeleteObjects(context.Background(), &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &s3types.Delete{Objects: gone, Quiet: aws.Bool(true)}}); err != nil {
		b.Fatal(err)
	}
}
