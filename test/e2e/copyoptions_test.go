package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/test/testbed"
)

// TestCrossAccountDestinationPolicy: the usual cross-account destination,
// whose bucket policy refuses any write without the bucket-owner-full-control
// ACL or without SSE-KMS (the S3 user guide's two example policies; the
// test bed's Manners enforces them, as versitygw cannot). A plan without
// --acl and --sse-kms-key-id is refused by its preflight, exit 2, nothing
// enqueued; with them, the preflight's sample and every copy (in parts too)
// are written with them, the run records them, a worker started with other
// options says so and writes as the run says, a diff right after enqueues
// nothing and verify passes.
func TestCrossAccountDestinationPolicy(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	objs := acceptanceObjects()[:60]
	objs = append(objs, testbed.Object{Key: "big/blob.bin", Body: bytes.Repeat([]byte("0123456789abcdef"), 6<<20/16)})
	env.Put(t, srcB, objs)
	const acl, key = "bucket-owner-full-control", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	m := env.Manners()
	m.RequireOnWrite(dstB, testbed.Written{ACL: acl, SSE: "aws:kms"})
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	src, dst := "s3://"+srcB, "s3://"+dstB

	r := run(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led)
	if r.code != 2 || !strings.Contains(r.stderr, "--acl") || !strings.Contains(r.stderr, "nothing was enqueued") {
		t.Fatalf("a plan without the policy's ACL and encryption: exit %d\n%s", r.code, tail(r.stderr))
	}
	if n, _ := queueDepth(env, work); n != 0 {
		t.Fatalf("%d messages enqueued by a refused plan", n)
	}

	opts := []string{"--acl", acl, "--sse-kms-key-id", key, "--storage-class", "STANDARD_IA"}
	r = mustRun(t, env, "planner", append([]string{"plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led}, opts...)...)
	id := runID(t, r.stdout)
	ws := workers(t, env, 1, "--queue-url", work, "--ledger", led, "--acl", "private", "--multipart-threshold", "5MiB", "--part-size", "5MiB")
	if !strings.Contains(ws[0].stderr, "copy options differ from its run's") || !strings.Contains(ws[0].stderr, `"run_acl":"`+acl+`","worker_acl":"private"`) {
		t.Fatalf("a worker told --acl private did not say it differs from the run:\n%s", tail(ws[0].stderr))
	}
	if st := status(t, env, led, "--run-id", id); !st.Complete || st.Copied != int64(len(objs)) || st.Failed != 0 {
		t.Fatalf("status %+v\n%s", st, tail(ws[0].stderr))
	}
	want := testbed.Written{ACL: acl, SSE: "aws:kms", KMSKeyID: key, StorageClass: "STANDARD_IA"}
	for _, o := range objs {
		if got, ok := m.Written(dstB, o.Key); !ok || got != want {
			t.Fatalf("%s written with %+v (written: %v), want %+v", o.Key, got, ok, want)
		}
	}

	// The run's record holds its copy options.
	rec, err := env.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucketOf(led)), Key: aws.String("s3clone/runs/" + id + "/run.json")})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Body.Close()
	var runRec struct{ Copy plan.Copy }
	if err := json.NewDecoder(rec.Body).Decode(&runRec); err != nil {
		t.Fatal(err)
	}
	if runRec.Copy != (plan.Copy{ACL: acl, SSEKMSKeyID: key, StorageClass: "STANDARD_IA"}) {
		t.Fatalf("the run records copy options %+v", runRec.Copy)
	}

	r = mustRun(t, env, "planner", append([]string{"plan", "--source", src, "--dest", dst, "--diff", "--dry-run"}, opts...)...)
	if want := fmt.Sprintf("%d compared, %d matching", len(objs), len(objs)); !strings.Contains(r.stdout, "would enqueue (dry run) 0 objects") || !strings.Contains(r.stdout, want) {
		t.Fatalf("a diff right after the clone:\n%s", r.stdout)
	}
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != int64(len(objs)) {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}

// TestDryRunEstimates: a dry run says what the run it would make asks of
// S3 and KMS, and what that costs: copies into GLACIER at its PUT price,
// two KMS requests a copy with --sse-kms-key-id, and the listing.
func TestDryRunEstimates(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects()[:30])
	r := mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--dry-run",
		"--storage-class", "GLACIER", "--sse-kms-key-id", "arn:aws:kms:us-east-1:111122223333:key/k")
	for _, want := range []string{"cost      $0.0009  30 PUT-class copy requests into GLACIER", "about 60 KMS requests", "ListObjectsV2 (this listing", "in all, at us-east-1 list prices"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("the dry run does not say %q:\n%s", want, r.stdout)
		}
	}
}
