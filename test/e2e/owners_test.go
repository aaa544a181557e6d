package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestRequesterPaysAndBucketOwners: the source is a Requester Pays bucket
// of account 111111111111 and the destination belongs to 222222222222 (the
// test bed's Manners refuses, as S3 does, a request to a Requester Pays
// bucket that does not say the requester pays, and one that expects another
// owner than the bucket's). Without --request-payer the plan stops at its
// preflight, exit 2, saying so; with it and both owners, a fleet clones the
// bucket (a copy in parts included) and a diff and verify agree; a
// --dest-owner naming another account is refused before anything is done.
func TestRequesterPaysAndBucketOwners(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	objs := acceptanceObjects()[:40]
	objs = append(objs, testbed.Object{Key: "big/blob.bin", Body: bytes.Repeat([]byte("s3clone!"), 6<<20/8)})
	env.Put(t, srcB, objs)
	m := env.Manners()
	m.Owner(srcB, "111111111111")
	m.Owner(dstB, "222222222222")
	m.RequesterPays(srcB)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	src, dst := "s3://"+srcB, "s3://"+dstB

	r := run(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led)
	if r.code != 2 || !strings.Contains(r.stderr, "--request-payer") {
		t.Fatalf("a plan of a Requester Pays source without --request-payer: exit %d\n%s", r.code, tail(r.stderr))
	}
	r = run(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--request-payer", "--dest-owner", "333333333333")
	if r.code != 2 || !strings.Contains(r.stderr, "--dest-owner") {
		t.Fatalf("a plan naming another owner of the destination: exit %d\n%s", r.code, tail(r.stderr))
	}
	if n, _ := queueDepth(env, work); n != 0 {
		t.Fatalf("%d messages enqueued by refused plans", n)
	}

	owners := []string{"--request-payer", "--source-owner", "111111111111", "--dest-owner", "222222222222"}
	m.Unchecked(srcB)
	m.Unchecked(dstB)
	r = mustRun(t, env, "planner", append([]string{"plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led}, owners...)...)
	// The workers take the owners and the payer from the messages.
	workers(t, env, 1, "--queue-url", work, "--ledger", led, "--multipart-threshold", "5MiB", "--part-size", "5MiB")
	// Every request the plan and the fleet made said who owns each bucket.
	if n, d := m.Unchecked(srcB), m.Unchecked(dstB); n != 0 || d != 0 {
		t.Fatalf("%d requests to the source and %d to the destination did not say their bucket's owner", n, d)
	}
	if st := status(t, env, led, "--run-id", runID(t, r.stdout)); !st.Complete || st.Copied != int64(len(objs)) || st.Failed != 0 {
		t.Fatalf("status %+v", st)
	}
	r = mustRun(t, env, "planner", append([]string{"plan", "--source", src, "--dest", dst, "--diff", "--dry-run"}, owners...)...)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d compared, %d matching", len(objs), len(objs))) {
		t.Fatalf("a diff right after the clone:\n%s", r.stdout)
	}
	if v, code := verify(t, env, src, dst, owners...); code != 0 || v.Matching != int64(len(objs)) {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
	if r := run(t, env, "planner", "verify", "--source", src, "--dest", dst); r.code == 0 || !strings.Contains(r.stderr, "AccessDenied") {
		t.Fatalf("verify of a Requester Pays source without --request-payer: exit %d\n%s", r.code, tail(r.stderr))
	}
}
