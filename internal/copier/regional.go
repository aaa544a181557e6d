package copier

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Regions says which region a bucket is in, finding out when it must.
// *config.Regions is the one the binaries use.
type Regions interface {
	// Region returns bucket's region: the one hint names when not "", else
	// the one found (and remembered) for it.
	Region(ctx context.Context, bucket, hint string) (string, error)
	// Forget drops what is known of bucket's region, after S3 said it is
	// wrong: the next Region asks S3 again (HeadBucket's answer).
	Forget(bucket string)
	// Client is an S3 client signed for region, built once.
	Client(region string) *s3.Client
}

// Regional copies between buckets of any regions: CopyObject,
// UploadPartCopy and the rest of a copy go to the destination's region,
// the source's metadata and tags are read in the source's. A region a
// message names is used as is; one it does not is found (HeadBucket). A
// request S3 refuses as addressed to the wrong region is sent again once
// the bucket's region has been asked for anew: never failed or retried
// into the dead-letter queue for it. Safe for concurrent use.
type Regional struct {
	regions Regions
	opts    Options
	// API turns a region's client into what copies go through (the direct
	// path, or the client itself). Default: the client.
	API func(region string, client *s3.Client) API

	mu      sync.Mutex
	apis    map[string]API
	copiers map[[2]string]*Copier
}

// NewRegional returns a Regional copier over regions.
func NewRegional(regions Regions, opts Options) *Regional {
	return &Regional{regions: regions, opts: opts, apis: map[string]API{}, copiers: map[[2]string]*Copier{}}
}

func (r *Regional) api(region string) API {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.apis[region]; ok {
		return a
	}
	client := r.regions.Client(region)
	var a API = client
	if r.API != nil {
		a = r.API(region, client)
	}
	r.apis[region] = a
	return a
}

func (r *Regional) copier(srcRegion, dstRegion string) *Copier {
	src, dst := r.api(srcRegion), r.api(dstRegion)
	r.mu.Lock()
	defer r.mu.Unlock()
	key := [2]string{srcRegion, dstRegion}
	if c, ok := r.copiers[key]; ok {
		return c
	}
	c := NewBetween(src, dst, r.opts)
	r.copiers[key] = c
	return c
}

// Copy copies src to dst, each in its region.
func (r *Regional) Copy(ctx context.Context, src Source, dst Target) error {
	for attempt := 0; ; attempt++ {
		srcRegion, err := r.regions.Region(ctx, src.Bucket, src.Region)
		if err != nil {
			return lookupError(err)
		}
		dstRegion, err := r.regions.Region(ctx, dst.Bucket, dst.Region)
		if err != nil {
			return lookupError(err)
		}
		err = r.copier(srcRegion, dstRegion).Copy(ctx, src, dst)
		if attempt > 0 || !WrongRegion(err) {
			return err
		}
		// Ask S3 again where both buckets are, and try once more there.
		r.regions.Forget(src.Bucket)
		r.regions.Forget(dst.Bucket)
		src.Region, dst.Region = "", ""
	}
}

// Delete deletes objects from dst's bucket, in its region.
func (r *Regional) Delete(ctx context.Context, dst Target, objs []Doomed) ([]KeyError, error) {
	for attempt := 0; ; attempt++ {
		region, err := r.regions.Region(ctx, dst.Bucket, dst.Region)
		if err != nil {
			return nil, lookupError(err)
		}
		failed, err := r.copier(region, region).Delete(ctx, dst, objs)
		if attempt > 0 || !WrongRegion(err) {
			return failed, err
		}
		r.regions.Forget(dst.Bucket)
		dst.Region = ""
	}
}

// Directs returns the direct paths in use, for their counts.
func (r *Regional) Directs() []*Direct {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Direct
	for _, a := range r.apis {
		if d, ok := a.(*Direct); ok {
			out = append(out, d)
		}
	}
	return out
}

// lookupError classifies a failure to find a bucket's region: a 404 there
// means the bucket is missing, not an object.
func lookupError(err error) *Error {
	ce := Classify(err)
	if ce.Reason == ReasonVanished {
		ce.Reason = ReasonNoBucket
	}
	return ce
}

// WrongRegion reports an answer S3 gives a request signed for, or sent
// to, another region than its bucket's: a redirect, a refusal naming the
// region, or (to a HEAD, which carries no error body) a 400 with the
// bucket's region in x-amz-bucket-region.
func WrongRegion(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException", "MovedPermanently":
			return true
		}
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	return re.HTTPStatusCode() == http.StatusMovedPermanently ||
		(re.HTTPStatusCode() == http.StatusBadRequest && re.Response != nil && re.Response.Header.Get("X-Amz-Bucket-Region") != "" &&
			(api == nil || api.ErrorCode() == "BadRequest" || api.ErrorCode() == ""))
}
