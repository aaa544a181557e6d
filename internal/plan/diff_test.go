package plan

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3clone/s3clone/internal/listing"
)

// checksums answers HeadObject with fixed checksums per key.
type checksums map[string]*s3.HeadObjectOutput

func (c checksums) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	switch aws.ToString(in.Key) {
	case "s/kmsdenied":
		if in.ChecksumMode == types.ChecksumModeEnabled { // a checksum of an SSE-KMS object needs kms:Decrypt
			return nil, &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 403}}, Err: errors.New("forbidden")}
		}
		return &s3.HeadObjectOutput{ServerSideEncryption: types.ServerSideEncryptionAwsKms}, nil
	case "d/gone", "s/gone":
		return nil, &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 404}}, Err: errors.New("not found")}
	case "s/ssec":
		return nil, &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 400}}, Err: errors.New("bad request")}
	}
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
		"s/kms":      {ServerSideEncryption: types.ServerSideEncryptionAwsKms},
		"d/kms":      {ServerSideEncryption: types.ServerSideEncryptionAwsKms},
		"s/kmssum":   {ServerSideEncryption: types.ServerSideEncryptionAwsKms, ChecksumCRC64NVME: aws.String("AAA="), ChecksumType: types.ChecksumTypeFullObject},
		"d/kmssum":   {ServerSideEncryption: types.ServerSideEncryptionAwsKms, ChecksumCRC64NVME: aws.String("BBB="), ChecksumType: types.ChecksumTypeFullObject},
		"s/plain":    {ServerSideEncryption: types.ServerSideEncryptionAes256},
		// Newer algorithms S3 reports (HeadObject's ChecksumSHA512, ...XXHASH*).
		"s/xx":  {ChecksumXXHASH64: aws.String("AAA="), ChecksumType: types.ChecksumTypeFullObject},
		"d/xx":  {ChecksumXXHASH64: aws.String("BBB="), ChecksumType: types.ChecksumTypeFullObject},
		"s/sha": {ChecksumSHA512: aws.String("AAA="), ChecksumType: types.ChecksumTypeFullObject},
		"d/sha": {ChecksumSHA512: aws.String("AAA="), ChecksumType: types.ChecksumTypeFullObject},
		"s/md5": {ChecksumMD5: aws.String("AAA="), ChecksumType: types.ChecksumTypeFullObject},
		"d/md5": {ChecksumMD5: aws.String("BBB="), ChecksumType: types.ChecksumTypeFullObject},
		// A website redirect the copy lacks.
		"s/redirect": {WebsiteRedirectLocation: aws.String("/new.html")},
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
		{"multipart, composite checksums prove nothing: age decides", obj("s/composed", 1, multi, old), obj("d/composed", 1, md5b, young), Match, "size and age"},
		{"the same multipart ETag", obj("s/k", 1, multi, young), obj("d/k", 1, multi, old), Match, "etag"},
		{"multipart, no checksums, source older", obj("s/k", 1, multi, old), obj("d/k", 1, md5a, young), Match, "size and age"},
		{"multipart, no checksums, source newer", obj("s/k", 1, multi, young), obj("d/k", 1, md5a, old), Different, "source newer"},
		{"SSE-KMS on both sides: ETags are not MD5s, age decides", obj("s/kms", 1, md5a, old), obj("d/kms", 1, md5b, young), Match, "size and age"},
		{"SSE-KMS copy of a plain source", obj("s/plain", 1, md5a, old), obj("d/kms", 1, md5b, young), Match, "size and age"},
		{"SSE-KMS, checksums differ", obj("s/kmssum", 1, md5a, old), obj("d/kmssum", 1, md5b, young), Different, "checksum"},
		{"SSE-KMS, source rewritten after the copy", obj("s/kms", 1, md5a, young), obj("d/kms", 1, md5b, old), Different, "source newer"},
		{"deleted while diffed", obj("s/gone", 1, md5a, old), obj("d/k", 1, md5b, young), Vanished, "head s3:///s/gone: http response error StatusCode: 404, not found"},
		{"the copy deleted while diffed", obj("s/k", 1, md5a, old), obj("d/gone", 1, md5b, young), Missing, "not in destination (deleted while compared)"},
		{"no kms:Decrypt for the checksum: the metadata still says SSE-KMS", obj("s/kmsdenied", 1, md5a, old), obj("d/kms", 1, md5b, young), Match, "size and age"},
		{"XXHASH64 checksums differ", obj("s/xx", 1, multi, old), obj("d/xx", 1, md5b, young), Different, "checksum"},
		{"SHA512 checksums equal", obj("s/sha", 1, multi, young), obj("d/sha", 1, md5b, old), Match, "checksum"},
		{"MD5 checksums differ", obj("s/md5", 1, multi, old), obj("d/md5", 1, md5b, young), Different, "checksum"},
		{"a redirect is not compared without Redirects", obj("s/redirect", 1, md5a, old), obj("d/k", 1, md5a, young), Match, "etag"},
	}
	for _, c := range cases {
		got, reason, err := cmp.Compare(context.Background(), listing.Pair{Key: "k", Src: c.src, Dst: c.dst})
		if err != nil || got != c.want || reason != c.reason {
			t.Errorf("%s: %s (%s), %v; want %s (%s)", c.name, got, reason, err, c.want, c.reason)
		}
	}
	// With Redirects, a pair with equal ETags is looked at too: a redirect
	// the copy lacks makes it different.
	redirects := &Comparer{Src: heads, Dst: heads, Redirects: true}
	for _, c := range []struct {
		src  string
		want Problem
	}{{"s/redirect", Different}, {"s/k", Match}} {
		got, reason, err := redirects.Compare(context.Background(), listing.Pair{Key: "k", Src: obj(c.src, 1, md5a, old), Dst: obj("d/k", 1, md5a, young)})
		if err != nil || got != c.want {
			t.Errorf("Redirects, %s: %s (%s), %v; want %s", c.src, got, reason, err, c.want)
		}
	}
	// A key that cannot be inspected (an SSE-C object) is reported, not fatal.
	got, reason, err := cmp.Compare(context.Background(), listing.Pair{Key: "k", Src: obj("s/ssec", 1, md5a, old), Dst: obj("d/k", 1, md5b, young)})
	if err != nil || got != Unknown || reason == "" {
		t.Errorf("SSE-C source: %s (%s), %v; want unknown", got, reason, err)
	}
}

// TestDiffReturnsTheFirstCause: a diff stops at the first error of found,
// with many findings still on the way, and returns it; stopped from
// outside, it returns why. found hears of nothing after it failed.
func TestDiffReturnsTheFirstCause(t *testing.T) {
	t.Parallel()
	errBoom, errStop := errors.New("boom"), errors.New("stopped")
	cases := map[string]struct {
		stop bool
		want error
	}{
		"found fails": {want: errBoom},
		"ctx ends":    {stop: true, want: errStop},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			// Every source key is missing from the empty destination.
			p := listing.NewPaired(listing.Side{API: syntheticBucket{n: 20_000}, Bucket: "s"}, listing.Side{API: syntheticBucket{}, Bucket: "d"}, listing.Options{})
			var counts DiffCounts
			calls := 0
			err := Diff(ctx, p, &Comparer{}, &counts, func(ctx context.Context, _ Finding) error {
				calls++
				if c.stop {
					cancel(errStop)
					return ctx.Err()
				}
				return errBoom
			})
			if !errors.Is(err, c.want) {
				t.Fatalf("Diff = %v, want %v", err, c.want)
			}
			if calls != 1 {
				t.Errorf("found called %d times, want once", calls)
			}
		})
	}
}

// TestVanishedWhileComparedIsExtra: a source object deleted between the
// listing and its HeadObject leaves the destination's copy as an object the
// source does not have: found as extra (a --delete diff removes it, a
// verify reports it), and counted vanished too.
func TestVanishedWhileComparedIsExtra(t *testing.T) {
	t.Parallel()
	at := time.Unix(1000, 0)
	pairs := make(chan []listing.Pair, 1)
	pairs <- []listing.Pair{{Key: "gone",
		Src: &listing.Object{Key: "s/gone", Size: 5, ETag: `"0123456789abcdef0123456789abcdef"`, LastModified: at},
		Dst: &listing.Object{Key: "d/gone2", Size: 5, ETag: `"fedcba9876543210fedcba9876543210"`, LastModified: at}}}
	close(pairs)
	findings := make(chan Finding, 1)
	var counts DiffCounts
	if err := decide(context.Background(), &Comparer{Src: checksums{}, Dst: checksums{}}, &counts, pairs, findings); err != nil {
		t.Fatal(err)
	}
	close(findings)
	f, ok := <-findings
	if !ok || f.Problem != Extra || f.Dst == nil || f.Dst.Key != "d/gone2" {
		t.Fatalf("finding %+v, want the destination's object as extra", f)
	}
	if counts.Extra.Load() != 1 || counts.Vanished.Load() != 1 || counts.Compared.Load() != 1 {
		t.Errorf("counts: extra %d, vanished %d, compared %d; want 1, 1, 1", counts.Extra.Load(), counts.Vanished.Load(), counts.Compared.Load())
	}
}

// TestRecheck: a pair looked at again now, by HeadObject on each side,
// gives the record that fixes it, or says it is right (both gone counts),
// or Unknown when a side cannot be read.
func TestRecheck(t *testing.T) {
	t.Parallel()
	heads := checksums{
		"s/big":   {ContentLength: aws.Int64(5), ETag: aws.String(`"a"`)},
		"d/small": {ContentLength: aws.Int64(3), ETag: aws.String(`"b"`)},
		"s/same":  {ContentLength: aws.Int64(4), ETag: aws.String(`"c"`)},
		"d/same":  {ContentLength: aws.Int64(4), ETag: aws.String(`"c"`)},
	}
	cmp := &Comparer{Src: heads, Dst: heads, SrcBucket: "src", DstBucket: "dst"}
	for _, c := range []struct {
		src, dst string
		want     Problem
		reason   string
		hasSrc   bool
		hasDst   bool
	}{
		{"s/gone", "d/gone", Match, "in neither bucket", false, false},
		{"s/same", "d/same", Match, "etag", false, false},
		{"s/big", "d/gone", Missing, "not in destination", true, false},
		{"s/gone", "d/small", Extra, "not in source", false, true},
		{"s/big", "d/small", Different, "size", true, true},
		{"s/ssec", "d/small", Unknown, "", false, false},
	} {
		rec, err := cmp.Recheck(context.Background(), "k", c.src, c.dst)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Key != "k" || rec.Problem != c.want || (c.reason != "" && rec.Reason != c.reason) || (rec.Source != nil) != c.hasSrc || (rec.Dest != nil) != c.hasDst {
			t.Errorf("%s ~ %s: %+v; want %s (%s), source %v, destination %v", c.src, c.dst, rec, c.want, c.reason, c.hasSrc, c.hasDst)
		}
		if c.hasSrc && (rec.Source.Key != c.src || rec.Source.ETag == "") {
			t.Errorf("%s: the record's source %+v is not what HeadObject said", c.src, rec.Source)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Comparer{Src: stopped{}, Dst: stopped{}}).Recheck(ctx, "k", "s", "d"); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled recheck returned %v, want context.Canceled", err)
	}
}

// versionsThen is a source as of a time: key -> its version then.
type versionsThen map[string]listing.Object

func (v versionsThen) VersionAt(_ context.Context, bucket, key string) (listing.Object, bool, error) {
	if bucket != "src" {
		return listing.Object{}, false, errors.New("asked of " + bucket)
	}
	if key == "s/unreadable" {
		return listing.Object{}, false, errors.New("access denied")
	}
	o, ok := v[key]
	return o, ok, nil
}

// TestRecheckAsOf: with the source as of a time, a pair is looked at again
// with the source's version then, not its object now: a key changed since
// matches a copy of its version then, a key that held nothing then is
// extra, and one missing from the destination is recorded with the
// version's size and ETag.
func TestRecheckAsOf(t *testing.T) {
	t.Parallel()
	now := checksums{ // the source now: every key changed since the time
		"s/changed": {ContentLength: aws.Int64(9), ETag: aws.String(`"now"`)},
		"s/new":     {ContentLength: aws.Int64(9), ETag: aws.String(`"now"`)},
		"s/deleted": {ContentLength: aws.Int64(9), ETag: aws.String(`"now"`)},
		"d/changed": {ContentLength: aws.Int64(4), ETag: aws.String(`"then"`)},
		"d/new":     {ContentLength: aws.Int64(9), ETag: aws.String(`"now"`)},
	}
	then := versionsThen{
		"s/changed": {Key: "s/changed", Size: 4, ETag: `"then"`, VersionID: "v1"},
		"s/deleted": {Key: "s/deleted", Size: 6, ETag: `"gone"`, VersionID: "v0"},
	}
	cmp := &Comparer{Src: now, Dst: now, SrcBucket: "src", DstBucket: "dst", AsOf: then}
	for _, c := range []struct {
		src, dst string
		want     Problem
		reason   string
	}{
		{"s/changed", "d/changed", Match, "etag"},
		{"s/new", "d/new", Extra, "not in source"},
		{"s/deleted", "d/gone", Missing, "not in destination"},
		{"s/unreadable", "d/changed", Unknown, ""},
	} {
		rec, err := cmp.Recheck(context.Background(), "k", c.src, c.dst)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Problem != c.want || (c.reason != "" && rec.Reason != c.reason) {
			t.Errorf("%s ~ %s: %+v; want %s (%s)", c.src, c.dst, rec, c.want, c.reason)
		}
	}
	rec, _ := cmp.Recheck(context.Background(), "k", "s/deleted", "d/gone")
	if rec.Source == nil || rec.Source.ETag != `"gone"` || rec.Source.Size != 6 {
		t.Errorf("the record of a key missing from the destination: source %+v, want the version then", rec.Source)
	}
}

// stopped answers every HeadObject with its context's error.
type stopped struct{}

func (stopped) HeadObject(ctx context.Context, _ *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return nil, ctx.Err()
}
