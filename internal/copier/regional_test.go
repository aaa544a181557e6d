package copier

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// fakeRegions knows a bucket's region once asked (find), and may start out
// wrong (known), as a stale message or a mistaken flag would.
type fakeRegions struct {
	mu     sync.Mutex
	truth  map[string]string // where buckets are
	known  map[string]string // what the copier is told
	finds  int
	forgot []string
}

func (f *fakeRegions) Region(_ context.Context, bucket, hint string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if hint != "" {
		return hint, nil
	}
	if r, ok := f.known[bucket]; ok {
		return r, nil
	}
	f.finds++
	f.known[bucket] = f.truth[bucket]
	return f.truth[bucket], nil
}

func (f *fakeRegions) Forget(bucket string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.known, bucket)
	f.forgot = append(f.forgot, bucket)
}

func (f *fakeRegions) Client(string) *s3.Client { return nil }

// regionalAPI answers as a bucket's region does: a request sent to another
// region is refused as S3 refuses it.
type regionalAPI struct {
	API
	region string
	truth  map[string]string
	copies *int
}

func (a regionalAPI) CopyObject(_ context.Context, in *s3.CopyObjectInput, _ ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if want := a.truth[aws.ToString(in.Bucket)]; want != a.region {
		return nil, &smithy.GenericAPIError{Code: "AuthorizationHeaderMalformed", Message: "the region '" + a.region + "' is wrong; expecting '" + want + "'"}
	}
	*a.copies++
	return &s3.CopyObjectOutput{}, nil
}

// TestRegionalAsksAgainAfterAWrongRegion: a message naming the wrong region
// for its destination is refused once, the region is asked of S3 again,
// and the copy goes to the right one: never failed for it.
func TestRegionalAsksAgainAfterAWrongRegion(t *testing.T) {
	truth := map[string]string{"src": "eu-west-1", "dst": "ap-southeast-2"}
	regions := &fakeRegions{truth: truth, known: map[string]string{}}
	copies := 0
	r := NewRegional(regions, Options{})
	r.API = func(region string, _ *s3.Client) API {
		return regionalAPI{region: region, truth: truth, copies: &copies}
	}

	err := r.Copy(context.Background(), Source{Bucket: "src", Region: "eu-west-1", Key: "k", Size: 1},
		Target{Bucket: "dst", Region: "us-east-1", Key: "k"}) // the message is wrong about dst
	if err != nil || copies != 1 {
		t.Fatalf("copy: %v (%d copies made)", err, copies)
	}
	if regions.finds != 2 || len(regions.forgot) != 2 {
		t.Fatalf("%d regions found, %v forgotten; want both buckets asked again", regions.finds, regions.forgot)
	}
	// A message with no regions (an older planner's): found once, then known.
	for range 3 {
		if err := r.Copy(context.Background(), Source{Bucket: "src", Key: "k2", Size: 1}, Target{Bucket: "dst", Key: "k2"}); err != nil {
			t.Fatal(err)
		}
	}
	if regions.finds != 2 || copies != 4 {
		t.Fatalf("%d finds, %d copies; want no more finds", regions.finds, copies)
	}
}
