package job

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
)

// httpError is an error of an HTTP response with status code and no
// error code.
func httpError(code int) error {
	return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("no body")}
}

func TestIsDenied(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"S3 AccessDenied", &smithy.GenericAPIError{Code: "AccessDenied"}, true},
		{"Forbidden", &smithy.GenericAPIError{Code: "Forbidden"}, true},
		{"KMS", &smithy.GenericAPIError{Code: "KMS.AccessDeniedException"}, true},
		{"SQS", &smithy.GenericAPIError{Code: "AWS.SimpleQueueService.AccessDenied"}, true},
		{"AccessDeniedException", &smithy.GenericAPIError{Code: "AccessDeniedException"}, true},
		{"wrapped", errors.Join(errors.New("copy"), &smithy.GenericAPIError{Code: "AccessDenied"}), true},
		{"an archived object's 403", &smithy.GenericAPIError{Code: "InvalidObjectState"}, false},
		{"NoSuchKey", &smithy.GenericAPIError{Code: "NoSuchKey"}, false},
		{"a bare 403", httpError(http.StatusForbidden), true},
		{"a bare 404", httpError(http.StatusNotFound), false},
		{"not an API error", errors.New("connection reset"), false},
		{"nil", nil, false},
	} {
		if got := IsDenied(tc.err); got != tc.want {
			t.Errorf("%s: IsDenied = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDenied(t *testing.T) {
	t.Parallel()
	refused := &smithy.GenericAPIError{Code: "AccessDenied", Message: "no"}
	err := denied(refused, "s3:ListBucket", bucketARN("b"))
	var usage *cli.UsageError
	if !errors.As(err, &usage) {
		t.Fatalf("a refusal is not a usage error: %v", err)
	}
	want := "preflight: access denied: grant s3:ListBucket on arn:aws:s3:::b; if the bucket is Requester Pays, add --request-payer; " +
		"if --source-owner or --dest-owner is given, check it is the bucket's owner (nothing was enqueued)"
	if err.Error() != want {
		t.Errorf("denied = %q, want %q", err, want)
	}
	err = denied(refused, "sqs:SendMessage", "https://sqs/q")
	if want := "preflight: access denied: grant sqs:SendMessage on https://sqs/q (nothing was enqueued)"; err.Error() != want {
		t.Errorf("denied on a queue = %q, want %q", err, want)
	}
	other := &smithy.GenericAPIError{Code: "SlowDown"}
	err = denied(other, "s3:GetObject", objectARN("b", "k"))
	if errors.As(err, &usage) || !errors.Is(err, other) || err.Error() != "preflight (s3:GetObject on arn:aws:s3:::b/k): api error SlowDown: " {
		t.Errorf("another error: %v", err)
	}
}

func TestWriteGrants(t *testing.T) {
	t.Parallel()
	base := "s3:PutObject, s3:PutObjectTagging and s3:PutObjectAnnotation (and s3:GetObjectAnnotation on the source: CopyObject copies annotations)"
	for _, tc := range []struct {
		copy plan.Copy
		want string
	}{
		{plan.Copy{}, base + ` (copies written with --acl "" --sse-kms-key-id "" --storage-class "": if the destination's policy demands an ACL or encryption, give them to the plan)`},
		{plan.Copy{ACL: "bucket-owner-full-control", SSEKMSKeyID: "arn:kms:k", StorageClass: "STANDARD_IA", Lock: true},
			base + " and s3:PutObjectAcl, kms:GenerateDataKey on arn:kms:k, and s3:PutObjectRetention and s3:PutObjectLegalHold" +
				` (copies written with --acl "bucket-owner-full-control" --sse-kms-key-id "arn:kms:k" --storage-class "STANDARD_IA": if the destination's policy demands an ACL or encryption, give them to the plan)`},
	} {
		if got := writeGrants(tc.copy); got != tc.want {
			t.Errorf("writeGrants(%+v) =\n%s\nwant\n%s", tc.copy, got, tc.want)
		}
	}
}

func TestArchived(t *testing.T) {
	t.Parallel()
	for class, want := range map[types.ObjectStorageClass]bool{
		types.ObjectStorageClassGlacier:     true,
		types.ObjectStorageClassDeepArchive: true,
		types.ObjectStorageClassGlacierIr:   false, // instant retrieval copies as it is
		types.ObjectStorageClassStandard:    false,
		"":                                  false,
	} {
		if archived(class) != want {
			t.Errorf("archived(%q) = %v, want %v", class, !want, want)
		}
	}
}

// fakeVersions finds versions from a map; err, if set, is every answer.
type fakeVersions struct {
	then map[string]listing.Object
	err  error
}

func (f fakeVersions) VersionAt(_ context.Context, _, key string) (listing.Object, bool, error) {
	o, ok := f.then[key]
	return o, ok, f.err
}

// recordingCopier records what it was asked to copy.
type recordingCopier struct{ copied []copier.Source }

func (r *recordingCopier) Copy(_ context.Context, src copier.Source, _ copier.Target) error {
	r.copied = append(r.copied, src)
	return nil
}

func TestVersionSample(t *testing.T) {
	t.Parallel()
	rec := &recordingCopier{}
	v := versionSample{copies: rec, asOf: fakeVersions{then: map[string]listing.Object{
		"k": {Key: "k", Size: 5, ETag: `"old"`, StorageClass: "STANDARD_IA", VersionID: "v1"},
	}}}
	ctx := context.Background()
	src := copier.Source{Bucket: "b", Key: "k", Size: 9, ETag: `"now"`}
	if err := v.Copy(ctx, src, copier.Target{Bucket: "d", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	want := copier.Source{Bucket: "b", Key: "k", Size: 5, ETag: `"old"`, StorageClass: "STANDARD_IA", VersionID: "v1"}
	if len(rec.copied) != 1 || rec.copied[0] != want {
		t.Errorf("copied %+v, want the version then %+v", rec.copied, want)
	}
	err := v.Copy(ctx, copier.Source{Bucket: "b", Key: "new"}, copier.Target{})
	if err == nil || err.Error() != "new held nothing at the plan's time" || len(rec.copied) != 1 {
		t.Errorf("a key not there then: %v, copied %d", err, len(rec.copied))
	}
	v.asOf = fakeVersions{err: &smithy.GenericAPIError{Code: "AccessDenied"}}
	err = v.Copy(ctx, src, copier.Target{})
	var usage *cli.UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "grant s3:ListBucketVersions on arn:aws:s3:::b") {
		t.Errorf("a refused version listing: %v", err)
	}
}
