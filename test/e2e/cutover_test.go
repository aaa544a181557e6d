package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/test/testbed"
)

// frozen is a clone taken while production was live, and the changes
// production made since: the state a cutover starts from.
type frozen struct {
	env                   *testbed.Env
	srcB, dstB, work, dlq string
	led                   string
	changed, added, gone  []string // keys overwritten, added and deleted in the source since
}

// clonedThenChanged clones 200 objects, then changes the source: two keys
// overwritten, two added, two deleted.
func clonedThenChanged(t *testing.T, maxReceives int) *frozen {
	t.Helper()
	env := testbed.Get(t)
	f := &frozen{env: env, srcB: env.Bucket(t), dstB: env.Bucket(t), led: ledgerURL(t, env)}
	var objs []testbed.Object
	for i := range 200 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("img/2026/%02d/%03d.jpg", i%12, i), Body: body(i, 200+i)})
	}
	env.Put(t, f.srcB, objs)
	mustRun(t, env, "planner", "run", "--source", "s3://"+f.srcB, "--dest", "s3://"+f.dstB)
	f.changed = []string{objs[10].Key, objs[20].Key}
	f.added = []string{"img/2026/new/a.jpg", "img/2026/new/b.jpg"}
	f.gone = []string{objs[30].Key, objs[40].Key}
	env.Put(t, f.srcB, []testbed.Object{
		{Key: f.changed[0], Body: body(1000, 300)}, {Key: f.changed[1], Body: body(1001, 300)},
		{Key: f.added[0], Body: body(1002, 300)}, {Key: f.added[1], Body: body(1003, 300)},
	})
	deleteKeys(t, env, f.srcB, f.gone...)
	f.work, f.dlq = env.Queue(t, maxReceives)
	return f
}

func (f *frozen) cutoverArgs(extra ...string) []string {
	return append([]string{"cutover", "--source", "s3://" + f.srcB, "--dest", "s3://" + f.dstB,
		"--queue-url", f.work, "--ledger", f.led, "--batch-keys", "2"}, extra...)
}

// worker starts a worker on the frozen run's queue until the test ends.
func (f *frozen) worker(t *testing.T, extra ...string) {
	t.Helper()
	cmd, _, stderr := command(f.env, "worker", append([]string{"--queue-url", f.work, "--ledger", f.led,
		"--visibility-timeout", "2s", "--retry-backoff", "1s"}, extra...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("worker log:\n%s", tail(stderr.String()))
		}
	})
}

// records reads a reconciliation file into key -> problem.
func records(t *testing.T, path string) map[string]string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var r struct{ Key, Problem string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("reconciliation line %q: %v", sc.Text(), err)
		}
		out[r.Key] = r.Problem
	}
	return out
}

// TestCutoverClean: with a worker running, the cutover copies the changed
// and added keys, deletes the deleted ones, and exits 0 with its timings;
// --verify then compares every key; the destination matches the source.
func TestCutoverClean(t *testing.T) {
	t.Parallel()
	f := clonedThenChanged(t, 3)
	f.worker(t)
	r := run(t, f.env, "planner", f.cutoverArgs("--verify")...)
	if r.code != 0 {
		t.Fatalf("cutover exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr))
	}
	for _, want := range []string{"enqueued 4 objects", "deletes   2 destination objects", "messages done: 4 copied, 2 deleted, 0 skipped, 0 failed",
		"verdict   clean", "verify ", "(200 keys)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cutover output lacks %q:\n%s", want, r.stdout)
		}
	}
	if m := regexp.MustCompile(`fleet     (\d+) of (\d+) messages done`).FindStringSubmatch(r.stdout); m == nil || m[1] != m[2] {
		t.Errorf("not every message done: %v", m)
	}
	if v, code := verify(t, f.env, "s3://"+f.srcB, "s3://"+f.dstB); code != 0 || v.Matching != 200 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
	// Nothing left to do: a second cutover sends nothing and is clean at once.
	again := run(t, f.env, "planner", f.cutoverArgs()...)
	if again.code != 0 || !strings.Contains(again.stdout, "enqueued 0 objects") || !strings.Contains(again.stdout, "verdict   clean") {
		t.Fatalf("second cutover exit %d:\n%s\n%s", again.code, again.stdout, tail(again.stderr))
	}
}

// TestCutoverNamesWhatChangedInTheWindow: a source object overwritten and
// another deleted after the cutover listed them (production not quite
// frozen) cannot be copied as listed: the cutover exits 1 and names both,
// with a reconciliation file of what is still different. A rehearsal of
// the same takes them for what production does while live, and exits 0.
func TestCutoverNamesWhatChangedInTheWindow(t *testing.T) {
	t.Parallel()
	for _, rehearse := range []bool{false, true} {
		t.Run(fmt.Sprintf("rehearse=%v", rehearse), func(t *testing.T) {
			t.Parallel()
			f := clonedThenChanged(t, 3)
			out := filepath.Join(t.TempDir(), "not-right.jsonl")
			args := f.cutoverArgs("--out", out)
			if rehearse {
				args = append(args, "--rehearse")
			}
			cmd, stdout, stderr := command(f.env, "planner", args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			// No worker yet: once the plan is sent, production "writes".
			waitFor(t, 30*time.Second, "the cutover's plan", func() bool { return strings.Contains(stdout.String(), "diff      ") })
			f.env.Put(t, f.srcB, []testbed.Object{{Key: f.changed[0], Body: body(2000, 400)}})
			deleteKeys(t, f.env, f.srcB, f.added[1])
			f.worker(t)
			err := cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if rehearse {
				if err != nil || !strings.Contains(stdout.String(), "2 keys changed while production was live") || !strings.Contains(stdout.String(), "rehearsal this delta") {
					t.Fatalf("rehearsal exit %d:\n%s\n%s", code, stdout.String(), tail(stderr.String()))
				}
				return
			}
			if code != 1 {
				t.Fatalf("cutover exit %d, want 1:\n%s\n%s", code, stdout.String(), tail(stderr.String()))
			}
			o := stdout.String()
			if !strings.Contains(o, "verdict   NOT CLEAN: 2 keys") || !strings.Contains(o, f.changed[0]+"\tchanged") || !strings.Contains(o, f.added[1]+"\tvanished") {
				t.Fatalf("cutover output does not name both keys:\n%s", o)
			}
			// The overwritten key still differs; the deleted one is in
			// neither bucket now (right, though not as listed).
			recs := records(t, out)
			if len(recs) != 1 || recs[f.changed[0]] != "different" {
				t.Fatalf("reconciliation file %v, want %s different", recs, f.changed[0])
			}
			// The verdict and the file are in the ledger too (a cutover run as
			// an ECS task loses its files), and status shows them to anyone.
			id := runID(t, o)
			st := mustRun(t, f.env, "planner", "status", "--ledger", f.led, "--run-id", id, "--json")
			var sv struct {
				Verdict *struct {
					Mode     string `json:"mode"`
					Clean    bool   `json:"clean"`
					NotRight int    `json:"not_right"`
				} `json:"verdict"`
				ReconURL string `json:"recon_url"`
			}
			if err := json.Unmarshal([]byte(st.stdout), &sv); err != nil || sv.Verdict == nil || sv.Verdict.Clean || sv.Verdict.NotRight != 2 || sv.Verdict.Mode != "cutover" {
				t.Fatalf("status of the cutover's run: %v %+v\n%s", err, sv.Verdict, st.stdout)
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			reconKey := strings.TrimPrefix(sv.ReconURL, "s3://"+bucketOf(f.led)+"/")
			if got := string(getBody(t, f.env, bucketOf(f.led), reconKey)); reconKey != "s3clone/runs/"+id+"/results/recon.jsonl" || got != string(want) {
				t.Fatalf("the ledger's reconciliation file (%s):\n%s\nwant --out's:\n%s", sv.ReconURL, got, want)
			}
			if text := mustRun(t, f.env, "planner", "status", "--ledger", f.led, "--run-id", id); !strings.Contains(text.stdout, "verdict     cutover NOT CLEAN: 2 keys") {
				t.Errorf("status does not show the verdict:\n%s", text.stdout)
			}
			// The file enqueues exactly the fix.
			mustRun(t, f.env, "planner", "plan", "--source", "s3://"+f.srcB, "--dest", "s3://"+f.dstB, "--queue-url", f.work, "--ledger", f.led, "--from-file", out, "--delete")
			waitFor(t, 30*time.Second, "the fix copied", func() bool {
				_, code := verify(t, f.env, "s3://"+f.srcB, "s3://"+f.dstB)
				return code == 0
			})
		})
	}
}

// cutoverWithOneBadKey is a cutover with a worker, after a source key was
// added whose prefix manner makes S3 refuse it; it returns the frozen run,
// the cutover's result and its reconciliation file.
func cutoverWithOneBadKey(t *testing.T, key string, manner func(m *testbed.Manners, bucket, prefix string)) (*frozen, result, string) {
	t.Helper()
	f := clonedThenChanged(t, 3)
	f.env.Put(t, f.srcB, []testbed.Object{{Key: key, Body: body(3000, 100)}})
	manner(f.env.Manners(), f.srcB, key[:strings.IndexByte(key, '/')+1])
	f.worker(t)
	out := filepath.Join(t.TempDir(), "not-right.jsonl")
	return f, run(t, f.env, "planner", f.cutoverArgs("--out", out)...), out
}

// TestCutoverNamesAFailedCopy: a key S3 refuses to copy (archived) fails
// the cutover, named with its reason, while everything else is done.
func TestCutoverNamesAFailedCopy(t *testing.T) {
	t.Parallel()
	_, r, out := cutoverWithOneBadKey(t, "cold/archived.jpg", (*testbed.Manners).Archive)
	if r.code != 1 || !strings.Contains(r.stdout, "cold/archived.jpg\tarchived (InvalidObjectState)\tnow: missing") ||
		!strings.Contains(r.stdout, "NOT CLEAN: 1 keys") {
		t.Fatalf("cutover exit %d, want 1 naming the archived key:\n%s\n%s", r.code, r.stdout, tail(r.stderr))
	}
	if recs := records(t, out); len(recs) != 1 || recs["cold/archived.jpg"] != "missing" {
		t.Fatalf("reconciliation file %v", recs)
	}
}

// TestCutoverNamesAKeyItCannotLookAt: a key whose source cannot be read
// at the verdict (SSE-C, whose key the fleet does not have) is named with
// what S3 says now ("cannot tell"), and its reconciliation record is the
// one the fleet reported (failed, with the listed ETag), which plan
// --from-file takes.
func TestCutoverNamesAKeyItCannotLookAt(t *testing.T) {
	t.Parallel()
	f, r, out := cutoverWithOneBadKey(t, "vault/secret.jpg", (*testbed.Manners).SSEC)
	line := regexp.MustCompile(`(?m)^.*vault/secret\.jpg\t.*$`).FindString(r.stdout)
	if r.code != 1 || !strings.Contains(r.stdout, "NOT CLEAN: 1 keys") || !strings.Contains(line, "needs-customer-key (InvalidRequest)\tnow: cannot tell (head ") ||
		!strings.Contains(line, "HeadObject") || strings.Contains(line, "; now:") {
		t.Fatalf("cutover exit %d, want 1 naming the unreadable key with what S3 says now:\n%s\n%s", r.code, r.stdout, tail(r.stderr))
	}
	if recs := records(t, out); len(recs) != 1 || recs["vault/secret.jpg"] != "failed" {
		t.Fatalf("reconciliation file %v, want the listed record of vault/secret.jpg", recs)
	}
	// Pinned to the ETag the plan listed.
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Src struct{ ETag string } `json:"src"`
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Src.ETag != *f.env.Keys(t, f.srcB, "vault/")["vault/secret.jpg"].ETag {
		t.Fatalf("reconciliation record %s (%v), want the listed ETag", data, err)
	}
	dry := run(t, f.env, "planner", "plan", "--source", "s3://"+f.srcB, "--dest", "s3://"+f.dstB, "--from-file", out, "--dry-run")
	if dry.code != 0 || !strings.Contains(dry.stdout, "would enqueue (dry run) 1 objects") {
		t.Fatalf("plan --from-file of the reconciliation file: exit %d\n%s\n%s", dry.code, dry.stdout, tail(dry.stderr))
	}
}

// TestCutoverEndsWhenTheRunCannotFinish: a message the workers may not do
// (the destination refuses them) goes to the dead-letter queue; the cutover
// notices the run cannot finish, exits 1 and names the message's keys,
// rather than wait for ever. --timeout bounds a wait with no fleet at all.
func TestCutoverEndsWhenTheRunCannotFinish(t *testing.T) {
	t.Parallel()
	f := clonedThenChanged(t, 1)
	user := testbed.Name("worker")
	f.env.User(t, user, user+"-secret")
	f.env.Grant(t, f.srcB, user, "s3:GetObject", "s3:ListBucket")
	f.env.Grant(t, f.dstB, user, "s3:ListBucket") // no s3:PutObject: every copy is refused
	f.env.Grant(t, bucketOf(f.led), user, "s3:PutObject", "s3:GetObject", "s3:ListBucket")
	cmd, _, stderr := command(f.env, "worker", "--queue-url", f.work, "--ledger", f.led, "--visibility-timeout", "2s", "--retry-backoff", "1s")
	cmd.Env = f.env.EnvironAs(user, user+"-secret")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	r := run(t, f.env, "planner", f.cutoverArgs()...)
	if r.code != 1 || !strings.Contains(r.stdout, "dead-letter queue") || !strings.Contains(r.stdout, f.added[0]+"\tnot finished (message") {
		t.Fatalf("cutover exit %d, want 1 naming the dead-lettered keys:\n%s\n%s\nworker:\n%s", r.code, r.stdout, tail(r.stderr), tail(stderr.String()))
	}

	g := clonedThenChanged(t, 3)
	started := time.Now()
	r = run(t, g.env, "planner", g.cutoverArgs("--timeout", "2s")...)
	if r.code != 1 || !strings.Contains(r.stdout, "--timeout 2s") || !strings.Contains(r.stdout, "not finished") {
		t.Fatalf("cutover with no fleet and --timeout 2s: exit %d\n%s", r.code, r.stdout)
	}
	if took := time.Since(started); took > 60*time.Second {
		t.Errorf("took %s", took)
	}
}

// TestCutoverBadInput: what it cannot start with is refused with exit 2,
// and nothing is sent.
func TestCutoverBadInput(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--source", "s3://" + src, "--dest", "s3://" + dst, "--ledger", led}, "--queue-url is required"},
		{[]string{"--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work}, "--ledger is required"},
		{[]string{"--source", "s3://" + src, "--dest", "s3://" + src, "--queue-url", work, "--ledger", led}, "source and destination are both"},
		{[]string{"--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led, "--timeout", "-1s"}, "--timeout -1s: must be positive"},
		{[]string{"--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led, "--out", "/no/such/dir/x.jsonl"}, "--out /no/such/dir/x.jsonl: its directory does not exist"},
		{[]string{"--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led, "--rehearse", "--verify"}, "--verify with --rehearse"},
		{[]string{"--source", "s3://no-such-bucket-here", "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led}, "no-such-bucket-here"},
	} {
		r := run(t, env, "planner", append([]string{"cutover"}, c.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("cutover %v: exit %d, want 2 with %q:\n%s", c.args, r.code, c.want, r.stderr)
		}
	}
	if d, err := queueDepth(env, work); err != nil || d != 0 {
		t.Errorf("%d messages sent (%v)", d, err)
	}
}
