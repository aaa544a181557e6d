package copier

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3clone/s3clone/test/testbed"
)

func TestCopySourceNamesTheVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		key, version, want string
	}{
		{"a/b.jpg", "", "bkt/a/b.jpg"},
		{"a/b.jpg", "null", "bkt/a/b.jpg?versionId=null"},
		{"a/b.jpg", "3/L4kqtJl40Nr8X8gdRQBpUMLUo", "bkt/a/b.jpg?versionId=3%2FL4kqtJl40Nr8X8gdRQBpUMLUo"},
		{"q?versionId=x&y", "v+1", "bkt/q%3FversionId%3Dx%26y?versionId=v%2B1"}, // the key's own "?" cannot start the query
	}
	for _, c := range cases {
		if got := (Source{Bucket: "bkt", Key: c.key, VersionID: c.version}).CopySource(); got != c.want {
			t.Errorf("CopySource(%q, version %q) = %q, want %q", c.key, c.version, got, c.want)
		}
	}
}

// versionFake answers every call the copier makes and records the version
// each read of the source asked for.
type versionFake struct {
	API
	mu    sync.Mutex
	reads map[string][]string // call -> the versions asked for ("" for none)
}

func (f *versionFake) note(call string, version *string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reads == nil {
		f.reads = map[string][]string{}
	}
	f.reads[call] = append(f.reads[call], aws.ToString(version))
}

// copySourceVersion is the versionId query of a CopySource header.
func copySourceVersion(cs *string) *string {
	_, q, ok := strings.Cut(aws.ToString(cs), "?versionId=")
	if !ok {
		return nil
	}
	return &q
}

func (f *versionFake) CopyObject(_ context.Context, in *s3.CopyObjectInput, _ ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	f.note("CopyObject", copySourceVersion(in.CopySource))
	return &s3.CopyObjectOutput{}, nil
}

func (f *versionFake) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.note("HeadObject", in.VersionId)
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(12 << 20), ETag: aws.String(`"e"`), TagCount: aws.Int32(1)}, nil
}

func (f *versionFake) GetObjectTagging(_ context.Context, in *s3.GetObjectTaggingInput, _ ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error) {
	f.note("GetObjectTagging", in.VersionId)
	return &s3.GetObjectTaggingOutput{TagSet: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}, nil
}

func (f *versionFake) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return &s3.CreateMultipartUploadOutput{Bucket: in.Bucket, Key: in.Key, UploadId: aws.String("u")}, nil
}

func (f *versionFake) UploadPartCopy(_ context.Context, in *s3.UploadPartCopyInput, _ ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	f.note("UploadPartCopy", copySourceVersion(in.CopySource))
	return &s3.UploadPartCopyOutput{CopyPartResult: &types.CopyPartResult{ETag: aws.String(`"p"`)}}, nil
}

func (f *versionFake) CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return &s3.CompleteMultipartUploadOutput{ETag: aws.String(`"m-3"`)}, nil
}

func (f *versionFake) ListObjectAnnotations(_ context.Context, in *s3.ListObjectAnnotationsInput, _ ...func(*s3.Options)) (*s3.ListObjectAnnotationsOutput, error) {
	f.note("ListObjectAnnotations", in.VersionId)
	return &s3.ListObjectAnnotationsOutput{Annotations: []types.AnnotationEntry{{AnnotationName: aws.String("a")}}}, nil
}

func (f *versionFake) GetObjectAnnotation(_ context.Context, in *s3.GetObjectAnnotationInput, _ ...func(*s3.Options)) (*s3.GetObjectAnnotationOutput, error) {
	f.note("GetObjectAnnotation", in.VersionId)
	return &s3.GetObjectAnnotationOutput{AnnotationPayload: io.NopCloser(strings.NewReader("note"))}, nil
}

func (f *versionFake) PutObjectAnnotation(context.Context, *s3.PutObjectAnnotationInput, ...func(*s3.Options)) (*s3.PutObjectAnnotationOutput, error) {
	return &s3.PutObjectAnnotationOutput{}, nil
}

// TestEveryReadOfTheSourceNamesTheVersion: with a version, the copy (and
// each part of it), the metadata, tags and annotations all read that
// version; without one, none names any.
func TestEveryReadOfTheSourceNamesTheVersion(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v1", "null", ""} {
		for _, w := range []Write{{}, {Redirects: true}} {
			f := &versionFake{}
			c := New(f, Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20})
			ctx := context.Background()
			src := Source{Bucket: "src", Key: "k", ETag: `"e"`, VersionID: version}
			src.Size = 1 << 20
			if err := c.Copy(ctx, src, Target{Bucket: "dst", Key: "k", Write: w}); err != nil {
				t.Fatal(err)
			}
			src.Size = 12 << 20
			if err := c.Copy(ctx, src, Target{Bucket: "dst", Key: "k", Write: w}); err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"CopyObject": 1, "HeadObject": 1, "GetObjectTagging": 1, "UploadPartCopy": 3, "ListObjectAnnotations": 1, "GetObjectAnnotation": 1}
			if w.Redirects {
				want["HeadObject"]++ // the single copy reads what S3 does not copy
			}
			for call, n := range want {
				got := f.reads[call]
				if len(got) != n {
					t.Errorf("version %q, write %+v: %d %s calls, want %d", version, w, len(got), call, n)
				}
				for _, v := range got {
					if v != version {
						t.Errorf("version %q: %s read version %q", version, call, v)
					}
				}
			}
		}
	}
}

// TestAVersionGoneIsVanished: S3 answers a copy of a version deleted since
// the plan with 404 NoSuchVersion (a HeadObject of it with a bare 404).
func TestAVersionGoneIsVanished(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		&smithy.GenericAPIError{Code: "NoSuchVersion"},
		&smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: http.StatusNotFound}}, Err: &smithy.GenericAPIError{Code: "NoSuchVersion"}},
		&smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: http.StatusNotFound}}, Err: io.EOF},
	} {
		if got := Classify(err); got.Reason != ReasonVanished {
			t.Errorf("Classify(%v) = %q, want %q", err, got.Reason, ReasonVanished)
		}
	}
}

// enableVersioning turns versioning on for bucket, as PutBucketVersioning does on S3.
func enableVersioning(t *testing.T, api *s3.Client, bucket string) {
	t.Helper()
	_, err := api.PutBucketVersioning(context.Background(), &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	if err != nil {
		t.Fatalf("enable versioning on %s: %v", bucket, err)
	}
}

// TestCopyAnOlderVersion copies versions that are no longer current, on
// both paths (CopyObject, and UploadPartCopy with HeadObject and
// GetObjectTagging) and through the direct CopyObject: each copy holds
// that version's content, metadata and tags, not the current ones. A
// version written before versioning was enabled ("null") copies too, and
// one deleted since is vanished.
func TestCopyAnOlderVersion(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	src, dst := env.Bucket(t), env.Bucket(t)
	api := env.Manners().Client(src)
	put := func(key string, body []byte, meta, tags string) string {
		out, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String(key), Body: bytes.NewReader(body),
			Metadata: map[string]string{"m": meta}, Tagging: aws.String("t=" + tags), ContentType: aws.String("text/" + meta)})
		if err != nil {
			t.Fatal(err)
		}
		if v := aws.ToString(out.VersionId); v != "" {
			return v
		}
		return "null"
	}
	oldSmall, oldBig := []byte("the old small one"), randomBytes(11<<20+7)
	nullVer := put("before", []byte("written before versioning"), "before", "before")
	enableVersioning(t, api, src)
	put("before", []byte("after versioning"), "after", "after")
	smallVer := put("dir with space/a+b?c", oldSmall, "old", "old")
	put("dir with space/a+b?c", []byte("the new small one"), "new", "new")
	bigVer := put("big", oldBig, "old", "old")
	put("big", randomBytes(6<<20), "new", "new")
	gone := put("gone", []byte("soon gone"), "old", "old")
	put("gone", []byte("current"), "new", "new")
	if _, err := api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(src), Key: aws.String("gone"), VersionId: aws.String(gone)}); err != nil {
		t.Fatal(err)
	}

	etag := func(key, version string) string {
		h, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(src), Key: aws.String(key), VersionId: aws.String(version)})
		if err != nil {
			t.Fatalf("head %s version %s: %v", key, version, err)
		}
		return aws.ToString(h.ETag)
	}
	direct := NewDirect(api, nil)
	c := New(direct, Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20})
	for _, o := range []struct {
		key, version, meta string
		body               []byte
	}{
		{"before", nullVer, "before", []byte("written before versioning")},
		{"dir with space/a+b?c", smallVer, "old", oldSmall},
		{"big", bigVer, "old", oldBig},
	} {
		s := Source{Bucket: src, Key: o.key, Size: int64(len(o.body)), ETag: etag(o.key, o.version), VersionID: o.version}
		if err := c.Copy(ctx, s, Target{Bucket: dst, Key: o.key}); err != nil {
			t.Fatalf("copy %s version %s: %v", o.key, o.version, err)
		}
		got := readProps(t, env, dst, o.key)
		want := props{Body: o.body, ContentType: "text/" + o.meta, Metadata: map[string]string{"m": o.meta}, Tags: map[string]string{"t": o.meta}}
		sameProps(t, o.key+" version "+o.version, got, want)
	}
	if direct.Sent() == 0 || direct.Sent() != 2 || direct.FellBack() != 0 {
		t.Errorf("direct path: %d sent, %d through the SDK again; want the two single copies sent directly, none again", direct.Sent(), direct.FellBack())
	}
	for _, threshold := range []int64{MaxCopyObjectSize, 5 << 20} {
		c := New(direct, Options{MultipartThreshold: threshold, PartSize: 5 << 20})
		err := c.Copy(ctx, Source{Bucket: src, Key: "gone", Size: 9 << 20, VersionID: gone}, Target{Bucket: dst, Key: "gone"})
		if ce := Classify(err); ce == nil || ce.Reason != ReasonVanished {
			t.Errorf("a version deleted since the plan (threshold %d): %v, want reason %q", threshold, err, ReasonVanished)
		}
	}
}
