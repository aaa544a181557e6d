package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/testbed"
)

// TestKilledPlanResumes kills a planner with SIGKILL in the middle of a
// slow listing, runs the same command again, and checks that the plan
// completes with every key enqueued exactly once: the copies and the
// status totals come to the bucket's object count, not more.
func TestKilledPlanResumes(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	for i := range 1500 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("d%02d/obj-%04d", i%40, i), Body: body(i, 100)})
	}
	env.Put(t, src, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	checkpoint := filepath.Join(t.TempDir(), "plan.json")
	args := []string{"plan", "--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led,
		"--listers", "1", "--batch-keys", "10", "--checkpoint", checkpoint}

	slow := env.Slow(t, 400*time.Millisecond)
	cmd, _, stderr := command(env, "planner", args...)
	cmd.Env = env.EnvironFor(slow.URL)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Killed once the checkpoint holds some messages: those the ledger
	// recorded as sent (the checkpoint never runs ahead of the ledger).
	waitFor(t, 30*time.Second, "the first messages in the checkpoint", func() bool {
		var cp struct{ Sent struct{ Messages int } }
		data, err := os.ReadFile(checkpoint)
		return err == nil && json.Unmarshal(data, &cp) == nil && cp.Sent.Messages >= 5
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed: its exit status says only that
	sentBefore, _ := queueDepth(env, work)
	if sentBefore >= 150 {
		t.Fatalf("the planner was not killed mid-listing: %d messages already sent\n%s", sentBefore, stderr.String())
	}

	r := mustRun(t, env, "planner", args...)
	if !strings.Contains(r.stderr, "resuming an interrupted plan") {
		t.Fatalf("the second run did not resume:\n%s", tail(r.stderr))
	}
	again := mustRun(t, env, "planner", args...)
	if !strings.Contains(again.stdout, "plan already complete") {
		t.Fatalf("a third run of a complete plan:\n%s", again.stdout)
	}

	workers(t, env, 2, "--queue-url", work, "--ledger", led)
	st := status(t, env, led)
	// The sent records name every key once. Messages the killed planner
	// had sent but not yet recorded are done too (their keys were sent
	// again): up to 10 keys each copied twice.
	if !st.Complete || st.Planned.Objects != 1500 || st.Messages != st.Planned.Messages ||
		st.Copied < 1500 || st.Copied > 1500+10*st.Unrecorded {
		t.Fatalf("after a resumed plan (%d messages sent before the kill): status %+v planned %+v", sentBefore, st, st.Planned)
	}
	if v, code := verify(t, env, "s3://"+src, "s3://"+dst); code != 0 || v.Matching != 1500 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}
