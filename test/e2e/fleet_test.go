package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/testbed"
)

// TestWatchScalesTheFleetToADeadline runs planner status --watch with a
// deadline and --scale-ecs against a fake ECS API, while the test plays
// ECS: it keeps as many real worker processes running as the service's
// desired count. Copies go through a proxy that holds each S3 request, so
// one worker cannot make the deadline. status must start a first worker
// (no rate yet), scale out once it has a rate, refresh until the run is
// complete, then park the fleet at --min-workers and exit 0 by itself.
func TestWatchScalesTheFleetToADeadline(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects())
	work, _ := env.Queue(t, 0)
	reports, _ := env.Queue(t, 0)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB,
		"--queue-url", work, "--report-queue-url", reports, "--batch-keys", "10")

	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {DesiredCount: 0}})
	slow := env.Slow(t, 40*time.Millisecond)

	cmd, stdout, stderr := command(env, "planner", "status", "--report-queue-url", reports, "--json",
		"--watch", "1s", "--deadline", "6s", "--scale-ecs", "s3clone/workers", "--min-workers", "0", "--max-workers", "5")
	cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL_ECS="+fake.URL)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchDone := make(chan error, 1)
	go func() { watchDone <- cmd.Wait() }()

	// Play ECS: run as many workers as desired (they exit once idle).
	var (
		mu      sync.Mutex
		started int
		wg      sync.WaitGroup
		failed  []string
	)
	stopPlaying := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopPlaying:
				return
			case <-time.After(100 * time.Millisecond):
			}
			mu.Lock()
			for started < fake.Service("s3clone/workers").DesiredCount {
				started++
				id := fmt.Sprintf("w%d", started)
				wg.Go(func() {
					r := run(t, env, "worker", "--id", id, "--queue-url", work, "--report-queue-url", reports,
						"--s3-endpoint", slow.URL, "--concurrency", "2", "--idle-exit", "3s")
					if r.code != 0 {
						mu.Lock()
						failed = append(failed, fmt.Sprintf("%s: exit %d\n%s", id, r.code, tail(r.stderr)))
						mu.Unlock()
					}
				})
			}
			mu.Unlock()
		}
	}()

	select {
	case err := <-watchDone:
		if err != nil {
			t.Fatalf("status --watch: %v\n%s", err, tail(stderr.String()))
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("status --watch did not end with the run\nstdout:\n%s\nstderr:\n%s", tail(stdout.String()), tail(stderr.String()))
	}
	close(stopPlaying)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("workers failed:\n%s", strings.Join(failed, "\n"))
	}

	type view struct {
		statusJSON
		Scale *struct {
			Desired int    `json:"desired"`
			Changed bool   `json:"changed"`
			Error   string `json:"error"`
		} `json:"scale"`
	}
	var views []view
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	for sc.Scan() {
		var v view
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("--watch --json line %q: %v", sc.Text(), err)
		}
		views = append(views, v)
	}
	if len(views) < 3 {
		t.Fatalf("%d refreshes, want several:\n%s", len(views), stdout.String())
	}
	last := views[len(views)-1]
	if !last.Complete || last.Copied != 400 || last.Failed != 0 || last.Scale == nil || last.Scale.Desired != 0 {
		t.Fatalf("last refresh: %+v scale %+v", last.statusJSON, last.Scale)
	}
	for i, v := range views[:len(views)-1] {
		if v.Complete {
			t.Errorf("refresh %d of %d already complete: the watch should have ended there", i+1, len(views))
		}
		if v.Scale == nil || v.Scale.Error != "" {
			t.Fatalf("refresh %d: scale %+v", i+1, v.Scale)
		}
	}
	updates := fake.Updates()
	if len(updates) < 3 || updates[0] != 1 || updates[len(updates)-1] != 0 {
		t.Fatalf("desired counts set: %v; want 1 first (no rate yet), more once measured, 0 at the end", updates)
	}
	peak := 0
	for _, u := range updates {
		peak = max(peak, u)
		if u > 5 {
			t.Errorf("desired count %d is above --max-workers 5 (%v)", u, updates)
		}
	}
	if peak < 2 || started < 2 {
		t.Fatalf("the fleet never grew past one worker (desired counts %v, %d started)", updates, started)
	}
	if v, code := verify(t, env, "s3://"+srcB, "s3://"+dstB); code != 0 || v.Matching != 400 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
	t.Logf("desired counts %v over %d refreshes; %d workers started", updates, len(views), started)
}
