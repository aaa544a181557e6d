package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestKilledPlanResumes kills a planner with SIGKILL in the middle of a
// slow listing, runs the same command again, and checks that the plan
// completes with every key enqueued exactly once: the copies and the
// status totals come to the bucket's object count, not more.
// The checkpoint is a file, or (ledger:NAME) an object in the ledger, as a
// plan run as an ECS task keeps it: the task's files go with it. In the
// ledger, the killed planner's last write can land after the next planner
// has begun (here the proxy holds it 400 ms): written without a condition
// it took the checkpoint back, and the third run planned again what was
// done; conditional writes refuse it.
func TestKilledPlanResumes(t *testing.T) {
	t.Parallel()
	for _, where := range []string{"file", "ledger"} {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			killedPlanResumes(t, where == "ledger")
		})
	}
}

func killedPlanResumes(t *testing.T, inLedger bool) {
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
	readCheckpoint := func() ([]byte, error) { return os.ReadFile(checkpoint) }
	if inLedger {
		checkpoint = "ledger:bulk-copy"
		readCheckpoint = func() ([]byte, error) {
			out, err := env.S3.GetObject(context.Background(), &s3.GetObjectInput{
				Bucket: aws.String(bucketOf(led)), Key: aws.String("s3clone/checkpoints/bulk-copy.json")})
			if err != nil {
				return nil, err
			}
			defer out.Body.Close()
			return io.ReadAll(out.Body)
		}
	}
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
		data, err := readCheckpoint()
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
	planned := int64(1500)
	if inLedger {
		// A checkpoint in the ledger is a PUT behind the ledger's sent
		// records (here a 400 ms one), not a local rename: the messages
		// recorded in that lag are sent again after the kill, under new
		// numbers, and counted twice (copied twice, harmlessly). The
		// resumed plan still carries on: it plans again fewer keys than
		// the killed one had sent.
		planned = st.Planned.Objects
		if planned < 1500 || planned >= 1500+10*int64(sentBefore) {
			t.Fatalf("after a resumed plan (%d messages sent before the kill): %d keys planned, want from 1500 to below %d", sentBefore, planned, 1500+10*sentBefore)
		}
		t.Logf("%d keys planned again after the kill, of the %d the killed plan had sent", planned-1500, 10*sentBefore)
	}
	if !st.Complete || st.Planned.Objects != planned || st.Messages != st.Planned.Messages ||
		st.Copied < 1500 || st.Copied > planned+10*st.Unrecorded {
		t.Fatalf("after a resumed plan (%d messages sent before the kill): status %+v planned %+v", sentBefore, st, st.Planned)
	}
	if v, code := verify(t, env, "s3://"+src, "s3://"+dst); code != 0 || v.Matching != 1500 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}
