package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/test/testbed"
)

// watchViews parses the lines of a status --watch --json.
func watchViews(t *testing.T, out string) []statusJSON {
	t.Helper()
	var views []statusJSON
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var v statusJSON
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("--watch --json line %q: %v", sc.Text(), err)
		}
		views = append(views, v)
	}
	return views
}

// TestStatusOfABusyFleet runs two status --watch processes and a loop of
// one-shot status commands while two workers copy 2,000 objects through a
// slow proxy. No reader takes anything from another: every view's copied
// count is at most the objects then in the destination and never goes
// down, and all readers end on identical, exact totals.
func TestStatusOfABusyFleet(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	var bytes int64
	for i := range 2000 {
		o := testbed.Object{Key: fmt.Sprintf("img/%02d/%04d.jpg", i%20, i), Body: body(i, 50+i%200)}
		objs = append(objs, o)
		bytes += int64(len(o.Body))
	}
	env.Put(t, srcB, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led, "--batch-keys", "10")

	type watcher struct {
		out, errb *lockedBuffer
		done      chan error
	}
	var watchers []watcher
	for range 2 {
		cmd, out, errb := command(env, "planner", "status", "--ledger", led, "--json", "--watch", "1s")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w := watcher{out, errb, make(chan error, 1)}
		go func() { w.done <- cmd.Wait() }()
		watchers = append(watchers, w)
	}
	slow := env.Slow(t, 15*time.Millisecond)
	var wg sync.WaitGroup
	wg.Go(func() {
		workers(t, env, 2, "--queue-url", work, "--ledger", led, "--s3-endpoint", slow.URL, "--concurrency", "8")
	})
	fleetDone := make(chan struct{})
	go func() { wg.Wait(); close(fleetDone) }()

	// One-shot readers meanwhile: each count against the destination
	// listed just after it.
	last, samples := int64(-1), 0
	for sampling := true; sampling; {
		select {
		case <-fleetDone:
			sampling = false
		case <-time.After(300 * time.Millisecond):
		}
		st := status(t, env, led)
		inDest := int64(len(env.Keys(t, dstB, "")))
		if st.Copied > inDest {
			t.Fatalf("status counted %d copies with %d objects in the destination", st.Copied, inDest)
		}
		if st.Copied < last {
			t.Fatalf("copied went down from %d to %d", last, st.Copied)
		}
		last = st.Copied
		samples++
	}
	var finals []statusJSON
	for i, w := range watchers {
		select {
		case err := <-w.done:
			if err != nil {
				t.Fatalf("watch %d: %v\n%s", i, err, tail(w.errb.String()))
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("watch %d did not end with the run:\n%s", i, tail(w.out.String()))
		}
		views := watchViews(t, w.out.String())
		for j := 1; j < len(views); j++ {
			if views[j].Copied < views[j-1].Copied || views[j].Copied > 2000 {
				t.Fatalf("watch %d: copied %d after %d", i, views[j].Copied, views[j-1].Copied)
			}
			if views[j-1].Complete {
				t.Fatalf("watch %d went on after a complete view", i)
			}
		}
		finals = append(finals, views[len(views)-1])
		t.Logf("watch %d: %d refreshes", i, len(views))
	}
	end := status(t, env, led)
	for i, f := range append(finals, end) {
		if !f.Complete || f.Copied != 2000 || f.Bytes != bytes || f.Messages != 200 || f.Sent != 200 || f.Failed != 0 || f.Workers != 2 {
			t.Fatalf("reader %d ended on %+v; want 2,000 copied, %d bytes, 200 messages, 2 workers", i, f, bytes)
		}
	}
	if samples < 3 {
		t.Fatalf("only %d one-shot samples during the run", samples)
	}
}

// TestResumedPlanAfterAHalfFailedSend: a send whose group the queue half
// accepts stops the plan; the accepted half is recorded as sent, the rest
// is planned again by the resumed plan under new numbers. Status is not
// complete while any of those messages waits on the queue.
func TestResumedPlanAfterAHalfFailedSend(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	for i := range 400 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("d%d/k%03d", i%4, i), Body: body(i, 20)})
	}
	env.Put(t, srcB, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	checkpoint := filepath.Join(t.TempDir(), "plan.json")
	args := []string{"plan", "--source", "s3://" + srcB, "--dest", "s3://" + dstB, "--queue-url", work, "--ledger", led,
		"--batch-keys", "5", "--listers", "1", "--checkpoint", checkpoint}

	partial := env.PartialSend(t, 2) // the preflight probe, one group, then half of one
	cmd, out, errb := command(env, "planner", args...)
	cmd.Env = env.EnvironForSQS(partial.URL)
	r := finish(t, "planner", cmd, out, errb)
	if r.code == 0 || partial.Accepted.Load() == 0 || partial.Refused.Load() == 0 {
		t.Fatalf("the half-failed send did not stop the plan: exit %d, %d accepted, %d refused\n%s", r.code, partial.Accepted.Load(), partial.Refused.Load(), tail(r.stderr))
	}
	first := status(t, env, led)
	if first.Plan != "stopped" || first.Complete {
		t.Fatalf("after the failed send: %+v", first)
	}
	resumed := mustRun(t, env, "planner", args...)
	if !strings.Contains(resumed.stderr, "resuming an interrupted plan") {
		t.Fatalf("not resumed:\n%s", tail(resumed.stderr))
	}

	// Workers drain while a watch looks on; every complete view must find
	// the queue empty.
	watch, wout, werr := command(env, "planner", "status", "--ledger", led, "--json", "--watch", "1s")
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	workers(t, env, 1, "--queue-url", work, "--ledger", led, "--concurrency", "4")
	if err := watch.Wait(); err != nil {
		t.Fatalf("watch: %v\n%s", err, tail(werr.String()))
	}
	for _, v := range watchViews(t, wout.String()) {
		if v.Complete && (v.Queue == nil || v.Queue.Visible+v.Queue.InFlight != 0 || v.Copied != 400) {
			t.Fatalf("complete with %+v on the queue and %d copied", v.Queue, v.Copied)
		}
	}
	st := status(t, env, led)
	if !st.Complete || st.Copied != 400 || st.Planned.Objects != 400 || st.Unrecorded != 0 {
		t.Fatalf("at the end: %+v planned %+v", st, st.Planned)
	}
	if v, code := verify(t, env, "s3://"+srcB, "s3://"+dstB); code != 0 || v.Matching != 400 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}

// TestStatusAmongAThousandRuns: status finds the latest of 1,000 runs in
// one ledger, and any other by --run-id.
func TestStatusAmongAThousandRuns(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	led := ledgerURL(t, env)
	store := ledger.New(env.S3, bucketOf(led), "s3clone/")
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range 999 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			l, err := store.BeginRun(ctx, ledger.Run{ID: fmt.Sprintf("20200101T%06dZ-%08x", i, i), Mode: ledger.ModeFull,
				Source: plan.Location{Bucket: "old-src"}, Dest: plan.Location{Bucket: "old-dst"}})
			if err == nil {
				l.Sent([]int64{1}, ledger.Totals{Messages: 1, Objects: 3}, nil)
				err = l.End(ctx, 1, nil)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects()[:30])
	work, _ := env.Queue(t, 0)
	r := mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led)
	workers(t, env, 1, "--queue-url", work, "--ledger", led)
	start := time.Now()
	st := status(t, env, led)
	took := time.Since(start)
	if st.Run != runID(t, r.stdout) || !st.Complete || st.Copied != 30 {
		t.Fatalf("the latest of 1,000 runs: %+v", st)
	}
	old := status(t, env, led, "--run-id", "20200101T000500Z-000001f4")
	if old.Complete || old.Planned.Objects != 3 || old.Messages != 0 {
		t.Fatalf("run 500: %+v", old)
	}
	t.Logf("status among 1,000 runs took %s", took)
}

// TestAMessageWhoseKeysAllFail: messages of up to 1,100 keys, 1,000 of
// which changed after planning. Their 100 copies count, their 1,000
// failures are recorded in full, status --failures --out writes them as a
// reconciliation file, and plan --from-file of it repairs the clone.
func TestAMessageWhoseKeysAllFail(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	var objs, changed []testbed.Object
	for i := range 1100 {
		o := testbed.Object{Key: fmt.Sprintf("photos/2024/%04d-%s.jpg", i, strings.Repeat("n", 60)), Body: body(i, 10)}
		objs = append(objs, o)
		if i >= 100 {
			changed = append(changed, testbed.Object{Key: o.Key, Body: body(i+5000, 12)})
		}
	}
	env.Put(t, srcB, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	src, dst := "s3://"+srcB, "s3://"+dstB
	mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--batch-keys", "2000")
	env.Put(t, srcB, changed)
	workers(t, env, 1, "--queue-url", work, "--ledger", led)

	st := status(t, env, led)
	if !st.Complete || st.Messages != st.Sent || st.Copied != 100 || st.Failed != 1000 || len(st.Failures) != 100 {
		t.Fatalf("status %+v (%d failures shown)", st, len(st.Failures))
	}
	// A message of up to 1,100 keys (the batcher may flush one early while
	// the listing waits): its entry holds every failure, far past the ~650
	// a report message could.
	reader := ledger.New(env.S3, bucketOf(led), "s3clone/").Follow(st.Run)
	if err := reader.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := reader.Failed(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	for _, e := range entries {
		most = max(most, len(e.Failed))
	}
	if most < 900 {
		t.Fatalf("the largest entry holds %d failures, want 900 or more", most)
	}
	recon := filepath.Join(t.TempDir(), "failed.jsonl")
	r := mustRun(t, env, "planner", "status", "--ledger", led, "--failures", "--out", recon)
	if !strings.Contains(r.stdout, "1000 failed keys") {
		t.Fatalf("status --failures --out: %s", r.stdout)
	}
	data, err := os.ReadFile(recon)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 1000 || !strings.Contains(string(data), `"problem":"failed","reason":"changed"`) {
		t.Fatalf("reconciliation file of %d lines:\n%.400s", n, data)
	}
	listed := run(t, env, "planner", "status", "--ledger", led, "--failures")
	if strings.Count(listed.stdout, "\tchanged\t") != 1000 {
		t.Fatalf("status --failures listed %d changed keys", strings.Count(listed.stdout, "\tchanged\t"))
	}
	mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--from-file", recon)
	workers(t, env, 1, "--queue-url", work, "--ledger", led)
	if st := status(t, env, led); !st.Complete || st.Copied != 1000 || st.Failed != 0 {
		t.Fatalf("the repair run: %+v", st)
	}
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != 1100 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}

// TestWatchPlannerRunFromAnotherTerminal: planner run --ledger records its
// run as a fleet would, so a status --watch elsewhere follows it to the
// end and agrees with run's own summary.
func TestWatchPlannerRunFromAnotherTerminal(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects())
	led := ledgerURL(t, env)
	slow := env.Slow(t, 20*time.Millisecond)
	runCmd, runOut, runErr := command(env, "planner", "run", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--ledger", led,
		"--concurrency", "4", "--batch-keys", "20")
	runCmd.Env = env.EnvironFor(slow.URL)
	if err := runCmd.Start(); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- runCmd.Wait() }()
	// The watch starts once the run is in the ledger.
	waitFor(t, 30*time.Second, "the run in the ledger", func() bool {
		return len(env.Keys(t, bucketOf(led), "s3clone/runs/")) > 0
	})
	watch := run(t, env, "planner", "status", "--ledger", led, "--json", "--watch", "1s")
	if err := <-runDone; err != nil {
		t.Fatalf("planner run: %v\n%s", err, tail(runErr.String()))
	}
	views := watchViews(t, watch.stdout)
	if watch.code != 0 || len(views) < 2 {
		t.Fatalf("watch: exit %d, %d views\n%s", watch.code, len(views), tail(watch.stderr))
	}
	last := views[len(views)-1]
	if !last.Complete || last.Copied != 400 || last.Messages != 20 || views[0].Complete {
		t.Fatalf("first view %+v, last %+v", views[0], last)
	}
	if !strings.Contains(runOut.String(), "copied      400 objects") {
		t.Fatalf("planner run's own summary:\n%s", runOut.String())
	}
}
