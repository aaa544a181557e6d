package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestWebsiteRedirectsSurvive: a static website's redirect objects carry
// x-amz-website-redirect-location, which S3 does not copy under a metadata
// directive (CopyObject's API reference; versitygw, like S3, drops it). A
// source with a website configuration is cloned by a fleet with every
// redirect kept; a diff right after enqueues nothing; a redirect removed
// from a copy (same body, same ETag) is a difference to diff and verify.
// A source without a website configuration costs no HeadObject per object.
func TestWebsiteRedirectsSurvive(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	if _, err := env.S3.PutBucketWebsite(ctx, &s3.PutBucketWebsiteInput{Bucket: aws.String(srcB), WebsiteConfiguration: &types.WebsiteConfiguration{
		IndexDocument: &types.IndexDocument{Suffix: aws.String("index.html")}}}); err != nil {
		t.Fatal(err)
	}
	var objs []testbed.Object
	for i := range 30 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("site/page-%02d.html", i), Body: body(i, 300), ContentType: "text/html"})
	}
	for i := range 6 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("old/moved-%d.html", i), Body: body(100+i, i*10), Redirect: fmt.Sprintf("/site/page-%02d.html", i)})
	}
	env.Put(t, srcB, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	src, dst := "s3://"+srcB, "s3://"+dstB
	mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--batch-keys", "7")
	workers(t, env, 2, "--queue-url", work, "--ledger", led)
	if st := status(t, env, led); !st.Complete || st.Copied != int64(len(objs)) || st.Failed != 0 {
		t.Fatalf("status %+v", st)
	}
	redirect := func(bucket, key string) string {
		h, err := env.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(h.WebsiteRedirectLocation)
	}
	for _, o := range objs {
		if got := redirect(dstB, o.Key); got != o.Redirect {
			t.Fatalf("%s redirects to %q in the clone, want %q", o.Key, got, o.Redirect)
		}
	}
	r := mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--diff", "--dry-run")
	if !strings.Contains(r.stdout, "would enqueue (dry run) 0 objects") {
		t.Fatalf("a diff right after the clone:\n%s", r.stdout)
	}

	// The redirect goes from one copy; its body and ETag stay the same.
	lost := objs[len(objs)-1]
	env.Put(t, dstB, []testbed.Object{{Key: lost.Key, Body: lost.Body}})
	r = mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--diff", "--dry-run")
	if !strings.Contains(r.stdout, "would enqueue (dry run) 1 objects") || !strings.Contains(r.stdout, "1 different") {
		t.Fatalf("a diff with a redirect lost from the copy:\n%s", r.stdout)
	}
	if v, code := verify(t, env, src, dst); code != 1 || v.Different != 1 {
		t.Fatalf("verify with a redirect lost: %+v, exit %d", v, code)
	}
	mustRun(t, env, "planner", "run", "--source", src, "--dest", dst, "--diff")
	if got := redirect(dstB, lost.Key); got != lost.Redirect {
		t.Fatalf("the repair left %s redirecting to %q", lost.Key, got)
	}

	// Without a website configuration no object's redirect can take
	// effect: the workers send one request per object, no HeadObject.
	plainB, plainDst := env.Bucket(t), env.Bucket(t)
	env.Put(t, plainB, objs)
	work2, _ := env.Queue(t, 0)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+plainB, "--dest", "s3://"+plainDst, "--queue-url", work2, "--ledger", led)
	// (Counted apart from the ledger's: its entries, and the fleet's
	// rates, listed each second.)
	counted := env.CountingWhere(t, env.S3Endpoint, func(r *http.Request) bool {
		return !strings.HasPrefix(r.URL.Path, "/"+bucketOf(led)+"/") && r.URL.Path != "/"+bucketOf(led)
	})
	cmd, out, errb := command(env, "worker", "--queue-url", work2, "--ledger", led, "--idle-exit", "3s")
	cmd.Env = env.EnvironFor(counted.URL)
	if w := finish(t, "worker", cmd, out, errb); w.code != 0 {
		t.Fatalf("worker: exit %d\n%s", w.code, tail(w.stderr))
	}
	if n := counted.Matched.Load(); n > int64(len(objs))+10 {
		t.Fatalf("the worker sent %d S3 requests for %d objects of a bucket without a website configuration", n, len(objs))
	}
}
