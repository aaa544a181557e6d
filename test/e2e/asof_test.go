package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/internal/testbed"
)

// versionHistory is a proxy in front of the test bed's S3 that answers
// ListObjectVersions as S3 does where versitygw v1.8.0 does not (and the
// test bed's manners do not yet):
//   - LastModified is when the version or delete marker was created (for a
//     multipart upload, when it was initiated: S3 user guide, "Working with
//     object metadata"), where versitygw gives an entry that is no longer
//     current the time it stopped being current;
//   - versions and delete markers are interleaved, each key's newest first,
//     as S3's ListObjectVersions example shows, where versitygw writes every
//     delete marker of the page before every version.
//
// It learns when each entry was created from the writes that pass through
// it, so a test writes its source through it (client).
type versionHistory struct {
	url     string
	mu      sync.Mutex
	created map[string]time.Time // bucket/key?version -> created
	uploads map[string]time.Time // upload id -> initiated
}

func newVersionHistory(t *testing.T, target string) *versionHistory {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	h := &versionHistory{created: map[string]time.Time{}, uploads: map[string]time.Time{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = h.observe
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

var (
	uploadIDRE = regexp.MustCompile(`<UploadId>([^<]+)</UploadId>`)
	entryRE    = regexp.MustCompile(`(?s)<(Version|DeleteMarker)>.*?</(?:Version|DeleteMarker)>`)
	keyRE      = regexp.MustCompile(`<Key>([^<]*)</Key>`)
	versionRE  = regexp.MustCompile(`<VersionId>([^<]*)</VersionId>`)
	modifiedRE = regexp.MustCompile(`<LastModified>[^<]*</LastModified>`)
)

func (h *versionHistory) observe(resp *http.Response) error {
	r := resp.Request
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return nil
	}
	now := time.Now()
	version := resp.Header.Get("X-Amz-Version-Id")
	if version == "" {
		version = "null"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case key == "" && r.Method == http.MethodGet && q.Has("versions"):
		return h.rewrite(resp, bucket)
	case key != "" && r.Method == http.MethodPost && q.Has("uploads"):
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if m := uploadIDRE.FindSubmatch(body); err == nil && m != nil {
			h.uploads[string(m[1])] = now
		}
	case key != "" && r.Method == http.MethodPost && q.Has("uploadId"):
		h.created[bucket+"/"+key+"?"+version] = h.uploads[q.Get("uploadId")]
	case key != "" && r.Method == http.MethodPut && onlyID(q),
		key != "" && r.Method == http.MethodDelete && onlyID(q):
		h.created[bucket+"/"+key+"?"+version] = now
	}
	return nil
}

// onlyID reports a query that names no subresource (the SDK adds x-id).
func onlyID(q url.Values) bool {
	delete(q, "x-id")
	return len(q) == 0
}

// rewrite sets each entry's LastModified to when it was created and puts
// the entries in S3's order. Called with h.mu held.
func (h *versionHistory) rewrite(resp *http.Response, bucket string) error {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	type entry struct {
		key     string
		created time.Time
		xml     []byte
	}
	var entries []entry
	first := -1
	for _, loc := range entryRE.FindAllIndex(body, -1) {
		if first < 0 {
			first = loc[0]
		}
		raw := slices.Clone(body[loc[0]:loc[1]])
		e := entry{xml: raw}
		if m := keyRE.FindSubmatch(raw); m != nil {
			e.key = string(m[1])
		}
		if m := versionRE.FindSubmatch(raw); m != nil {
			if at, ok := h.created[bucket+"/"+e.key+"?"+string(m[1])]; ok {
				e.created = at
				e.xml = modifiedRE.ReplaceAll(raw, []byte("<LastModified>"+at.UTC().Format("2006-01-02T15:04:05.000Z")+"</LastModified>"))
			}
		}
		entries = append(entries, e)
	}
	rest := entryRE.ReplaceAll(body, nil)
	if first >= 0 {
		slices.SortStableFunc(entries, func(a, b entry) int {
			if c := strings.Compare(a.key, b.key); c != 0 {
				return c
			}
			return b.created.Compare(a.created)
		})
		var all []byte
		for _, e := range entries {
			all = append(all, e.xml...)
		}
		at := bytes.Index(rest, []byte("</ListVersionsResult>"))
		rest = slices.Concat(rest[:at], all, rest[at:])
	}
	resp.Body = io.NopCloser(bytes.NewReader(rest))
	resp.ContentLength = int64(len(rest))
	resp.Header.Set("Content-Length", strconv.Itoa(len(rest)))
	return nil
}

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
// paginator, and for each key the one created last not after at (the proxy
// gives creation times to the millisecond, and the test spaces a key's
// writes seconds apart). key -> version id and ETag.
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
// was then, content and ETag, while the source has moved on.
func TestAsOfClonesTheBucketAsItWas(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	hist := newVersionHistory(t, env.S3Endpoint)
	api := env.Client(hist.url)
	src, dst := env.Bucket(t), env.Bucket(t)
	work, _ := env.Queue(t, 5)
	led := ledgerURL(t, env)
	environ := env.EnvironFor(hist.url)

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
