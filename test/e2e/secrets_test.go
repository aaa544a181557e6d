package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestNoCredentialsInLogsOrTheLedger runs plan, a worker, status and verify
// at debug level, with a failure among the copies so that AWS errors are
// logged and recorded, and scans everything they wrote (the ledger's
// records included) for the credentials and for request signatures.
func TestNoCredentialsInLogsOrTheLedger(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, acceptanceObjects()[:20])
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	var outputs []string
	keep := func(r result) { outputs = append(outputs, r.stdout, r.stderr) }

	keep(mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--log-level", "debug"))
	env.Put(t, src, []testbed.Object{{Key: "sub/file-000.jpg", Body: []byte("changed after planning")}}) // a 412, logged and recorded
	for _, r := range workers(t, env, 1, "--queue-url", work, "--ledger", led, "--log-level", "debug") {
		keep(r)
	}
	keep(mustRun(t, env, "planner", "status", "--ledger", led, "--json", "--log-level", "debug"))
	keep(mustRun(t, env, "planner", "status", "--ledger", led, "--failures", "--log-level", "debug"))
	ledgerObjects := 0
	for key := range env.Keys(t, bucketOf(led), "") {
		outputs = append(outputs, key, string(getBody(t, env, bucketOf(led), key)))
		ledgerObjects++
	}
	if ledgerObjects < 3 {
		t.Fatalf("the ledger holds %d objects: the scan would prove nothing", ledgerObjects)
	}
	file := filepath.Join(t.TempDir(), "recon.jsonl")
	keep(run(t, env, "planner", "verify", "--source", "s3://"+src, "--dest", "s3://"+dst, "--out", file, "--log-level", "debug"))
	recon, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(recon))

	// versitygw refuses session tokens, so a run with one fails: its error
	// paths must not print the token either.
	const token = "s3clone-session-token-do-not-log"
	cmd, out, stderr := command(env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--log-level", "debug")
	cmd.Env = append(cmd.Env, "AWS_SESSION_TOKEN="+token)
	if err := cmd.Run(); err == nil {
		t.Fatal("a plan with a token versitygw refuses succeeded")
	}
	outputs = append(outputs, out.String(), stderr.String())

	all := strings.Join(outputs, "\n")
	if !strings.Contains(all, "PreconditionFailed") {
		t.Fatal("the scan saw no AWS error: the failure case did not run")
	}
	for _, secret := range []string{testbed.SecretKey, testbed.AccessKey, token, "Signature=", "X-Amz-Signature", "Authorization", "Credential=", "X-Amz-Security-Token"} {
		if strings.Contains(all, secret) {
			i := strings.Index(all, secret)
			t.Errorf("%q appears in the output: …%s…", secret, all[max(0, i-80):min(len(all), i+80)])
		}
	}
}
