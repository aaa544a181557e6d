package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestAccessDeniedGoesToTheDeadLetterQueue: a worker that may read the
// source but not write the destination says what to grant, records nothing,
// deletes nothing, and the message ends in the dead-letter queue; once the
// permission is granted, planner redrive moves it back and it is done.
func TestAccessDeniedGoesToTheDeadLetterQueue(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "a.jpg", Body: []byte("a")}, {Key: "b.jpg", Body: []byte("b")}})
	work, dlq := env.Queue(t, 2)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led)

	user := testbed.Name("w")
	env.User(t, user, user+"-secret")
	env.Grant(t, src, user, "s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging")
	env.Grant(t, dst, user, "s3:ListBucket")
	env.Grant(t, bucketOf(led), user, "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket") // entries, and the fleet's rates (pace/)
	cmd := exec.Command(filepath.Join(bin, "worker"), "--queue-url", work, "--ledger", led,
		"--visibility-timeout", "2s", "--retry-backoff", "1s", "--idle-exit", "6s")
	cmd.Env = env.EnvironAs(user, user+"-secret")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("worker: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "s3:PutObject and s3:PutObjectTagging on arn:aws:s3:::"+dst+"/a.jpg") {
		t.Fatalf("the worker did not say what to grant:\n%s", out)
	}
	waitFor(t, 20*time.Second, "the message in the dead-letter queue", func() bool {
		n, err := queueDepth(env, dlq)
		return err == nil && n == 1
	})
	if n, _ := queueDepth(env, work); n != 0 {
		t.Fatalf("%d messages left on the work queue", n)
	}
	if st := status(t, env, led); st.Messages != 0 || st.Failed != 0 {
		t.Fatalf("blocked work was reported: %+v", st)
	}
	// A watch cannot wait for this run to complete: it says it stalled, and why.
	watch := run(t, env, "planner", "status", "--ledger", led, "--watch", "1s")
	if watch.code != 1 || !regexp.MustCompile(`eta +stalled`).MatchString(watch.stdout) || !strings.Contains(watch.stderr, "1 messages are in its dead-letter queue") {
		t.Fatalf("status --watch on a stalled run: exit %d\n%s\n%s", watch.code, watch.stdout, watch.stderr)
	}

	// The operator grants the permission and redrives: the work is done.
	env.Grant(t, dst, user, "s3:ListBucket", "s3:PutObject", "s3:PutObjectTagging")
	// The ledger names the run's work queue, and that queue its dead letters.
	r := mustRun(t, env, "planner", "redrive", "--ledger", led)
	if !strings.Contains(r.stdout, "moved 1 messages from "+dlq+" to "+work) || !strings.Contains(r.stdout, "dropped 0") {
		t.Fatalf("redrive: %s", r.stdout)
	}
	if n, _ := queueDepth(env, dlq); n != 0 {
		t.Fatalf("%d messages left in the dead-letter queue", n)
	}
	cmd = exec.Command(filepath.Join(bin, "worker"), "--queue-url", work, "--ledger", led, "--idle-exit", "3s")
	cmd.Env = env.EnvironAs(user, user+"-secret")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("worker after the fix: %v\n%s", err, out)
	}
	if st := status(t, env, led); !st.Complete || st.Copied != 2 {
		t.Fatalf("after the redrive: %+v", st)
	}
	if v, code := verify(t, env, "s3://"+src, "s3://"+dst); code != 0 || v.Matching != 2 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}
