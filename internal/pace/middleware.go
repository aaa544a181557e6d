package pace

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Client is client with its writes paced by p: every attempt of a
// CopyObject, UploadPartCopy, multipart create, complete or abort, delete,
// tagging or annotation write waits for its prefix's rate and tells p how
// it went, and a throttled attempt of these is retried as soon as the rate
// allows (Retryer). Reads keep the client's own retries and backoff.
func (p *Pacer) Client(client *s3.Client) *s3.Client {
	return s3.New(client.Options(), func(o *s3.Options) {
		base, _ := o.Retryer.(aws.RetryerV2)
		o.APIOptions = append(slices.Clip(o.APIOptions), func(stack *middleware.Stack) error {
			return p.middleware(stack, base)
		})
	})
}

type targetKey struct{}

type target struct{ bucket, key string }

// pacedOps are the operations whose requests S3 counts against a
// prefix's write rate (PUT, COPY, POST, DELETE on an object).
var pacedOps = map[string]bool{
	"CopyObject": true, "UploadPartCopy": true, "CreateMultipartUpload": true, "CompleteMultipartUpload": true,
	"AbortMultipartUpload": true, "DeleteObject": true, "DeleteObjects": true, "PutObjectTagging": true,
	"PutObject": true, "PutObjectAnnotation": true,
}

func (p *Pacer) middleware(stack *middleware.Stack, base aws.RetryerV2) error {
	if !pacedOps[stack.ID()] {
		return nil
	}
	// The operation's retries: throttles at once (the rate waits), the
	// rest as the client's retryer has them, clock skew and all.
	if m, ok := stack.Finalize.Get("Retry"); ok && base != nil {
		if old, ok := m.(*retry.Attempt); ok {
			paced := retry.NewAttemptMiddleware(Retryer(base), smithyhttp.RequestCloner, func(a *retry.Attempt) {
				a.LogAttempts, a.OperationMeter, a.ClientSkew, a.DisableClockSkewCorrection = old.LogAttempts, old.OperationMeter, old.ClientSkew, old.DisableClockSkewCorrection
			})
			if _, err := stack.Finalize.Swap("Retry", paced); err != nil {
				return err
			}
		}
	}
	err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("s3clone.PaceTarget",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			t, ok := writes(in.Parameters)
			if !ok {
				return next.HandleInitialize(ctx, in)
			}
			defer p.Settle(t.bucket, t.key)
			return next.HandleInitialize(middleware.WithStackValue(ctx, targetKey{}, t), in)
		}), middleware.After)
	if err != nil {
		return err
	}
	// After the retryer: every attempt waits for the rate.
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("s3clone.Pace",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			t, ok := middleware.GetStackValue(ctx, targetKey{}).(target)
			if !ok {
				return next.HandleFinalize(ctx, in)
			}
			if err := p.Wait(ctx, t.bucket, t.key); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			out, md, err := next.HandleFinalize(ctx, in)
			p.Done(t.bucket, t.key, err != nil && Throttle(err))
			return out, md, err
		}), "Retry", middleware.After)
}

// writes names the object a call writes, for the calls S3 counts against
// a prefix's write rate (PUT, COPY, POST, DELETE). A multi-object delete
// is counted once, against its first key's prefix.
func writes(params any) (target, bool) {
	var b, k *string
	switch in := params.(type) {
	case *s3.CopyObjectInput:
		b, k = in.Bucket, in.Key
	case *s3.UploadPartCopyInput:
		b, k = in.Bucket, in.Key
	case *s3.CreateMultipartUploadInput:
		b, k = in.Bucket, in.Key
	case *s3.CompleteMultipartUploadInput:
		b, k = in.Bucket, in.Key
	case *s3.AbortMultipartUploadInput:
		b, k = in.Bucket, in.Key
	case *s3.DeleteObjectInput:
		b, k = in.Bucket, in.Key
	case *s3.PutObjectTaggingInput:
		b, k = in.Bucket, in.Key
	case *s3.PutObjectInput:
		b, k = in.Bucket, in.Key
	case *s3.PutObjectAnnotationInput:
		b, k = in.Bucket, in.Key
	case *s3.DeleteObjectsInput:
		if in.Delete == nil || len(in.Delete.Objects) == 0 {
			return target{}, false
		}
		b, k = in.Bucket, in.Delete.Objects[0].Key
	default:
		return target{}, false
	}
	if b == nil || k == nil {
		return target{}, false
	}
	return target{*b, *k}, true
}

// Throttle reports an answer that asks for fewer requests: every 503 from
// S3 (SlowDown; a HEAD's has no body to name it), a 429, or a throttling
// error code.
func Throttle(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusServiceUnavailable || re.HTTPStatusCode() == http.StatusTooManyRequests) {
		return true
	}
	var coded interface{ ErrorCode() string } // smithy.APIError, and the direct path's own
	if errors.As(err, &coded) {
		_, ok := retry.DefaultThrottleErrorCodes[coded.ErrorCode()]
		return ok
	}
	return false
}

// ThrottledAttempts is how many times a paced request throttled by S3 is
// tried before it fails; other errors keep the retryer's own limit.
const ThrottledAttempts = 50

// Retryer makes r retry a throttled request at once, up to
// ThrottledAttempts: the pacer holds each attempt until its prefix's rate
// has room, so the retry follows the rate the fleet learned rather than an
// exponential backoff (up to 20 s a try) that ignores it. Other errors are
// retried as r retries them.
func Retryer(r aws.RetryerV2) aws.RetryerV2 { return retryer{r} }

type retryer struct{ aws.RetryerV2 }

func (r retryer) MaxAttempts() int { return max(r.RetryerV2.MaxAttempts(), ThrottledAttempts) }

func (r retryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	if Throttle(err) {
		return jitter(), nil
	}
	if attempt >= r.RetryerV2.MaxAttempts() {
		return 0, err
	}
	return r.RetryerV2.RetryDelay(attempt, err)
}
