package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/test/testbed"
)

// md5Of is the hex MD5 of what a read returns.
func md5Of(t *testing.T, r io.ReadCloser) string {
	t.Helper()
	defer r.Close()
	h := md5.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stateAt is the source as it stood at at, found independently of the
// planner: every version and delete marker listed with the SDK's
// paginator, and for each key the one created last not after at (the test
// bed's S3 gives each entry the time it was written, to the second, as S3
// does: https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html;
// the tests space a key's writes seconds apart). key -> version id and
// ETag.
func stateAt(t *testing.T, api *s3.Client, bucket string, at time.Time) map[string]types.ObjectVersion {
	t.Helper()
	type last struct {
		when   time.Time
		marker bool
		v      types.ObjectVersion
	}
	best := map[string]last{}
	consider := func(key string, when time.Time, marker bool, v types.ObjectVersion) {
		if when.After(at) {
			return
		}
		if b, ok := best[key]; !ok || when.After(b.when) {
			best[key] = last{when, marker, v}
		}
	}
	p := s3.NewListObjectVersionsPaginator(api, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), MaxKeys: aws.Int32(4)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			consider(aws.ToString(v.Key), aws.ToTime(v.LastModified), false, v)
		}
		for _, d := range page.DeleteMarkers {
			consider(aws.ToString(d.Key), aws.ToTime(d.LastModified), true, types.ObjectVersion{})
		}
	}
	state := map[string]types.ObjectVersion{}
	for k, b := range best {
		if !b.marker {
			state[k] = b.v
		}
	}
	return state
}

// TestAsOfClonesTheBucketAsItWas: a versioned source is written before and
// after a time (overwrites, deletes, a key deleted and written again, a
// version from before versioning was enabled, objects copied in parts);
// plan --as-of that time and a worker make the destination what the source
// was then, content and ETag, while the source has moved on. The source is
// written through the test bed's S3 (env.S3Endpoint), whose
// ListObjectVersions dates each version when it was written and lists a
// key's entries newest first, as S3 does.
func TestAsOfClonesTheBucketAsItWas(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	src, dst := env.Bucket(t), env.Bucket(t)
	api := env.Manners().Client(src)
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	environ := env.Environ()

	put := func(key string, b []byte) {
		t.Helper()
		if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String(key), Body: bytes.NewReader(b),
			Metadata: map[string]string{"len": fmt.Sprint(len(b))}}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	// putParts writes an object in 5 MiB parts, so that its copy in 5 MiB
	// parts has the same ETag.
	putParts := func(key string, b []byte) {
		t.Helper()
		up, err := api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(src), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		var parts []types.CompletedPart
		for i, off := int32(1), 0; off < len(b); i, off = i+1, off+5<<20 {
			part, err := api.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(src), Key: aws.String(key), UploadId: up.UploadId,
				PartNumber: aws.Int32(i), Body: bytes.NewReader(b[off:min(off+5<<20, len(b))])})
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, types.CompletedPart{ETag: part.ETag, PartNumber: aws.Int32(i)})
		}
		if _, err := api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(src), Key: aws.String(key), UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
			t.Fatal(err)
		}
	}
	del := func(key string) {
		t.Helper()
		if _, err := api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(src), Key: aws.String(key)}); err != nil {
			t.Fatalf("delete %s: %v", key, err)
		}
	}
	// A key's writes are seconds apart: the test bed keeps LastModified to
	// the second.
	pause := func() { time.Sleep(1100 * time.Millisecond) }

	put("from-before-versioning", []byte("written while versioning was off: version null"))
	if _, err := api.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(src),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kept", "overwritten-after", "deleted-after", "overwritten-before", "deleted-before", "recreated", "dir/nested kept+1"} {
		put(k, []byte(k+" first"))
	}
	putParts("big/kept", body(1, 6<<20))
	putParts("big/overwritten-after", body(2, 7<<20))
	pause()
	put("overwritten-before", []byte("overwritten-before second"))
	del("deleted-before")
	del("recreated")
	putParts("big/overwritten-before", body(3, 6<<20+1))
	pause()
	put("recreated", []byte("recreated after its deletion"))
	pause()
	asOf := time.Now().UTC()
	pause()
	put("overwritten-after", []byte("overwritten-after second"))
	del("deleted-after")
	del("recreated")
	put("new-after", []byte("not there at the time"))
	put("from-before-versioning", []byte("overwritten after the time"))
	putParts("big/overwritten-after", body(4, 5<<20+3))
	putParts("big/new-after", body(5, 6<<20))

	want := stateAt(t, api, src, asOf)
	var wantKeys []string
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(wantKeys)
	if expected := []string{"big/kept", "big/overwritten-after", "big/overwritten-before", "deleted-after", "dir/nested kept+1", "from-before-versioning",
		"kept", "overwritten-after", "overwritten-before", "recreated"}; !slices.Equal(wantKeys, expected) {
		t.Fatalf("the source at the time, by the test's own reading: %v, want %v", wantKeys, expected)
	}
	if v := aws.ToString(want["from-before-versioning"].VersionId); v != "null" {
		t.Fatalf("from-before-versioning at the time: version %q, want null", v)
	}

	args := []string{"plan", "--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led, "--as-of", asOf.Format(time.RFC3339Nano)}
	plan := runWith(t, environ, "planner", args...)
	if plan.code != 0 || !strings.Contains(plan.stdout, fmt.Sprintf("enqueued %d objects", len(want))) || !strings.Contains(plan.stdout, "as of ") {
		t.Fatalf("plan --as-of: exit %d\n%s\n%s", plan.code, plan.stdout, tail(plan.stderr))
	}
	if w := runWith(t, environ, "worker", "--id", "w1", "--idle-exit", "3s", "--queue-url", work, "--ledger", led,
		"--multipart-threshold", "5MiB", "--part-size", "5MiB"); w.code != 0 {
		t.Fatalf("worker: exit %d\n%s", w.code, tail(w.stderr))
	}

	got := env.Keys(t, dst, "")
	for key, v := range want {
		obj, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(dst), Key: aws.String(key)})
		if err != nil {
			t.Errorf("%s: not in the destination: %v", key, err)
			continue
		}
		if aws.ToString(obj.ETag) != aws.ToString(v.ETag) {
			t.Errorf("%s: ETag %s, want the version of the time's %s", key, aws.ToString(obj.ETag), aws.ToString(v.ETag))
		}
		old, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src), Key: aws.String(key), VersionId: v.VersionId})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := md5Of(t, obj.Body), md5Of(t, old.Body); a != b {
			t.Errorf("%s: content differs from version %s", key, aws.ToString(v.VersionId))
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("%s: in the destination, not in the source at the time", key)
		}
	}
	if st := status(t, env, led); !st.Complete || st.Copied != int64(len(want)) || st.Failed != 0 {
		t.Errorf("status %+v", st)
	}

	// --diff --delete as of the same time, against a destination that has
	// moved: the extra key goes, the changed one is copied back, the rest
	// match.
	// (Not "kept": the preflight copies the smallest sample, as of the time.)
	if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(dst), Key: aws.String("overwritten-before"), Body: strings.NewReader("changed in the destination")}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(dst), Key: aws.String("new-after"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	diff := runWith(t, environ, "planner", append(args, "--diff", "--delete")...)
	if diff.code != 0 || !strings.Contains(diff.stdout, "enqueued 1 objects") || !strings.Contains(diff.stdout, "deletes   1 ") {
		t.Fatalf("plan --as-of --diff --delete: exit %d\n%s\n%s", diff.code, diff.stdout, tail(diff.stderr))
	}
	if w := runWith(t, environ, "worker", "--id", "w2", "--idle-exit", "3s", "--queue-url", work, "--ledger", led); w.code != 0 {
		t.Fatalf("worker: exit %d\n%s", w.code, tail(w.stderr))
	}
	if b := getBody(t, env, dst, "overwritten-before"); string(b) != "overwritten-before second" {
		t.Errorf("overwritten-before after the diff: %q", b)
	}
	if _, ok := env.Keys(t, dst, "")["new-after"]; ok {
		t.Error("new-after, not in the source at the time, is still in the destination after --diff --delete")
	}
}

// TestAsOfRefuses: a source never versioned, a time in the future, and
// --as-of with --from-file or --checkpoint are usage errors (exit 2), each
// saying why, with nothing enqueued.
func TestAsOfRefuses(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "k", Body: []byte("v")}})
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	base := []string{"plan", "--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led}
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--as-of", past}, "versioning was never enabled"},
		{[]string{"--as-of", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "is in the future"},
		{[]string{"--as-of", "yesterday"}, "an RFC 3339 time"},
		{[]string{"--as-of", past, "--from-file", "/dev/null"}, "--as-of with --from-file"},
		{[]string{"--as-of", past, "--checkpoint", t.TempDir() + "/cp"}, "--as-of with --checkpoint"},
	} {
		r := run(t, env, "planner", append(slices.Clone(base), c.extra...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("plan %v: exit %d, want 2 saying %q\n%s", c.extra, r.code, c.want, tail(r.stderr))
		}
	}
	if n := len(env.Keys(t, dst, "")); n != 0 {
		t.Errorf("%d objects copied by refused plans", n)
	}
}

// runWith runs a binary to the end with environ.
func runWith(t *testing.T, environ []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = environ
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return finish(t, name, cmd, &out, &errb)
}

// TestAsOfCutover: a versioned source is cloned, then changed before and
// after a time (overwrites, deletes, new keys, a key deleted and written
// again); planner cutover --as-of that time, with a worker running, makes
// the destination the source as it was then, with no freeze: exit 0, its
// --verify comparing with the source at the time (a comparison with the
// source now would find every later change), the destination equal to the
// test's own reading of the versions. A second cutover as of the same time
// finds nothing to do, although the source has moved on.
func TestAsOfCutover(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	src, dst := env.Bucket(t), env.Bucket(t)
	api := env.Manners().Client(src)
	led := ledgerURL(t, env)
	put := func(key string, b []byte) {
		t.Helper()
		if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	del := func(key string) {
		t.Helper()
		if _, err := api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(src), Key: aws.String(key)}); err != nil {
			t.Fatalf("delete %s: %v", key, err)
		}
	}
	pause := func() { time.Sleep(1100 * time.Millisecond) }

	if _, err := api.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(src),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		put(fmt.Sprintf("k/%02d", i), body(i, 100+i))
	}
	mustRun(t, env, "planner", "run", "--source", "s3://"+src, "--dest", "s3://"+dst)
	pause()
	put("k/01", body(101, 300)) // before the time: changed, deleted, added
	del("k/02")
	put("before/new", body(102, 300))
	pause()
	asOf := time.Now().UTC()
	pause()
	put("k/01", body(201, 400)) // after it: none of this is the clone's
	put("k/03", body(203, 400))
	del("k/04")
	put("k/02", body(202, 400))
	del("before/new")
	put("after/new", body(204, 400))

	want := stateAt(t, api, src, asOf)
	if len(want) != 20 || want["k/02"].VersionId != nil || want["before/new"].VersionId == nil || want["after/new"].VersionId != nil {
		t.Fatalf("the source at the time, by the test's own reading: %d keys %v", len(want), want)
	}
	work, _ := env.Queue(t, 3)
	worker, _, werr := command(env, "worker", "--queue-url", work, "--ledger", led, "--visibility-timeout", "2s", "--retry-backoff", "1s")
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		worker.Process.Kill()
		worker.Wait()
		if t.Failed() {
			t.Logf("worker log:\n%s", tail(werr.String()))
		}
	})
	args := []string{"cutover", "--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led, "--batch-keys", "2",
		"--as-of", asOf.Format(time.RFC3339Nano)}
	r := run(t, env, "planner", append(slices.Clone(args), "--verify")...)
	if r.code != 0 {
		t.Fatalf("cutover --as-of exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr))
	}
	// The diff as of the time: k/01 changed, before/new added, k/02 deleted.
	for _, s := range []string{"as of     " + asOf.Format(time.RFC3339Nano), "enqueued 2 objects", "deletes   1 destination objects",
		"verdict   clean", "verify ", "(20 keys)"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("cutover output lacks %q:\n%s", s, r.stdout)
		}
	}
	got := env.Keys(t, dst, "")
	if len(got) != len(want) {
		t.Errorf("destination has %d keys, the source at the time %d", len(got), len(want))
	}
	for key, v := range want {
		obj, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(dst), Key: aws.String(key)})
		if err != nil {
			t.Errorf("%s: not in the destination: %v", key, err)
			continue
		}
		old, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src), Key: aws.String(key), VersionId: v.VersionId})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := md5Of(t, obj.Body), md5Of(t, old.Body); aws.ToString(obj.ETag) != aws.ToString(v.ETag) || a != b {
			t.Errorf("%s: ETag %s, want the version of the time's %s (content same: %v)", key, aws.ToString(obj.ETag), aws.ToString(v.ETag), a == b)
		}
	}

	again := run(t, env, "planner", args...)
	if again.code != 0 || !strings.Contains(again.stdout, "enqueued 0 objects") || strings.Contains(again.stdout, "deletes ") || !strings.Contains(again.stdout, "verdict   clean") {
		t.Fatalf("a second cutover as of the same time: exit %d, want nothing to do\n%s\n%s", again.code, again.stdout, tail(again.stderr))
	}
}

// TestAsOfCutoverRefuses: cutover --as-of refuses what plan --as-of
// refuses (a source never versioned, a time in the future or not RFC
// 3339), and --as-of with --follow, each with exit 2 saying why, having
// sent nothing.
func TestAsOfCutoverRefuses(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "k", Body: []byte("v")}})
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	base := []string{"cutover", "--source", "s3://" + src, "--dest", "s3://" + dst, "--queue-url", work, "--ledger", led, "--timeout", "20s"}
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(slices.Clone(base), "--as-of", past), "versioning was never enabled"},
		{append(slices.Clone(base), "--as-of", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), "is in the future"},
		{append(slices.Clone(base), "--as-of", "yesterday"), "an RFC 3339 time"},
		{[]string{"cutover", "--follow", "20261207T100000Z-abcd", "--ledger", led, "--as-of", past}, "--as-of with --follow"},
	} {
		r := run(t, env, "planner", c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("planner %v: exit %d, want 2 saying %q\n%s", c.args, r.code, c.want, tail(r.stderr))
		}
	}
	if n := len(env.Keys(t, dst, "")); n != 0 {
		t.Errorf("%d objects copied by refused cutovers", n)
	}
}
