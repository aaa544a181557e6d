package config

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/singleflight"

	"github.com/s3clone/s3clone/internal/ownership"
)

// Regions finds each bucket's region once (HeadBucket, whose answer, even
// a refusal or a redirect, names it in x-amz-bucket-region) and hands out
// an S3 client signed for each region. A region set for a bucket (a flag,
// a message that names it) is used as given. Safe for concurrent use.
type Regions struct {
	aws *AWS
	cfg aws.Config

	mu      sync.Mutex
	clients map[string]*s3.Client // by region
	buckets map[string]string     // bucket -> region
	finding singleflight.Group    // one HeadBucket a bucket at a time
}

// Regions returns the region finder of cfg's clients.
func (a *AWS) Regions(cfg aws.Config) *Regions {
	if a.Owners == nil {
		a.Owners = new(ownership.Book)
	}
	return &Regions{aws: a, cfg: cfg, clients: map[string]*s3.Client{}, buckets: map[string]string{}}
}

// Owners is the book of bucket owners and payers every client follows.
func (r *Regions) Owners() *ownership.Book { return r.aws.Owners }

// Client is the S3 client for region, built once.
func (r *Regions) Client(region string) *s3.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[region]; ok {
		return c
	}
	cfg := r.cfg.Copy()
	cfg.Region = region
	c := r.aws.S3(cfg)
	r.clients[region] = c
	return c
}

// Set records bucket's region.
func (r *Regions) Set(bucket, region string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buckets[bucket] = region
}

// Forget drops what is known of bucket's region.
func (r *Regions) Forget(bucket string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.buckets, bucket)
}

// Region returns bucket's region: hint when it names one, else the region
// known or found for it. A bucket whose region S3 does not say (some
// S3-compatible servers) is taken to be in the configured region.
func (r *Regions) Region(ctx context.Context, bucket, hint string) (string, error) {
	if hint != "" {
		return hint, nil
	}
	r.mu.Lock()
	region, ok := r.buckets[bucket]
	r.mu.Unlock()
	if ok {
		return region, nil
	}
	v, err, _ := r.finding.Do(bucket, func() (any, error) {
		region, said, err := r.find(ctx, bucket)
		if err == nil && said {
			r.Set(bucket, region) // what S3 did not say is asked again next time
		}
		return region, err
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// For is bucket's region and the client signed for it.
func (r *Regions) For(ctx context.Context, bucket, hint string) (*s3.Client, string, error) {
	region, err := r.Region(ctx, bucket, hint)
	if err != nil {
		return nil, "", err
	}
	return r.Client(region), region, nil
}

// find asks S3 for bucket's region with a HeadBucket in the configured
// region: a bucket elsewhere answers 301 (or 400) naming its region, and
// one these credentials may not read answers 403 naming it too. said is
// false when the answer named no region and the configured one stands in.
//
// The SDK's own lookup, manager.GetBucketRegion (feature/s3/manager), asks
// the same HeadBucket but does not do this job:
//   - it sends it unsigned (it sets Credentials to nil); S3 answers an
//     anonymous HeadBucket with the region, but a VPC endpoint policy, a
//     proxy or an S3-compatible server may refuse it without naming one,
//     where the signed request is answered (or refused in words that say
//     why, for the checks that follow);
//   - a refusal that names no region (a 403 from a server that does not
//     send x-amz-bucket-region) is an error there; here the configured
//     region stands in, unremembered, so the calls that follow give the
//     real reason;
//   - a 200 without the header is "" there; here it is the configured
//     region (a one-region server);
//   - a 404 becomes its own "bucket not found" error, dropping the SDK's
//     error (code, request id) that callers here wrap and print, while
//     an unreachable endpoint is an error both ways;
//   - it would add a module, feature/s3/manager, which is deprecated in
//     favour of feature/s3/transfermanager (which has no region lookup).
//
// Both honour the client's endpoint (custom endpoints, path style), its
// retryer and middleware; find also bounds the retries (startupCheck).
func (r *Regions) find(ctx context.Context, bucket string) (region string, said bool, err error) {
	out, err := r.Client(r.cfg.Region).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}, startupCheck)
	if err == nil {
		if region := aws.ToString(out.BucketRegion); region != "" {
			return region, true, nil
		}
		return r.cfg.Region, true, nil // a server that does not say has one region
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if region := re.Response.Header.Get("X-Amz-Bucket-Region"); region != "" {
			return region, true, nil
		}
	}
	var nf *s3types.NotFound
	var nb *s3types.NoSuchBucket
	if errors.As(err, &nf) || errors.As(err, &nb) || (errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound) || unreachable(err) {
		return "", false, err
	}
	return r.cfg.Region, false, nil // refused without saying where: the calls that follow will say why
}
