package e2e

import (
	"strings"
	"testing"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestLedgerRefusalNamesTheGrant: a planner whose credentials may not read
// or write the ledger's records stops with exit 2 and names the grant the
// refused call needs, as deploy.Calls lists it on the template's keys
// (runs/*/run.json, not a hand-written runs/*). S3 answers 403 AccessDenied
// to a GetObject or PutObject a bucket policy does not allow (Amazon S3 user
// guide, "Troubleshoot access denied (403 Forbidden) errors in Amazon S3").
func TestLedgerRefusalNamesTheGrant(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "a.jpg", Body: []byte("a")}})
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led)

	user := testbed.Name("r")
	env.User(t, user, user+"-secret")
	env.Grant(t, bucketOf(led), user, "s3:ListBucket") // finds the run, may not read it
	r := runAs(t, env, user, user+"-secret", "planner", "status", "--ledger", led)
	want := "grant s3:GetObject on arn:aws:s3:::" + bucketOf(led) + "/s3clone/runs/*/run.json"
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Fatalf("status without s3:GetObject on the ledger: exit %d, want 2 with %q:\n%s", r.code, want, tail(r.stderr))
	}

	env.Grant(t, bucketOf(led), user, "s3:GetObject") // and no longer s3:ListBucket
	r = runAs(t, env, user, user+"-secret", "planner", "status", "--ledger", led)
	want = "grant s3:ListBucket on arn:aws:s3:::" + bucketOf(led) + " "
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Fatalf("status without s3:ListBucket on the ledger: exit %d, want 2 with %q:\n%s", r.code, want, tail(r.stderr))
	}
}
