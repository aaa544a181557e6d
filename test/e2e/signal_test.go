package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestSIGTERMHandsBackUnfinishedWork signals a worker process in the middle
// of a run: it must exit 0 within its grace period and poll, leave nothing
// hidden in flight (finished messages deleted, the rest handed back), and a
// second worker must finish the run with every object counted exactly once.
func TestSIGTERMHandsBackUnfinishedWork(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	for i, o := range acceptanceObjects() {
		o.Key = strings.Replace(o.Key, "file", "f", 1)
		objs = append(objs, o, testbed.Object{Key: o.Key + ".copy", Body: body(i, 200)})
	}
	env.Put(t, src, objs)
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--batch-keys", "10")

	// One copy at a time, so that the signal lands mid-run.
	cmd, _, stderr := command(env, "worker", "--queue-url", work, "--ledger", led, "--concurrency", "1", "--grace", "5s", "--log-level", "debug")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first copies", func() bool { return strings.Count(stderr.String(), "object copied") >= 15 })
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker after SIGTERM: %v\n%s", err, tail(stderr.String()))
	}
	if took := time.Since(signalled); took > 20*time.Second {
		t.Errorf("stopping took %s with a 5s grace and a 10s poll", took)
	}
	if !strings.Contains(stderr.String(), "stopping: finishing in-flight copies") {
		t.Errorf("the worker did not go through its graceful stop:\n%s", tail(stderr.String()))
	}
	mid := status(t, env, led)
	if mid.Complete || mid.Messages == 0 {
		t.Fatalf("after SIGTERM: %+v; want some messages done and some left", mid)
	}
	if mid.Queue.InFlight != 0 || mid.Queue.Visible+mid.Messages != mid.Planned.Messages {
		t.Fatalf("after SIGTERM: queue %+v with %d of %d messages done; want the rest visible, none in flight",
			*mid.Queue, mid.Messages, mid.Planned.Messages)
	}

	workers(t, env, 1, "--queue-url", work, "--ledger", led)
	st := status(t, env, led)
	if !st.Complete || st.Copied != 800 || st.Failed != 0 {
		t.Fatalf("after a second worker: %+v", st)
	}
	sameObjects(t, snapshot(t, env, src, "", false), snapshot(t, env, dst, "", false))
}

// TestSIGTERMAbortsACopyInParts: a worker signalled while it copies a large
// object in parts (each part slowed down) and holds more messages than it
// can work on: within its grace it releases every message it has not
// finished, cuts the copy short when the grace ends, and aborts its
// multipart upload, so nothing is left to be billed. A second worker then
// copies everything.
func TestSIGTERMAbortsACopyInParts(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	objs := []testbed.Object{{Key: "a/big.bin", Body: body(1, 30<<20)}}
	for i := range 12 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("b/%02d.jpg", i), Body: body(10+i, 100)})
	}
	env.Put(t, src, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--batch-keys", "1")

	slow := env.Slow(t, 400*time.Millisecond)
	cmd, _, stderr := command(env, "worker", "--queue-url", work, "--ledger", led, "--concurrency", "1", "--grace", "1s",
		"--multipart-threshold", "5MiB", "--part-size", "5MiB", "--part-concurrency", "1", "--log-level", "debug")
	cmd.Env = env.EnvironFor(slow.URL)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the copy in parts under way", func() bool {
		out, err := env.S3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(dst)})
		return err == nil && len(out.Uploads) == 1
	})
	held := 0
	if n, err := queueDepth(env, work); err == nil {
		held = n
	}
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker after SIGTERM: %v\n%s", err, tail(stderr.String()))
	}
	if took := time.Since(signalled); took > 15*time.Second {
		t.Errorf("stopping took %s with a 1s grace and a 10s poll", took)
	}
	out, err := env.S3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(dst)})
	if err != nil || len(out.Uploads) != 0 {
		t.Fatalf("after the stop: %d multipart uploads left (%v)\n%s", len(out.Uploads), err, tail(stderr.String()))
	}
	// Every message is back on the queue, none hidden.
	d, err := env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(work),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil || d.Attributes["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Fatalf("after the stop: %v messages still hidden (%v); %d were on the queue", d.Attributes, err, held)
	}
	workers(t, env, 1, "--queue-url", work, "--ledger", led, "--multipart-threshold", "5MiB", "--part-size", "5MiB")
	if st := status(t, env, led); !st.Complete || st.Copied != int64(len(objs)) {
		t.Fatalf("after a second worker: %+v", st)
	}
	sameObjects(t, snapshot(t, env, src, "", false), snapshot(t, env, dst, "", false))
}
