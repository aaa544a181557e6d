package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/test/testbed"
)

type verifyJSON struct {
	Compared, Matching, Missing, Different, Extra, Unknown int64
}

func verify(t *testing.T, env *testbed.Env, src, dst string, extra ...string) (verifyJSON, int) {
	t.Helper()
	r := run(t, env, "planner", append([]string{"verify", "--source", src, "--dest", dst, "--json"}, extra...)...)
	var v verifyJSON
	if err := json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &v); err != nil {
		t.Fatalf("verify output %q (exit %d): %v\n%s", r.stdout, r.code, err, tail(r.stderr))
	}
	return v, r.code
}

func deleteKeys(t *testing.T, env *testbed.Env, bucket string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, err := env.S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIncrementalSync is the downtime runbook: clone while live, change the
// source, then copy only the delta with --diff --delete, and verify.
func TestIncrementalSync(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	for _, o := range acceptanceObjects()[:300] {
		o.Key = "data/" + o.Key
		objs = append(objs, o)
	}
	objs = append(objs, testbed.Object{Key: "data/big/video.mp4", Body: body(7, 12<<20)})
	env.Put(t, srcB, objs)
	env.Put(t, dstB, []testbed.Object{{Key: "elsewhere/keep.txt", Body: []byte("not ours to delete")}})
	src, dst := "s3://"+srcB+"/data/", "s3://"+dstB+"/mirror/"
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	copyFlags := []string{"--queue-url", work, "--ledger", led, "--multipart-threshold", "8MiB", "--part-size", "5MiB"}

	// The bulk, while production is live.
	mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led)
	workers(t, env, 1, copyFlags...)
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != 301 {
		t.Fatalf("after the bulk copy: verify %+v, exit %d", v, code)
	}

	// Nothing changed: a diff enqueues nothing, the multipart copy included.
	r := mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--diff")
	if !strings.Contains(r.stdout, "enqueued 0 objects") || !strings.Contains(r.stdout, "301 compared, 301 matching") {
		t.Fatalf("diff of an unchanged clone:\n%s", r.stdout)
	}

	// Production changes, then freezes: 3 rewritten (same sizes), 2 new, 2 deleted.
	var changed []testbed.Object
	for i, k := range []string{"sub/file-000.jpg", "sub/file-001.jpg", "4/sub/file-299.jpg"} {
		for _, o := range objs {
			if o.Key == "data/"+k {
				changed = append(changed, testbed.Object{Key: o.Key, Body: body(1000+i, len(o.Body)-len("object 1000\n"))})
			}
		}
	}
	changed = append(changed, testbed.Object{Key: "data/new/a.jpg", Body: []byte("a")}, testbed.Object{Key: "data/new/b.jpg", Body: []byte("b")})
	env.Put(t, srcB, changed)
	deleteKeys(t, env, srcB, "data/sub/file-010.jpg", "data/0/sub/file-200.jpg")
	if v, code := verify(t, env, src, dst); code != 1 || v.Different != 3 || v.Missing != 2 || v.Extra != 2 {
		t.Fatalf("after the changes: verify %+v, exit %d; want 3 different, 2 missing, 2 extra", v, code)
	}

	// The delta.
	r = mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--diff", "--delete")
	if !strings.Contains(r.stdout, "enqueued 5 objects") || !strings.Contains(r.stdout, "deletes   2") {
		t.Fatalf("diff after the changes:\n%s", r.stdout)
	}
	workers(t, env, 1, copyFlags...)
	st := status(t, env, led, "--run-id", runID(t, r.stdout))
	if !st.Complete || st.Copied != 5 || st.Failed != 0 {
		t.Fatalf("status of the delta run: %+v", st)
	}
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != 301 {
		t.Fatalf("after the delta: verify %+v, exit %d", v, code)
	}
	if _, ok := env.Keys(t, dstB, "elsewhere/")["elsewhere/keep.txt"]; !ok {
		t.Fatal("--delete removed an object outside the destination prefix")
	}
}

// TestVerifyFileDrivesARepair: verify --out writes what is wrong, and plan
// --from-file enqueues exactly that.
func TestVerifyFileDrivesARepair(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects()[:100])
	src, dst := "s3://"+srcB, "s3://"+dstB
	mustRun(t, env, "planner", "run", "--source", src, "--dest", dst)
	deleteKeys(t, env, dstB, "sub/file-005.jpg", "sub/file-006.jpg")
	env.Put(t, dstB, []testbed.Object{{Key: "sub/file-007.jpg", Body: []byte("damaged")}, {Key: "stray.txt", Body: []byte("x")}})

	out := filepath.Join(t.TempDir(), "recon.jsonl")
	v, code := verify(t, env, src, dst, "--out", out)
	if code != 1 || v.Missing != 2 || v.Different != 1 || v.Extra != 1 || v.Matching != 97 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 4 {
		t.Fatalf("reconciliation file has %d lines, want 4:\n%s", n, data)
	}

	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	r := mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--from-file", out, "--delete")
	if !strings.Contains(r.stdout, "enqueued 3 objects") || !strings.Contains(r.stdout, "deletes   1") {
		t.Fatalf("plan --from-file:\n%s", r.stdout)
	}
	workers(t, env, 1, "--queue-url", work, "--ledger", led)
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != 100 {
		t.Fatalf("after the repair: verify %+v, exit %d", v, code)
	}

	// A file written for another copy is refused whole, and nothing is sent.
	bad := filepath.Join(t.TempDir(), "other.jsonl")
	if err := os.WriteFile(bad, append(data, []byte(`{"key":"x","problem":"missing","src":{"key":"elsewhere/x","size":1}}`+"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, env, "planner", "plan", "--source", src+"/sub/", "--dest", dst+"/sub/", "--queue-url", work, "--from-file", bad)
	if r.code != 2 || !strings.Contains(r.stderr, "was the file written for another copy") {
		t.Fatalf("a file for another copy: exit %d, %s", r.code, r.stderr)
	}
	if n, err := queueDepth(env, work); err != nil || n != 0 {
		t.Fatalf("a refused file left %d messages (%v)", n, err)
	}
}

// TestExactAccountingUnderRedelivery kills a worker mid-run with SIGKILL and
// a short visibility timeout, so that its unfinished messages are delivered
// again, and writes a second entry for a finished message, as a second
// worker redoing a redelivered message would: status still reaches exactly
// the planned totals.
func TestExactAccountingUnderRedelivery(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects())
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	src, dst := "s3://"+srcB, "s3://"+dstB
	mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--batch-keys", "10")

	cmd, _, stderr := command(env, "worker", "--queue-url", work, "--ledger", led, "--concurrency", "3", "--visibility-timeout", "2s", "--log-level", "debug")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first copies", func() bool { return strings.Count(stderr.String(), "object copied") >= 60 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed: its exit status says only that

	mid := status(t, env, led, "--deadline", "1h")
	if mid.Complete || mid.Messages == 0 || mid.Deadline == nil || mid.Deadline.WorkersNeeded < 1 || mid.Deadline.PerWorkerRate <= 0 {
		t.Fatalf("after SIGKILL: %+v deadline %+v", mid, mid.Deadline)
	}
	replayOneEntry(t, env, led)
	time.Sleep(2500 * time.Millisecond) // the killed worker's messages become visible again

	workers(t, env, 2, "--queue-url", work, "--ledger", led)
	st := status(t, env, led)
	if !st.Complete || st.Copied != 400 || st.Failed != 0 || st.Messages != st.Planned.Messages || st.Bytes != st.Planned.Bytes {
		t.Fatalf("after redeliveries: %+v planned %+v", st, st.Planned)
	}
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != 400 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}

// replayOneEntry writes a copy of one finished message's entry under
// another journal, finished later: what a second worker that redid a
// redelivered message would write.
func replayOneEntry(t *testing.T, env *testbed.Env, ledger string) {
	t.Helper()
	ctx := context.Background()
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(ledger, "s3://"), "/")
	var key string
	for k := range env.Keys(t, bucket, prefix+"runs/") {
		if strings.Contains(k, "/done/") {
			key = k
			break
		}
	}
	if key == "" {
		t.Fatal("no entry to replay")
	}
	get, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(get.Body)
	get.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	done, rest, _ := strings.Cut(key, "/done/")
	_, name := path.Split(rest)
	replay := done + "/done/replayed.00000000/00000/" + name
	if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(replay), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}
