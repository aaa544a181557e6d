package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/s3clone/s3clone/deploy"
	"github.com/s3clone/s3clone/test/testbed"
)

// TestOneDeniedKeyAmongAThousand: the worker's role may read every source
// object but one (as with an object another account owns, a per-object KMS
// key or a policy on its tags: S3 answers AccessDenied for that key alone,
// per the S3 user guide's "Troubleshoot access denied (403 Forbidden)
// errors"). 999 keys are copied, the run completes with that one key
// failed as access-denied and named, nothing is dead-lettered, and once
// the key is granted, status --failures --out and plan --from-file copy it.
func TestOneDeniedKeyAmongAThousand(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	key := func(i int) string { return fmt.Sprintf("img/%04d.jpg", i) }
	env.Seed(t, srcB, 1000, 0, key, func(i int) int { return 40 + i%50 })
	const theirs = "img/0517.jpg"
	work, dlq := env.Queue(t, 3)
	led := ledgerURL(t, env)
	user := testbed.Name("worker")
	env.User(t, user, user+"-secret")
	users := map[deploy.Role]string{deploy.Worker: user}
	grants := rolePolicy(t, users, map[deploy.Resource]string{
		deploy.SourceBucket: "arn:aws:s3:::" + srcB, deploy.SourceObjects: "arn:aws:s3:::" + srcB + "/*"})
	denied := mergeStatements(t, grants, fmt.Sprintf(`{"Effect":"Deny","Principal":{"AWS":[%q]},"Action":["s3:GetObject"],"Resource":"arn:aws:s3:::%s/%s"}`, user, srcB, theirs))
	env.SetPolicy(t, srcB, denied)
	env.SetPolicy(t, dstB, rolePolicy(t, users, map[deploy.Resource]string{
		deploy.DestBucket: "arn:aws:s3:::" + dstB, deploy.DestObjects: "arn:aws:s3:::" + dstB + "/*"}))
	ledger := "arn:aws:s3:::" + bucketOf(led) + "/s3clone/"
	env.SetPolicy(t, bucketOf(led), rolePolicy(t, users, map[deploy.Resource]string{
		deploy.LedgerEntries: ledger + "runs/*/done/*", deploy.LedgerWorkers: ledger + "workers/*",
		deploy.LedgerBucket: "arn:aws:s3:::" + bucketOf(led), deploy.LedgerPace: ledger + "pace/*"}))
	asWorker := func() {
		t.Helper()
		r := runAs(t, env, user, user+"-secret", "worker", "--queue-url", work, "--ledger", led, "--idle-exit", "4s",
			"--visibility-timeout", "4s", "--retry-backoff", "1s")
		if r.code != 0 {
			t.Fatalf("worker: exit %d\n%s", r.code, tail(r.stderr))
		}
	}

	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led)
	asWorker()
	st := status(t, env, led)
	if !st.Complete || st.Copied != 999 || st.Failed != 1 || len(st.Failures) != 1 {
		t.Fatalf("status %+v", st)
	}
	if f := st.Failures[0]; f.Key != theirs || f.Reason != "access-denied" {
		t.Fatalf("failure %+v, want %s access-denied", f, theirs)
	}
	if n, _ := queueDepth(env, dlq); n != 0 {
		t.Fatalf("%d messages dead-lettered for one denied key", n)
	}
	if got := len(env.Keys(t, dstB, "")); got != 999 {
		t.Fatalf("%d objects in the destination, want 999", got)
	}

	// Granted: the failure is enqueued again from the file and copied.
	env.SetPolicy(t, srcB, grants)
	file := filepath.Join(t.TempDir(), "failures.jsonl")
	mustRun(t, env, "planner", "status", "--ledger", led, "--failures", "--out", file)
	r := mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--ledger", led, "--from-file", file)
	asWorker()
	if st := status(t, env, led, "--run-id", runID(t, r.stdout)); !st.Complete || st.Copied != 1 || st.Failed != 0 {
		t.Fatalf("the repair run: status %+v", st)
	}
	if got := len(env.Keys(t, dstB, "")); got != 1000 {
		t.Fatalf("%d objects in the destination after the repair, want 1000", got)
	}
	if v, code := verify(t, env, "s3://"+srcB, "s3://"+dstB); code != 0 || v.Matching != 1000 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}

// mergeStatements adds statements (JSON objects) to a policy document.
func mergeStatements(t *testing.T, policy string, statements ...string) string {
	t.Helper()
	var doc struct {
		Version   string
		Statement []json.RawMessage
	}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range statements {
		doc.Statement = append(doc.Statement, json.RawMessage(s))
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
