// Package e2e runs the planner and worker binaries as an operator would,
// against versitygw and local-aws-sqs, and checks the clones object by object.
package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/test/testbed"
)

func body(i, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return append([]byte(fmt.Sprintf("object %d\n", i)), b...)
}

// acceptanceObjects is the original acceptance test's bucket: 400 files,
// half under "sub/", a quarter of all under "<0-4>/sub/", the rest at the top.
func acceptanceObjects() []testbed.Object {
	var objs []testbed.Object
	for i := range 400 {
		var key string
		switch {
		case i < 200:
			key = fmt.Sprintf("sub/file-%03d.jpg", i)
		case i < 300:
			key = fmt.Sprintf("%d/sub/file-%03d.jpg", i%5, i)
		default:
			key = fmt.Sprintf("file-%03d.jpg", i)
		}
		objs = append(objs, testbed.Object{Key: key, Body: body(i, 100+i*7), ContentType: "image/jpeg"})
	}
	return objs
}

func TestAcceptanceWithAFleet(t *testing.T) {
	t.Parallel()
	for _, server := range []string{"versitygw", "moto"} {
		t.Run(server, func(t *testing.T) {
			t.Parallel()
			env := testbed.Get(t)
			if server == "moto" {
				env = env.Moto(t)
			}
			acceptanceWithAFleet(t, env)
		})
	}
}

// acceptanceWithAFleet is the acceptance test on env's S3 and SQS.
func acceptanceWithAFleet(t *testing.T, env *testbed.Env) {
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, acceptanceObjects())
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)

	plan := mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led)
	if !strings.Contains(plan.stdout, "enqueued 400 objects") {
		t.Fatalf("plan summary:\n%s", plan.stdout)
	}
	workers(t, env, 2, "--queue-url", work, "--ledger", led)

	sameObjects(t, snapshot(t, env, src, "", true), snapshot(t, env, dst, "", true))
	st := status(t, env, led)
	if st.Run != runID(t, plan.stdout) || !st.Complete || st.Copied != 400 || st.Failed != 0 || st.Planned == nil || st.Planned.Objects != 400 {
		t.Fatalf("status %+v", st)
	}
}

func TestAcceptanceInOneProcess(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, acceptanceObjects())
	r := mustRun(t, env, "planner", "run", "--source", "s3://"+src, "--dest", "s3://"+dst)
	for _, want := range []string{"enqueued 400 objects", "copied      400 objects", "failed      0", "eta         complete"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("run output lacks %q:\n%s", want, r.stdout)
		}
	}
	sameObjects(t, snapshot(t, env, src, "", true), snapshot(t, env, dst, "", true))
}

// TestFiveThousandObjectsTwoWorkers: a planner and two worker processes;
// both workers take part and status counts every object exactly once.
func TestFiveThousandObjectsTwoWorkers(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	var total int64
	for i := range 5000 {
		o := testbed.Object{Key: fmt.Sprintf("p%d/%02d/obj-%05d.bin", i%7, i%13, i), Body: body(i, 1+i%2048)}
		if i%500 == 0 {
			o.Key = fmt.Sprintf("top-%05d.bin", i) // objects at the top level too
		}
		total += int64(len(o.Body))
		objs = append(objs, o)
	}
	env.Put(t, src, objs)
	work, dlq := env.Queue(t, 5)
	led := ledgerURL(t, env)

	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--batch-keys", "50")
	workers(t, env, 2, "--queue-url", work, "--ledger", led, "--concurrency", "64")

	sameObjects(t, snapshot(t, env, src, "", false), snapshot(t, env, dst, "", false))
	for range 2 { // a second status run, from the bundles, gives the same totals
		st := status(t, env, led)
		// At most 50 keys a message: 100 or more messages (the linger may
		// send a partial one while the listing is slow), each counted once.
		if !st.Complete || st.Copied != 5000 || st.Bytes != total || st.Planned.Messages < 100 || st.Messages != st.Planned.Messages || st.Planned.Bytes != total || st.Workers != 2 {
			t.Fatalf("status %+v planned %+v", st, st.Planned)
		}
		if st.Queue == nil || st.Queue.Visible+st.Queue.InFlight != 0 || st.Queue.DeadLettered == nil || *st.Queue.DeadLettered != 0 {
			t.Fatalf("queue %+v", st.Queue)
		}
	}
	_ = dlq
}

// awkwardObjects have keys S3 allows and naive code breaks on, full headers,
// metadata and tags, and one object above a lowered multipart threshold.
func awkwardObjects(prefix string) []testbed.Object {
	keys := []string{
		"with space.txt", "plus+sign.txt", "percent%20literal.txt", "question?.txt", "hash#tag.txt",
		"ünïcødé/日本語.txt", "emoji-🚀.txt", "double//slash.txt", "dir/sub dir/deep+er/x.txt",
		"quote'and\"dquote.txt", "amp&eq=.txt", "tilde~.txt", "brackets[1](2){3}.txt",
	}
	var objs []testbed.Object
	for i, k := range keys {
		objs = append(objs, testbed.Object{
			Key: prefix + k, Body: body(i, 300), ContentType: "text/plain; charset=utf-8", CacheControl: "max-age=60",
			Metadata: map[string]string{"owner": "ops", "index": fmt.Sprint(i)}, Tagging: "team=photo&idx=" + fmt.Sprint(i),
		})
	}
	// A trailing "/" marks a folder: zero bytes (versitygw allows no data there).
	objs = append(objs, testbed.Object{Key: prefix + "folder/", ContentType: "application/x-directory"})
	objs = append(objs, testbed.Object{
		Key: prefix + "big/video.mp4", Body: body(99, 13<<20), ContentType: "video/mp4", CacheControl: "no-cache",
		Metadata: map[string]string{"camera": "a7"}, Tagging: "kind=video",
	})
	return objs
}

func TestAwkwardKeysAndEveryProperty(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, awkwardObjects("data/"))
	env.Put(t, src, []testbed.Object{{Key: "outside/not-copied.txt", Body: []byte("x")}})
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)

	mustRun(t, env, "planner", "plan", "--source", "s3://"+src+"/data/", "--dest", "s3://"+dst+"/copy/", "--queue-url", work, "--ledger", led)
	workers(t, env, 1, "--queue-url", work, "--ledger", led, "--multipart-threshold", "8MiB", "--part-size", "5MiB")

	srcObjs := snapshot(t, env, src, "data/", true)
	if len(srcObjs) != 15 {
		t.Fatalf("fixture: %d source objects under data/", len(srcObjs))
	}
	// versitygw refuses any CopyObject onto a key ending in "/"
	// (DirectoryObjectContainsData; the aws CLI gets the same), where S3
	// copies folder markers like any object. Here the marker must therefore
	// come back as a reported failure with the server's reason: planned,
	// tried, and never silently lost.
	delete(srcObjs, "folder/")
	sameObjects(t, srcObjs, snapshot(t, env, dst, "copy/", true))
	if n := len(env.Keys(t, dst, "")); n != 14 {
		t.Fatalf("destination holds %d objects: something outside the source prefix was copied", n)
	}
	st := status(t, env, led)
	if !st.Complete || st.Copied != 14 || st.Failed != 1 || st.Planned.Objects != 15 {
		t.Fatalf("status %+v", st)
	}
	if f := st.Failures[0]; f.Key != "data/folder/" || f.Reason != "rejected" {
		t.Fatalf("failure %+v, want the folder marker rejected by versitygw", f)
	}
}

// TestChangedAndDeletedSources: objects that change or vanish between plan
// and copy are reported as failed (changed) and skipped (vanished), and a
// diff re-run copies the changed one.
func TestChangedAndDeletedSources(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "same", Body: []byte("1")}, {Key: "changes", Body: []byte("1")}, {Key: "vanishes", Body: []byte("1")}})
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led)

	env.Put(t, src, []testbed.Object{{Key: "changes", Body: []byte("2, longer")}})
	if _, err := env.S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(src), Key: aws.String("vanishes")}); err != nil {
		t.Fatal(err)
	}
	workers(t, env, 1, "--queue-url", work, "--ledger", led)

	st := status(t, env, led)
	if st.Copied != 1 || st.Failed != 1 || st.Skipped != 1 || !st.Complete {
		t.Fatalf("status %+v", st)
	}
	if len(st.Failures) != 1 || st.Failures[0].Key != "changes" || st.Failures[0].Reason != "changed" {
		t.Fatalf("failures %+v", st.Failures)
	}
	if st.Queue.Visible+st.Queue.InFlight != 0 {
		t.Fatalf("messages left: %+v", st.Queue)
	}
	// A diff re-run picks up exactly the changed object; then all matches.
	r := mustRun(t, env, "planner", "run", "--source", "s3://"+src, "--dest", "s3://"+dst, "--diff")
	if !strings.Contains(r.stdout, "enqueued 1 objects") || !strings.Contains(r.stdout, "copied      1 objects") {
		t.Fatalf("diff after a change:\n%s", r.stdout)
	}
	if v, code := verify(t, env, "s3://"+src, "s3://"+dst); code != 0 || v.Matching != 2 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}

func TestDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, acceptanceObjects()[:50])
	work, _ := env.Queue(t, 0)
	r := mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--dry-run")
	if !strings.Contains(r.stdout, "would enqueue (dry run) 50 objects") {
		t.Fatalf("dry run output:\n%s", r.stdout)
	}
	if msgs, err := queueDepth(env, work); err != nil || msgs != 0 {
		t.Fatalf("dry run left %d messages (%v)", msgs, err)
	}
}
