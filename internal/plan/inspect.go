package plan

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// BucketAPI reads the bucket settings that decide what a copy must carry.
type BucketAPI interface {
	GetBucketWebsite(ctx context.Context, in *s3.GetBucketWebsiteInput, optFns ...func(*s3.Options)) (*s3.GetBucketWebsiteOutput, error)
	GetObjectLockConfiguration(ctx context.Context, in *s3.GetObjectLockConfigurationInput, optFns ...func(*s3.Options)) (*s3.GetObjectLockConfigurationOutput, error)
}

var _ BucketAPI = (*s3.Client)(nil)

// ErrNoLockAtDest is a source with Object Lock and a destination without:
// the copies cannot keep their retention.
var ErrNoLockAtDest = errors.New("the source bucket has Object Lock and the destination bucket has none, so the copies could not keep their retention or legal holds")

// SettingError is a bucket setting that could not be read (refused, most
// likely): Action is the permission it takes.
type SettingError struct {
	Action, Bucket string
	Err            error
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("%s on arn:aws:s3:::%s: %v", e.Action, e.Bucket, e.Err)
}
func (e *SettingError) Unwrap() error { return e.Err }

// Inspect decides what the copies of src into dst must carry that S3 does
// not copy by itself, from the buckets' settings:
//   - a source with a website configuration may hold objects with a
//     website redirect (x-amz-website-redirect-location, which S3 does not
//     copy under a metadata directive): Redirects. Without one, no object's
//     redirect can take effect, and reading them would cost a HeadObject
//     per object for nothing;
//   - a source with Object Lock: Lock, with the destination's default
//     retention as its floor. A destination without Object Lock is
//     ErrNoLockAtDest, unless skipLock (the copies then go unlocked).
//
// A setting that cannot be read is a *SettingError: the copy would otherwise
// be made on a guess. A server that does not implement a setting has none.
func Inspect(ctx context.Context, srcAPI, dstAPI BucketAPI, src, dst Location, skipLock bool) (Copy, error) {
	var c Copy
	_, err := srcAPI.GetBucketWebsite(ctx, &s3.GetBucketWebsiteInput{Bucket: aws.String(src.Bucket)})
	switch {
	case err == nil:
		c.Redirects = true
	case !absent(err, "NoSuchWebsiteConfiguration"):
		return Copy{}, &SettingError{Action: "s3:GetBucketWebsite", Bucket: src.Bucket, Err: err}
	}
	srcLock, err := lockConfig(ctx, srcAPI, src.Bucket)
	if err != nil || srcLock == nil || skipLock {
		return c, err
	}
	dstLock, err := lockConfig(ctx, dstAPI, dst.Bucket)
	if err != nil {
		return Copy{}, err
	}
	if dstLock == nil {
		return Copy{}, ErrNoLockAtDest
	}
	c.Lock = true
	if r := dstLock.Rule; r != nil && r.DefaultRetention != nil {
		d := r.DefaultRetention
		c.LockFloor = &Retention{Mode: string(d.Mode), Days: aws.ToInt32(d.Days), Years: aws.ToInt32(d.Years)}
	}
	return c, nil
}

// lockConfig is bucket's Object Lock configuration, nil when it has none.
func lockConfig(ctx context.Context, api BucketAPI, bucket string) (*types.ObjectLockConfiguration, error) {
	out, err := api.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)})
	switch {
	case absent(err, "ObjectLockConfigurationNotFoundError"):
		return nil, nil
	case err != nil:
		return nil, &SettingError{Action: "s3:GetBucketObjectLockConfiguration", Bucket: bucket, Err: err}
	case out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled:
		return nil, nil
	}
	return out.ObjectLockConfiguration, nil
}

// absent reports an answer saying a bucket has no such setting: the code S3
// gives for it, or a server that does not implement the setting at all.
func absent(err error, code string) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case code, "NotImplemented", "MethodNotAllowed":
		return true
	}
	return false
}
