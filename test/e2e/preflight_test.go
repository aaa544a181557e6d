package e2e

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestPreflightNamesTheMissingPermission runs plan as a user who lacks one
// permission at a time, the ledger's included: each stops it before
// anything is enqueued, with exit code 2 and a message naming the
// permission and the resource.
func TestPreflightNamesTheMissingPermission(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	// The source's website and Object Lock settings say what the copies
	// must carry that S3 does not copy.
	settings := []string{"s3:GetBucketWebsite", "s3:GetBucketObjectLockConfiguration"}
	read := append([]string{"s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging"}, settings...)
	write := []string{"s3:ListBucket", "s3:PutObject", "s3:PutObjectTagging"}
	record := []string{"s3:ListBucket", "s3:GetObject", "s3:PutObject"}
	cases := []struct {
		name             string
		src, dst, ledger []string
		wantGrant        string
		on               string // src, dst or ledger
	}{
		{"no tag reading on the source", append([]string{"s3:ListBucket", "s3:GetObject"}, settings...), write, record, "s3:GetObjectTagging", "src"},
		// Not a refusal: every object's redirect is read instead (below).
		{"no reading the source's website configuration", []string{"s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging", "s3:GetBucketObjectLockConfiguration"}, write, record, "", ""},
		{"no writing to the destination", read, []string{"s3:ListBucket"}, record, "s3:PutObject", "dst"},
		{"no writing to the ledger", read, write, []string{"s3:ListBucket", "s3:GetObject"}, "s3:PutObject", "ledger"},
		{"no listing the ledger", read, write, []string{"s3:PutObject"}, "s3:ListBucket", "ledger"},
		{"everything granted", read, write, record, "", ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, dst := env.Bucket(t), env.Bucket(t)
			env.Put(t, src, []testbed.Object{{Key: "photos/a.jpg", Body: []byte("a"), Tagging: "k=v"}})
			user := testbed.Name("u")
			env.User(t, user, user+"-secret")
			env.Grant(t, src, user, c.src...)
			env.Grant(t, dst, user, c.dst...)
			led := ledgerURL(t, env)
			env.Grant(t, bucketOf(led), user, c.ledger...)
			work, _ := env.Queue(t, 0)

			cmd := exec.Command(filepath.Join(bin, "planner"), "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led)
			cmd.Env = env.EnvironAs(user, user+"-secret")
			out, err := cmd.CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			}
			n, qerr := queueDepth(env, work)
			if qerr != nil {
				t.Fatal(qerr)
			}
			if c.wantGrant == "" {
				// The plan ran: one batch, and the preflight probe the workers drop.
				if code != 0 || n != 2 {
					t.Fatalf("case %d: exit %d, %d messages\n%s", i, code, n, out)
				}
				if !slices.Contains(c.src, "s3:GetBucketWebsite") && !strings.Contains(string(out), "cannot read the website configuration of s3://"+src) {
					t.Fatalf("a source whose website configuration cannot be read, and no word of it:\n%s", out)
				}
				return
			}
			resource := map[string]string{
				"src": "arn:aws:s3:::" + src + "/photos/a.jpg", "dst": "arn:aws:s3:::" + dst + "/photos/a.jpg",
				"ledger": "arn:aws:s3:::" + bucketOf(led),
			}[c.on]
			if code != 2 || !strings.Contains(string(out), c.wantGrant) || !strings.Contains(string(out), resource) {
				t.Fatalf("exit %d, output:\n%s\nwant exit 2 naming %s on %s", code, out, c.wantGrant, resource)
			}
			if n != 0 {
				t.Fatalf("a failed preflight left %d messages on the queue", n)
			}
			if c.on == "ledger" {
				if keys := env.Keys(t, bucketOf(led), ""); len(keys) != 0 {
					t.Fatalf("a ledger that cannot be used holds %v", keys)
				}
			}
		})
	}
}

// TestPreflightGoesOnWithoutACopyableSample: a sample that fails for a
// reason other than access (here a folder marker versitygw will not copy)
// proves nothing, so the plan goes ahead with a warning.
func TestPreflightGoesOnWithoutACopyableSample(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "only-a-folder/"}})
	work, _ := env.Queue(t, 0)
	r := mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", ledgerURL(t, env))
	if !strings.Contains(r.stdout, "enqueued 1 objects") || !strings.Contains(r.stderr, "write permissions are unconfirmed") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

// TestPreflightRefusesDeletesItMayNotMake: a plan that deletes (plan
// --diff --delete, and the cutover by default) proves first that it may,
// with a conditional delete of a key that is not there (S3 allows a delete
// conditional on the ETag only with s3:DeleteObject and s3:GetObject).
// Without the grant it exits 2 before anything is enqueued, instead of
// dead-lettering deletes minutes into the window; nothing is deleted
// either way.
func TestPreflightRefusesDeletesItMayNotMake(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	read := []string{"s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging", "s3:GetBucketWebsite", "s3:GetBucketObjectLockConfiguration"}
	write := []string{"s3:ListBucket", "s3:GetBucketWebsite", "s3:GetBucketObjectLockConfiguration", "s3:PutObject", "s3:PutObjectTagging"}
	cases := []struct {
		name     string
		dst      []string
		args     []string
		wantCode int
	}{
		{"plan --delete without s3:DeleteObject", append(slices.Clone(write), "s3:GetObject"), []string{"plan", "--diff", "--delete"}, 2},
		{"plan --delete without s3:GetObject", append(slices.Clone(write), "s3:DeleteObject"), []string{"plan", "--diff", "--delete"}, 2},
		{"cutover (deletes by default) without s3:DeleteObject", append(slices.Clone(write), "s3:GetObject"), []string{"cutover", "--timeout", "1s"}, 2},
		{"plan --delete with both", append(slices.Clone(write), "s3:GetObject", "s3:DeleteObject"), []string{"plan", "--diff", "--delete"}, 0},
		{"plan --diff without --delete needs neither", write, []string{"plan", "--diff"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, dst := env.Bucket(t), env.Bucket(t)
			env.Put(t, src, []testbed.Object{{Key: "a.jpg", Body: []byte("a")}})
			env.Put(t, dst, []testbed.Object{{Key: "extra.jpg", Body: []byte("x")}})
			user := testbed.Name("u")
			env.User(t, user, user+"-secret")
			env.Grant(t, src, user, read...)
			env.Grant(t, dst, user, c.dst...)
			led := ledgerURL(t, env)
			env.Grant(t, bucketOf(led), user, "s3:ListBucket", "s3:GetObject", "s3:PutObject")
			work, _ := env.Queue(t, 0)

			args := append(slices.Clone(c.args), "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led)
			r := runAs(t, env, user, user+"-secret", "planner", args...)
			out, code := r.stdout+r.stderr, r.code
			n, qerr := queueDepth(env, work)
			if qerr != nil {
				t.Fatal(qerr)
			}
			if _, ok := env.Keys(t, dst, "")["extra.jpg"]; !ok {
				t.Fatalf("the preflight deleted a destination object\n%s", out)
			}
			if c.wantCode == 0 {
				if code != 0 || n == 0 {
					t.Fatalf("exit %d, %d messages enqueued\n%s", code, n, out)
				}
				return
			}
			if code != c.wantCode || !strings.Contains(string(out), "grant s3:DeleteObject and s3:GetObject on arn:aws:s3:::"+dst+"/*") ||
				!strings.Contains(string(out), "--no-delete") {
				t.Fatalf("exit %d, want %d naming the delete grants and the way out\n%s", code, c.wantCode, out)
			}
			if n != 0 {
				t.Fatalf("a refused preflight left %d messages on the queue", n)
			}
		})
	}
}
