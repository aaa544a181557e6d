package copier

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"maps"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/s3clone/s3clone/test/testbed"
)

func TestMain(m *testing.M) {
	if os.Getenv(cannedServerEnv) != "" {
		serveCanned() // for BenchmarkClientCPUPerCopy; never returns
	}
	os.Exit(testbed.Main(m))
}

// recorder passes every call to the real client (copies through Direct)
// and records the requests whose effect versitygw does not keep (it stores
// every object as STANDARD).
type recorder struct {
	API
	mu      sync.Mutex
	copies  []*s3.CopyObjectInput
	creates []*s3.CreateMultipartUploadInput
	parts   int
	aborts  int
}

func (r *recorder) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	r.mu.Lock()
	r.copies = append(r.copies, in)
	r.mu.Unlock()
	return r.API.CopyObject(ctx, in, o...)
}

func (r *recorder) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	r.mu.Lock()
	r.creates = append(r.creates, in)
	r.mu.Unlock()
	return r.API.CreateMultipartUpload(ctx, in, o...)
}

func (r *recorder) UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, o ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	r.mu.Lock()
	r.parts++
	r.mu.Unlock()
	return r.API.UploadPartCopy(ctx, in, o...)
}

func (r *recorder) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	r.mu.Lock()
	r.aborts++
	r.mu.Unlock()
	return r.API.AbortMultipartUpload(ctx, in, o...)
}

// props is everything about an object a clone must keep.
type props struct {
	Body         []byte
	ContentType  string
	CacheControl string
	Metadata     map[string]string
	Tags         map[string]string
}

func readProps(t *testing.T, env *testbed.Env, bucket, key string) props {
	t.Helper()
	ctx := context.Background()
	get, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer get.Body.Close()
	body, err := io.ReadAll(get.Body)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := env.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("tags of s3://%s/%s: %v", bucket, key, err)
	}
	p := props{Body: body, ContentType: aws.ToString(get.ContentType), CacheControl: aws.ToString(get.CacheControl), Metadata: get.Metadata, Tags: map[string]string{}}
	for _, tag := range tags.TagSet {
		p.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	return p
}

func sameProps(t *testing.T, what string, got, want props) {
	t.Helper()
	if !bytes.Equal(got.Body, want.Body) {
		t.Errorf("%s: body differs (%d bytes, want %d)", what, len(got.Body), len(want.Body))
	}
	if got.ContentType != want.ContentType || got.CacheControl != want.CacheControl {
		t.Errorf("%s: content-type %q cache-control %q, want %q %q", what, got.ContentType, got.CacheControl, want.ContentType, want.CacheControl)
	}
	if !maps.Equal(got.Metadata, want.Metadata) {
		t.Errorf("%s: metadata %v, want %v", what, got.Metadata, want.Metadata)
	}
	if !maps.Equal(got.Tags, want.Tags) {
		t.Errorf("%s: tags %v, want %v", what, got.Tags, want.Tags)
	}
}

func head(t *testing.T, env *testbed.Env, bucket, key string) *s3.HeadObjectOutput {
	t.Helper()
	h, err := env.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("head s3://%s/%s: %v", bucket, key, err)
	}
	return h
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return b
}

func TestCopyKeepsEveryProperty(t *testing.T) {
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	rich := testbed.Object{
		Body: randomBytes(12<<20 + 12345), ContentType: "image/jpeg", CacheControl: "max-age=3600",
		Metadata: map[string]string{"owner": "ops", "shot-at": "2026-11-25"}, Tagging: "env=prod&team=photo%20desk",
	}
	keys := []string{"plain.jpg", "dir with space/a+b%c?d#e.jpg", "ünï/çødé.jpg"}
	var objs []testbed.Object
	for _, k := range keys {
		o := rich
		o.Key = k
		objs = append(objs, o)
	}
	env.Put(t, src, objs)

	for _, mode := range []struct {
		name      string
		threshold int64
		parts     bool
	}{{"CopyObject", MaxCopyObjectSize, false}, {"UploadPartCopy", 5 << 20, true}} {
		t.Run(mode.name, func(t *testing.T) {
			direct := NewDirect(env.Manners().Client(src), nil) // S3's manners: part checksums as S3 computes them
			rec := &recorder{API: direct}
			c := New(rec, Options{MultipartThreshold: mode.threshold, PartSize: 5 << 20})
			for _, k := range keys {
				h := head(t, env, src, k)
				source := Source{Bucket: src, Key: k, Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag), StorageClass: "STANDARD_IA"}
				dstKey := mode.name + "/" + k
				if err := c.Copy(context.Background(), source, Target{Bucket: dst, Key: dstKey}); err != nil {
					t.Fatalf("copy %q: %v", k, err)
				}
				sameProps(t, k, readProps(t, env, dst, dstKey), readProps(t, env, src, k))
			}
			// versitygw stores every object as STANDARD, so check what was asked.
			asked := []types.StorageClass{}
			for _, in := range rec.copies {
				asked = append(asked, in.StorageClass)
			}
			for _, in := range rec.creates {
				asked = append(asked, in.StorageClass)
			}
			if len(asked) != len(keys) {
				t.Fatalf("%d copy requests for %d keys", len(asked), len(keys))
			}
			for _, sc := range asked {
				if sc != types.StorageClassStandardIa {
					t.Errorf("asked for storage class %q, want the source's STANDARD_IA", sc)
				}
			}
			if want := int64(len(rec.copies)); direct.Sent() != want || direct.FellBack() != 0 {
				t.Errorf("%d copies sent directly, %d sent again through the SDK; want %d and 0", direct.Sent(), direct.FellBack(), want)
			}
			if mode.parts && rec.parts != 3*len(keys) {
				t.Errorf("%d UploadPartCopy calls, want 3 per 12 MiB object with 5 MiB parts", rec.parts)
			}
		})
	}
}

func TestStorageClassOverrideAndDefault(t *testing.T) {
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "k", Body: []byte("x")}})
	for _, c := range []struct {
		override, source string
		want             types.StorageClass
	}{
		{"", "STANDARD", ""},
		{"", "GLACIER_IR", types.StorageClassGlacierIr},
		{"ONEZONE_IA", "STANDARD", types.StorageClassOnezoneIa},
	} {
		rec := &recorder{API: NewDirect(env.S3, nil)}
		cp := New(rec, Options{})
		if err := cp.Copy(context.Background(), Source{Bucket: src, Key: "k", Size: 1, StorageClass: c.source}, Target{Bucket: dst, Key: "k", Write: Write{StorageClass: types.StorageClass(c.override)}}); err != nil {
			t.Fatal(err)
		}
		if got := rec.copies[0].StorageClass; got != c.want {
			t.Errorf("override %q, source %q: asked for %q, want %q", c.override, c.source, got, c.want)
		}
	}
}

func TestChangedAndVanishedSources(t *testing.T) {
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "small", Body: []byte("v1")}, {Key: "big", Body: randomBytes(11 << 20)}})
	for _, k := range []string{"small", "big"} {
		for _, mode := range []int64{MaxCopyObjectSize, 5 << 20} {
			direct := NewDirect(env.S3, nil)
			c := New(direct, Options{MultipartThreshold: mode, PartSize: 5 << 20})
			h := head(t, env, src, k)
			stale := Source{Bucket: src, Key: k, Size: aws.ToInt64(h.ContentLength), ETag: `"0123456789abcdef0123456789abcdef"`}
			err := c.Copy(context.Background(), stale, Target{Bucket: dst, Key: k})
			if ce := Classify(err); ce == nil || ce.Reason != ReasonChanged || !ce.Permanent() {
				t.Errorf("%s (threshold %d) with a stale ETag: %v, want reason %q", k, mode, err, ReasonChanged)
			}
			gone := Source{Bucket: src, Key: k + "-gone", Size: stale.Size, ETag: stale.ETag}
			err = c.Copy(context.Background(), gone, Target{Bucket: dst, Key: k})
			if ce := Classify(err); ce == nil || ce.Reason != ReasonVanished {
				t.Errorf("%s (threshold %d) that does not exist: %v, want reason %q", k, mode, err, ReasonVanished)
			}
			// Refusals are the SDK's to parse: each single copy went out
			// directly once, then once more through the SDK.
			if mode == MaxCopyObjectSize && (direct.Sent() != 2 || direct.FellBack() != 2) {
				t.Errorf("%s: %d sent directly, %d again through the SDK; want 2 and 2", k, direct.Sent(), direct.FellBack())
			}
		}
	}
	uploads, err := env.S3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(dst)})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Fatalf("%d incomplete multipart uploads left behind", len(uploads.Uploads))
	}
}

// TestDeleteOnlyWhatWasListed deletes through the test bed's S3 manners
// (versitygw itself ignores a DeleteObjects ETag): an object rewritten
// since it was listed stays, and comes back as changed; the others go.
func TestDeleteOnlyWhatWasListed(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	b := env.Bucket(t)
	env.Put(t, b, []testbed.Object{{Key: "stale", Body: []byte("v1")}, {Key: "same", Body: []byte("v1")}, {Key: "any", Body: []byte("v1")}})
	listed := env.Keys(t, b, "")
	env.Put(t, b, []testbed.Object{{Key: "stale", Body: []byte("v2, written after the listing")}})
	c := New(env.Manners().Client(b), Options{})
	failed, err := c.Delete(ctx, Target{Bucket: b}, []Doomed{
		{Key: "stale", ETag: aws.ToString(listed["stale"].ETag)},
		{Key: "same", ETag: aws.ToString(listed["same"].ETag)},
		{Key: "any"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0].Key != "stale" || failed[0].Err.Reason != ReasonChanged {
		t.Fatalf("refused %+v; want stale refused as changed", failed)
	}
	left := env.Keys(t, b, "")
	if _, ok := left["stale"]; !ok || len(left) != 1 {
		t.Fatalf("left %v; want only the rewritten object", left)
	}
}

// TestFailedPartAbortsTheUpload fails one UploadPartCopy (a fault a real
// server cannot be told to make at that moment) and checks the upload is
// aborted on the real server.
func TestFailedPartAbortsTheUpload(t *testing.T) {
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "big", Body: randomBytes(16 << 20)}})
	api := &failingPart{recorder: recorder{API: env.S3}, failOn: 2}
	c := New(api, Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20, PartConcurrency: 1})
	h := head(t, env, src, "big")
	err := c.Copy(context.Background(), Source{Bucket: src, Key: "big", Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag)}, Target{Bucket: dst, Key: "big"})
	if ce := Classify(err); ce == nil || ce.Reason != ReasonTransient {
		t.Fatalf("copy with a failing part: %v, want a transient error", err)
	}
	if api.aborts != 1 {
		t.Errorf("%d aborts, want 1", api.aborts)
	}
	uploads, err := env.S3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(dst)})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Fatalf("%d incomplete multipart uploads left behind", len(uploads.Uploads))
	}
}

type failingPart struct {
	recorder
	failOn int
}

func (f *failingPart) UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, o ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	if int(aws.ToInt32(in.PartNumber)) == f.failOn {
		return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "injected"}
	}
	return f.recorder.UploadPartCopy(ctx, in, o...)
}

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want Reason
	}{
		{&smithy.GenericAPIError{Code: "NoSuchKey"}, ReasonVanished},
		{&smithy.GenericAPIError{Code: "PreconditionFailed"}, ReasonChanged},
		{&smithy.GenericAPIError{Code: "AccessDenied"}, ReasonAccessDenied},
		{&smithy.GenericAPIError{Code: "NoSuchBucket"}, ReasonNoBucket},
		{&smithy.GenericAPIError{Code: "InvalidObjectState"}, ReasonArchived},
		{&smithy.GenericAPIError{Code: "NoSuchUpload"}, ReasonTransient}, // the destination's upload, not the source
		{&smithy.GenericAPIError{Code: "ExpiredToken"}, ReasonCredentials},
		{&smithy.GenericAPIError{Code: "InvalidToken"}, ReasonCredentials},
		{&smithy.GenericAPIError{Code: "RequestExpired"}, ReasonCredentials},
		{&smithy.GenericAPIError{Code: "SlowDown"}, ReasonTransient},
		{&smithy.GenericAPIError{Code: "InternalError"}, ReasonTransient},
		{context.Canceled, ReasonCanceled},
		{errors.New("connection reset by peer"), ReasonTransient},
		{&url.Error{Op: "Put", URL: "http://x", Err: io.ErrUnexpectedEOF}, ReasonTransient},
	}
	for _, c := range cases {
		got := Classify(c.err)
		if got.Reason != c.want {
			t.Errorf("Classify(%v) = %q, want %q", c.err, got.Reason, c.want)
		}
		if retried := !got.Permanent(); retried != (c.want == ReasonTransient || c.want == ReasonCanceled || c.want == ReasonCredentials) {
			t.Errorf("Classify(%v).Permanent() = %v", c.err, !retried)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) should be nil")
	}
}

func TestPartSize(t *testing.T) {
	t.Parallel()
	cases := []struct{ size, want, got int64 }{
		{100 << 20, 64 << 20, 64 << 20},
		{100 << 20, 1 << 20, MinPartSize},
		{5 << 40, 64 << 20, (5<<40 + MaxParts - 1) / MaxParts},
		{1 << 30, 10 << 30, MaxPartSize},
	}
	for _, c := range cases {
		if got := PartSize(c.size, c.want); got != c.got {
			t.Errorf("PartSize(%d, %d) = %d, want %d", c.size, c.want, got, c.got)
		}
		if n := (c.size + c.got - 1) / c.got; n > MaxParts {
			t.Errorf("PartSize(%d, %d) gives %d parts", c.size, c.want, n)
		}
	}
}

func TestEscapeCopySource(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"a/b.jpg":          "bkt/a/b.jpg",
		"dir with space/x": "bkt/dir%20with%20space/x",
		"a+b%c?d#e":        "bkt/a%2Bb%25c%3Fd%23e",
		"ü":                "bkt/%C3%BC",
	}
	for key, want := range cases {
		if got := EscapeCopySource("bkt", key); got != want {
			t.Errorf("EscapeCopySource(%q) = %q, want %q", key, got, want)
		}
	}
}
