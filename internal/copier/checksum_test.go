package copier

import (
	"bytes"
	"context"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestCopyInPartsKeepsWhatCopyObjectKeeps: a copy in parts, like one
// CopyObject, keeps the source's checksum algorithm (and, for the CRC
// family, its full-object checksum, which S3 then checks the assembled
// copy against), an Expires header that is not a date (S3 keeps it as
// written; HeadObject's ExpiresString), and non-ASCII user metadata as S3
// returns it (RFC 2047-encoded, which S3 decodes again when it stores it).
// Through the test bed's Manners, which computes part checksums as S3 does
// where versitygw reports the whole object's, and encodes metadata as S3.
func TestCopyInPartsKeepsWhatCopyObjectKeeps(t *testing.T) {
	env := testbed.Get(t)
	ctx := context.Background()
	src, dst := env.Bucket(t), env.Bucket(t)
	api := env.Manners().Client(src)
	body := randomBytes(11 << 20)
	algorithms := []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha256}
	for _, alg := range algorithms {
		_, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String(string(alg)), Body: bytes.NewReader(body),
			ChecksumAlgorithm: alg, Metadata: map[string]string{"city": "Zürich", "plain": "ascii"}},
			s3.WithAPIOptions(smithyhttp.SetHeaderValue("Expires", "0")))
		if err != nil {
			t.Fatal(err)
		}
	}
	headOf := func(bucket, key string) *s3.HeadObjectOutput {
		t.Helper()
		h, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, mode := range []struct {
		name      string
		threshold int64
	}{{"single", MaxCopyObjectSize}, {"parts", 5 << 20}} {
		c := New(NewDirect(api, nil), Options{MultipartThreshold: mode.threshold, PartSize: 5 << 20})
		for _, alg := range algorithms {
			key := string(alg)
			s := headOf(src, key)
			if err := c.Copy(ctx, Source{Bucket: src, Key: key, Size: aws.ToInt64(s.ContentLength), ETag: aws.ToString(s.ETag)}, Target{Bucket: dst, Key: mode.name + "/" + key}); err != nil {
				t.Fatalf("%s copy of a %s object: %v", mode.name, alg, err)
			}
			d := headOf(dst, mode.name+"/"+key)
			what := mode.name + " copy of a " + key + " object"
			got, want := checksumOf(d), checksumOf(s)
			if got.algorithm != want.algorithm {
				t.Errorf("%s: checksum %s, want %s", what, got.algorithm, want.algorithm)
			}
			if alg != types.ChecksumAlgorithmSha256 && (aws.ToString(got.value) != aws.ToString(want.value) || d.ChecksumType != types.ChecksumTypeFullObject) {
				t.Errorf("%s: %s checksum %q (%s), want the source's %q (FULL_OBJECT)", what, alg, aws.ToString(got.value), d.ChecksumType, aws.ToString(want.value))
			}
			if aws.ToString(d.ExpiresString) != "0" {
				t.Errorf("%s: Expires %q, want \"0\" as written", what, aws.ToString(d.ExpiresString))
			}
			if !maps.Equal(d.Metadata, s.Metadata) || s.Metadata["city"] == "Zürich" {
				t.Errorf("%s: metadata %q, want the source's %q (non-ASCII RFC 2047-encoded, as S3 returns it)", what, d.Metadata, s.Metadata)
			}
		}
	}
}

// TestMultipartChecksumFollowsS3: the checksum a copy in parts asks for,
// by what S3 computes for multipart uploads.
func TestMultipartChecksumFollowsS3(t *testing.T) {
	t.Parallel()
	v, parts := aws.String("AAAA"), aws.String("AAAA-3")
	full, comp := types.ChecksumTypeFullObject, types.ChecksumTypeComposite
	for _, c := range []struct {
		in   checksum
		want checksum
	}{
		{checksum{types.ChecksumAlgorithmCrc32, full, v}, checksum{types.ChecksumAlgorithmCrc32, full, v}},
		{checksum{types.ChecksumAlgorithmCrc32c, "", v}, checksum{types.ChecksumAlgorithmCrc32c, full, v}},
		{checksum{types.ChecksumAlgorithmCrc32, comp, parts}, checksum{types.ChecksumAlgorithmCrc32, comp, nil}},
		{checksum{types.ChecksumAlgorithmCrc32, "", parts}, checksum{types.ChecksumAlgorithmCrc32, comp, nil}}, // "-N": composite, whatever the type says
		{checksum{types.ChecksumAlgorithmCrc64nvme, full, v}, checksum{types.ChecksumAlgorithmCrc64nvme, full, v}},
		{checksum{types.ChecksumAlgorithmSha256, full, v}, checksum{types.ChecksumAlgorithmSha256, comp, nil}},
		{checksum{types.ChecksumAlgorithmSha1, full, v}, checksum{types.ChecksumAlgorithmSha1, comp, nil}},
		{checksum{types.ChecksumAlgorithmSha512, full, v}, checksum{}},
		{checksum{types.ChecksumAlgorithmMd5, full, v}, checksum{}},
		{checksum{types.ChecksumAlgorithmXxhash64, full, v}, checksum{}},
		{checksum{}, checksum{}},
	} {
		got := c.in.multipart()
		if got.algorithm != c.want.algorithm || got.typ != c.want.typ || aws.ToString(got.value) != aws.ToString(c.want.value) {
			t.Errorf("%s %s %q: %+v, want %+v", c.in.algorithm, c.in.typ, aws.ToString(c.in.value), got, c.want)
		}
	}
}
