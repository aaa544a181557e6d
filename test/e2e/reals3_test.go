package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/deploy"
	"github.com/s3clone/s3clone/test/testbed"
)

// TestKeysXMLCannotCarry clones keys with characters an XML 1.0 answer
// cannot carry (a control character, U+FFFE, U+FFFF) or changes (a carriage
// return comes back as a line feed), and DEL, with a fleet and in one
// process: listings ask S3 to URL-encode names, so every key is copied to
// exactly its name. U+FFFE and U+FFFF are also characters SQS refuses in a
// message (the test bed's SQS refuses them as SQS does): they travel
// escaped. Then extra keys of the same kinds in the destination are deleted
// by a diff with --delete: DeleteObjects' XML cannot carry them (the SDK
// would send U+FFFD in their place, and S3 would answer that it deleted a
// key that never existed), so they go one by one.
func TestKeysXMLCannotCarry(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB := env.Bucket(t)
	var objs []testbed.Object
	for i, k := range []string{"ctl\x01key.jpg", "cr\rkey.jpg", "del\x7fkey.jpg", "tab\tkey", "lf\nkey", "mix/\x1f\x02/a b+c%d.jpg", "plain.jpg",
		"nonchar\uFFFEkey", "nonchar\uFFFFkey"} {
		objs = append(objs, testbed.Object{Key: "odd/" + k, Body: body(i, 100)})
	}
	env.Put(t, srcB, objs)
	want := snapshot(t, env, srcB, "", false)
	if len(want) != len(objs) {
		t.Fatalf("the reference listing found %d of %d keys", len(want), len(objs))
	}
	for _, mode := range []string{"fleet", "run"} {
		t.Run(mode, func(t *testing.T) {
			dstB := env.Bucket(t)
			src, dst := "s3://"+srcB, "s3://"+dstB
			if mode == "run" {
				mustRun(t, env, "planner", "run", "--source", src, "--dest", dst)
			} else {
				work, _ := env.Queue(t, 0)
				led := ledgerURL(t, env)
				mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led)
				workers(t, env, 1, "--queue-url", work, "--ledger", led)
				if st := status(t, env, led); !st.Complete || st.Copied != int64(len(objs)) || st.Skipped != 0 || st.Failed != 0 {
					t.Fatalf("status %+v", st)
				}
			}
			sameObjects(t, want, snapshot(t, env, dstB, "", false))
			if v, code := verify(t, env, src, dst); code != 0 || v.Matching != int64(len(objs)) {
				t.Fatalf("verify %+v, exit %d", v, code)
			}
			r := mustRun(t, env, "planner", "run", "--source", src, "--dest", dst, "--diff")
			if want := fmt.Sprintf("%d compared, %d matching", len(objs), len(objs)); !strings.Contains(r.stdout, want) {
				t.Fatalf("a diff right after:\n%s", r.stdout)
			}
		})
	}

	dstB := env.Bucket(t)
	src, dst := "s3://"+srcB, "s3://"+dstB
	mustRun(t, env, "planner", "run", "--source", src, "--dest", dst)
	var extra []testbed.Object
	for i, k := range []string{"gone\x01ctl", "gone\uFFFEnonchar", "gone/\x1f/deep", "gone-plain"} {
		extra = append(extra, testbed.Object{Key: "odd/" + k, Body: body(50+i, 10)})
	}
	env.Put(t, dstB, extra)
	r := mustRun(t, env, "planner", "run", "--source", src, "--dest", dst, "--diff", "--delete")
	if !strings.Contains(r.stdout, fmt.Sprintf("deleted     %d", len(extra))) {
		t.Fatalf("a diff --delete of %d extra keys:\n%s", len(extra), r.stdout)
	}
	sameObjects(t, want, snapshot(t, env, dstB, "", false))
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != int64(len(objs)) || v.Extra != 0 {
		t.Fatalf("verify after the deletions: %+v, exit %d", v, code)
	}
}

// TestArchivedObjects: objects in GLACIER (S3 refuses to copy them until
// restored: 403 InvalidObjectState) do not stop preflight as if access were
// denied, and are reported failed as archived, with how to restore them,
// not retried into the dead-letter queue.
func TestArchivedObjects(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	for i := range 12 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("cold/%02d.jpg", i), Body: body(i, 50)})
	}
	for i := range 3 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("warm/%02d.jpg", i), Body: body(100+i, 50)})
	}
	env.Put(t, srcB, objs)
	env.Manners().Archive(srcB, "cold/")
	work, dlq := env.Queue(t, 2)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led, "--batch-keys", "5")
	workers(t, env, 1, "--queue-url", work, "--ledger", led, "--visibility-timeout", "2s", "--retry-backoff", "1s")
	st := status(t, env, led)
	if !st.Complete || st.Copied != 3 || st.Failed != 12 || st.Queue == nil || st.Queue.Visible+st.Queue.InFlight != 0 {
		t.Fatalf("status %+v queue %+v", st, st.Queue)
	}
	for _, f := range st.Failures {
		if f.Reason != "archived" {
			t.Fatalf("failure %+v, want archived", f)
		}
	}
	if n, _ := queueDepth(env, dlq); n != 0 {
		t.Fatalf("%d archived messages dead-lettered", n)
	}
	listed := run(t, env, "planner", "status", "--ledger", led, "--failures")
	if !strings.Contains(listed.stdout, "aws s3api restore-object --bucket '"+srcB+"' --key '") {
		t.Fatalf("no restore hint:\n%s", listed.stdout)
	}
}

// TestDeletedSourceReadsAsDeleted: a source object deleted after the plan,
// copied by a worker holding exactly its role's grants. S3 answers 403 for
// a missing key to a caller that may not list the bucket, which the worker
// would take for a permission problem and dead-letter; the role grants
// s3:ListBucket on the source, so the answer is 404 and the key is skipped.
func TestDeletedSourceReadsAsDeleted(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects()[:40])
	work, dlq := env.Queue(t, 2)
	led := ledgerURL(t, env)
	user := testbed.Name("worker")
	env.User(t, user, user+"-secret")
	users := map[deploy.Role]string{deploy.Worker: user}
	env.SetPolicy(t, srcB, rolePolicy(t, users, map[deploy.Resource]string{
		deploy.SourceBucket: "arn:aws:s3:::" + srcB, deploy.SourceObjects: "arn:aws:s3:::" + srcB + "/*"}))
	env.SetPolicy(t, dstB, rolePolicy(t, users, map[deploy.Resource]string{
		deploy.DestBucket: "arn:aws:s3:::" + dstB, deploy.DestObjects: "arn:aws:s3:::" + dstB + "/*"}))
	ledger := "arn:aws:s3:::" + bucketOf(led) + "/s3clone/"
	env.SetPolicy(t, bucketOf(led), rolePolicy(t, users, map[deploy.Resource]string{
		deploy.LedgerEntries: ledger + "runs/*/done/*", deploy.LedgerWorkers: ledger + "workers/*",
		deploy.LedgerBucket: "arn:aws:s3:::" + bucketOf(led), deploy.LedgerPace: ledger + "pace/*"}))

	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led)
	deleteKeys(t, env, srcB, "sub/file-003.jpg", "sub/file-017.jpg")
	r := runAs(t, env, user, user+"-secret", "worker", "--queue-url", work, "--ledger", led, "--idle-exit", "4s",
		"--visibility-timeout", "2s", "--retry-backoff", "1s")
	if r.code != 0 {
		t.Fatalf("worker: exit %d\n%s", r.code, tail(r.stderr))
	}
	st := status(t, env, led)
	if !st.Complete || st.Copied != 38 || st.Skipped != 2 || st.Failed != 0 {
		t.Fatalf("status %+v\n%s", st, tail(r.stderr))
	}
	if n, _ := queueDepth(env, dlq); n != 0 {
		t.Fatalf("%d messages dead-lettered for a deleted source object", n)
	}
}

// TestDiffConvergesForEncryptedObjects: SSE-KMS objects' ETags are not the
// MD5 of their content (and differ between a source and its copy), so a
// diff that trusted an MD5-shaped ETag re-copied every such object on every
// pass. Cloned into a destination that encrypts with SSE-KMS, a diff right
// after the clone enqueues nothing and verify passes. An SSE-C object,
// which no copy can read without its key, is reported, not fatal: verify
// and the diff go on and exit 1; the copy fails as needs-customer-key.
func TestDiffConvergesForEncryptedObjects(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	for i := range 30 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("kms/%02d.jpg", i), Body: body(i, 200)})
	}
	for i := range 10 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("plain/%02d.jpg", i), Body: body(50+i, 200)})
	}
	env.Put(t, srcB, objs)
	m := env.Manners()
	m.KMS(srcB, "kms/")
	m.KMS(dstB, "") // the destination's default encryption is SSE-KMS
	src, dst := "s3://"+srcB, "s3://"+dstB
	mustRun(t, env, "planner", "run", "--source", src, "--dest", dst)
	r := mustRun(t, env, "planner", "run", "--source", src, "--dest", dst, "--diff")
	if !strings.Contains(r.stdout, "enqueued 0 objects") || !strings.Contains(r.stdout, "40 compared, 40 matching") {
		t.Fatalf("a diff right after the clone:\n%s", r.stdout)
	}
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != 40 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}

	// An SSE-C object in the source.
	env.Put(t, srcB, []testbed.Object{{Key: "ssec/secret.bin", Body: body(99, 200)}})
	env.Put(t, dstB, []testbed.Object{{Key: "ssec/secret.bin", Body: body(98, 200)}}) // same size, another body
	m.SSEC(srcB, "ssec/")
	v, code := verify(t, env, src, dst)
	if code != 1 || v.Unknown != 1 || v.Matching != 40 {
		t.Fatalf("verify with an SSE-C object: %+v, exit %d", v, code)
	}
	r = run(t, env, "planner", "run", "--source", src, "--dest", dst, "--diff")
	if r.code != 1 || !strings.Contains(r.stdout, "ssec/secret.bin") || !strings.Contains(r.stdout, "failed      1") {
		t.Fatalf("a diff with an SSE-C object: exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr))
	}
	if !strings.Contains(r.stderr, "needs-customer-key") {
		t.Fatalf("the SSE-C copy did not fail as needs-customer-key:\n%s", tail(r.stderr))
	}
}

// TestCredentialsExpireMidRun: a worker's credentials come from a
// credential process (as an assumed role's do) and are refused as expired
// part-way through the run (S3's ExpiredToken). The worker fetches fresh
// ones and goes on: every object is copied, none reported failed.
func TestCredentialsExpireMidRun(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects())
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led, "--batch-keys", "10")

	// Two sessions of one role: the process hands out the first, then the second.
	dir := t.TempDir()
	sessions := []string{testbed.Name("session"), testbed.Name("session")}
	for _, user := range sessions {
		env.User(t, user, user+"-secret")
	}
	for _, b := range []string{srcB, dstB, bucketOf(led)} {
		env.SetPolicy(t, b, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":[%q,%q]},`+
			`"Action":["s3:ListBucket","s3:GetObject","s3:GetObjectTagging","s3:PutObject","s3:PutObjectTagging"],"Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"]}]}`,
			sessions[0], sessions[1], b, b))
	}
	script := filepath.Join(dir, "credentials.sh")
	state := filepath.Join(dir, "calls")
	expiry := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if err := os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
echo x >> %[1]s
if [ "$(wc -l < %[1]s)" -le 1 ]; then user=%[2]s; else user=%[3]s; fi
printf '{"Version":1,"AccessKeyId":"%%s","SecretAccessKey":"%%s-secret","Expiration":"%[4]s"}' "$user" "$user"
`, state, sessions[0], sessions[1], expiry)), 0o755); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config")
	if err := os.WriteFile(config, []byte("[default]\ncredential_process = "+script+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	slow := env.Slow(t, 10*time.Millisecond)
	cmd, _, stderr := command(env, "worker", "--queue-url", work, "--ledger", led, "--idle-exit", "4s", "--concurrency", "4",
		"--retry-backoff", "1s", "--visibility-timeout", "10s", "--log-level", "debug")
	var environ []string
	for _, kv := range env.EnvironFor(slow.URL) {
		if !strings.HasPrefix(kv, "AWS_ACCESS_KEY_ID=") && !strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY=") {
			environ = append(environ, kv)
		}
	}
	cmd.Env = append(environ, "AWS_CONFIG_FILE="+config, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the first hundred copies", func() bool { return strings.Count(stderr.String(), "object copied") >= 100 })
	env.Manners().Expire(sessions[0], true)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v\n%s", err, tail(stderr.String()))
	}
	st := status(t, env, led)
	if !st.Complete || st.Copied != 400 || st.Failed != 0 || st.Skipped != 0 {
		t.Fatalf("status %+v\n%s", st, tail(stderr.String()))
	}
	calls, err := os.ReadFile(state)
	if err != nil || strings.Count(string(calls), "x") < 2 {
		t.Fatalf("the credential process was called %d times; want a refresh after the expiry", strings.Count(string(calls), "x"))
	}
}

// TestCrossRegionClone: the source in one region, the destination in
// another, neither the region the binaries are configured with, and no
// region flag: each bucket answers only requests signed for its own
// region (as S3 does, with a redirect or AuthorizationHeaderMalformed).
// Plan, workers, status, a diff and verify all find the regions themselves.
func TestCrossRegionClone(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	objs := acceptanceObjects()[:100]
	objs = append(objs, testbed.Object{Key: "big/part.bin", Body: body(7, 11<<20)})
	env.Put(t, srcB, objs)
	env.Manners().Region(t, srcB, "eu-west-1")
	env.Manners().Region(t, dstB, "ap-southeast-2")
	work, _ := env.Queue(t, 2)
	led := ledgerURL(t, env)
	src, dst := "s3://"+srcB, "s3://"+dstB
	r := mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led)
	workers(t, env, 2, "--queue-url", work, "--ledger", led, "--multipart-threshold", "8MiB", "--part-size", "5MiB")
	st := status(t, env, led)
	if st.Run != runID(t, r.stdout) || !st.Complete || st.Copied != 101 || st.Failed != 0 || st.Skipped != 0 {
		t.Fatalf("status %+v", st)
	}
	if v, code := verify(t, env, src, dst); code != 0 || v.Matching != 101 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
	diff := mustRun(t, env, "planner", "run", "--source", src, "--dest", dst, "--diff")
	if !strings.Contains(diff.stdout, "enqueued 0 objects") {
		t.Fatalf("a diff right after:\n%s", diff.stdout)
	}
	// verify --ledger takes the buckets, and their regions, from the run.
	if v, code := verify(t, env, "", "", "--ledger", led); code != 0 || v.Matching != 101 {
		t.Fatalf("verify --ledger %+v, exit %d", v, code)
	}
}

// TestWrongRegionFlag: a region flag that names the wrong region is bad
// usage (exit 2, the bucket's real region named), nothing enqueued.
func TestWrongRegionFlag(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects()[:5])
	env.Manners().Region(t, dstB, "eu-west-1")
	work, _ := env.Queue(t, 0)
	r := run(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", ledgerURL(t, env),
		"--dest-region", "us-west-2")
	if r.code != 2 || !strings.Contains(r.stderr, `bucket "`+dstB+`" is in region eu-west-1`) {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if n, err := queueDepth(env, work); err != nil || n != 0 {
		t.Fatalf("%d messages enqueued (%v)", n, err)
	}
}

// TestStaleRegionInMessages: messages name a region the destination is no
// longer answered in (the plan was made, then the bucket "moved": a stale
// message, a mistaken flag). Each copy is refused once as addressed to the
// wrong region, the worker asks S3 anew and copies there: nothing fails,
// nothing is dead-lettered.
func TestStaleRegionInMessages(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects()[:40])
	env.Manners().Region(t, dstB, "eu-west-1")
	work, dlq := env.Queue(t, 2)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led)
	env.Manners().Region(t, dstB, "ap-southeast-2")
	workers(t, env, 1, "--queue-url", work, "--ledger", led)
	clonedExactly(t, env, led, dlq, srcB, dstB, 40)
}

// TestLostUploadIsCopiedAgain: a multipart copy whose upload is aborted
// under it (a lifecycle rule on the destination) is answered NoSuchUpload
// at completion. That is about the destination's upload, not the source:
// the copy is made again, not skipped as a vanished source.
func TestLostUploadIsCopiedAgain(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	objs := append(acceptanceObjects()[:5], testbed.Object{Key: "big/a.bin", Body: body(3, 11<<20)})
	env.Put(t, srcB, objs)
	env.Manners().LoseUploads(dstB, "big/")
	work, dlq := env.Queue(t, 3)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led)
	workers(t, env, 1, "--queue-url", work, "--ledger", led, "--multipart-threshold", "8MiB", "--part-size", "5MiB", "--retry-backoff", "1s")
	clonedExactly(t, env, led, dlq, srcB, dstB, 6)
}

// clonedExactly checks that a run copied all n objects, none failed or
// skipped, nothing went to the dead-letter queue, and verify matches.
func clonedExactly(t *testing.T, env *testbed.Env, led, dlq, srcB, dstB string, n int64) {
	t.Helper()
	if st := status(t, env, led); !st.Complete || st.Copied != n || st.Failed != 0 || st.Skipped != 0 {
		t.Fatalf("status %+v, want all %d copied", st, n)
	}
	if d, err := queueDepth(env, dlq); err != nil || d != 0 {
		t.Fatalf("%d messages dead-lettered (%v)", d, err)
	}
	if v, code := verify(t, env, "s3://"+srcB, "s3://"+dstB); code != 0 || int64(v.Matching) != n {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}
