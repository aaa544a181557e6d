package plan

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersioningAPI reads a bucket's versioning state.
type VersioningAPI interface {
	GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, optFns ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
}

var _ VersioningAPI = (*s3.Client)(nil)

// ErrNeverVersioned: a plan as of a time needs the source's history, which
// a bucket whose versioning was never enabled does not keep.
var ErrNeverVersioned = errors.New("versioning was never enabled on the source bucket: S3 kept no earlier versions to clone as of a time")

// ErrFutureTime: a time after now would be the state of a bucket still
// being written (a later plan of the same time would find more).
var ErrFutureTime = errors.New("the time is in the future")

// CheckAsOf checks that bucket can be listed as of at, now being now: its
// versioning was enabled at some point (Enabled, or Suspended since: the
// versions written while it was on are kept), and at is not after now.
// It returns ErrNeverVersioned, ErrFutureTime (both wrapped, with the
// facts), or the error of GetBucketVersioning.
func CheckAsOf(ctx context.Context, api VersioningAPI, bucket string, at, now time.Time) error {
	if at.After(now) {
		return fmt.Errorf("%w: %s is %s after this machine's clock (%s)", ErrFutureTime, at.UTC().Format(time.RFC3339), at.Sub(now).Round(time.Second), now.UTC().Format(time.RFC3339))
	}
	out, err := api.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
	if err != nil {
		return fmt.Errorf("read the versioning of s3://%s: %w", bucket, err)
	}
	if out.Status == "" {
		return fmt.Errorf("s3://%s: %w", bucket, ErrNeverVersioned)
	}
	return nil
}
