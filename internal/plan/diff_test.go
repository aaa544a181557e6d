package plan

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/internal/listing"
)

// checksums answers HeadObject with fixed checksums per key.
type checksums map[string]*s3.HeadObjectOutput

func (c checksums) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if h, ok := c[aws.ToString(in.Key)]; ok {
		return h, nil
	}
	return &s3.HeadObjectOutput{}, nil
}

func TestCompareRule(t *testing.T) {
	t.Parallel()
	old, young := time.Unix(1000, 0), time.Unix(2000, 0)
	md5a, md5b, multi := `"0123456789abcdef0123456789abcdef"`, `"fedcba9876543210fedcba9876543210"`, `"0123456789abcdef0123456789abcdef-3"`
	obj := func(key string, size int64, etag string, mod time.Time) *listing.Object {
		return &listing.Object{Key: key, Size: size, ETag: etag, LastModified: mod}
	}
	heads := checksums{
		"s/same":     {ChecksumCRC32: aws.String("AAA="), ChecksumType: types.ChecksumTypeFullObject},
		"d/same":     {ChecksumCRC32: aws.String("AAA="), ChecksumType: types.ChecksumTypeFullObject},
		"s/differs":  {ChecksumCRC32: aws.String("AAA="), ChecksumType: types.ChecksumTypeFullObject},
		"d/differs":  {ChecksumCRC32: aws.String("BBB="), ChecksumType: types.ChecksumTypeFullObject},
		"s/composed": {ChecksumCRC32: aws.String("AAA=-3"), ChecksumType: types.ChecksumTypeComposite},
		"d/composed": {ChecksumCRC32: aws.String("CCC=-2"), ChecksumType: types.ChecksumTypeComposite},
	}
	cmp := &Comparer{Src: heads, Dst: heads}
	cases := []struct {
		name     string
		src, dst *listing.Object
		want     Problem
		reason   string
	}{
		{"source only", obj("s/k", 1, md5a, old), nil, Missing, "not in destination"},
		{"destination only", nil, obj("d/k", 1, md5a, old), Extra, "not in source"},
		{"sizes differ", obj("s/k", 1, md5a, old), obj("d/k", 2, md5a, young), Different, "size"},
		{"same MD5", obj("s/k", 1, md5a, young), obj("d/k", 1, md5a, old), Match, "etag"},
		{"other MD5", obj("s/k", 1, md5a, old), obj("d/k", 1, md5b, young), Different, "etag"},
		{"multipart, same checksum", obj("s/same", 1, multi, young), obj("d/same", 1, md5b, old), Match, "checksum"},
		{"multipart, other full checksum", obj("s/differs", 1, multi, old), obj("d/differs", 1, md5b, young), Different, "checksum"},
		{"multipart, composite checksums prove nothing: age decides", obj("s/composed", 1, multi, old), obj("d/composed", 1, multi, young), Match, "size and age"},
		{"multipart, no checksums, source older", obj("s/k", 1, multi, old), obj("d/k", 1, md5a, young), Match, "size and age"},
		{"multipart, no checksums, source newer", obj("s/k", 1, multi, young), obj("d/k", 1, md5a, old), Different, "source newer"},
	}
	for _, c := range cases {
		got, reason, err := cmp.Compare(context.Background(), listing.Pair{Key: "k", Src: c.src, Dst: c.dst})
		if err != nil || got != c.want || reason != c.reason {
			t.Errorf("%s: %s (%s), %v; want %s (%s)", c.name, got, reason, err, c.want, c.reason)
		}
	}
}
