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
//   - where either bucket has a website configuration, an object may hold
//     a website redirect (x-amz-website-redirect-location) that takes
//     effect, which S3 does not copy under a metadata directive: Redirects.
//     Where neither has one, no redirect can take effect, and reading them
//     would cost a HeadObject per object for nothing;
//   - a source with Object Lock: Lock, with the destination's default
//     retention as its floor. A destination without Object Lock is
//     ErrNoLockAtDest, unless skipLock (the copies then go unlocked; the
//     buckets' lock settings are then not read at all).
//
// A setting that cannot be read (a cross-account or Requester Pays source
// whose owner grants no s3:GetBucketWebsite or
// s3:GetBucketObjectLockConfiguration) is taken to be there: each object's
// redirect, retention and holds are read (a HeadObject each, which is
// exact), and the returned notes say why and what granting would save. A
// server that does not implement a setting has none.
func Inspect(ctx context.Context, srcAPI, dstAPI BucketAPI, src, dst Location, skipLock bool) (Copy, []string, error) {
	var c Copy
	var notes []string
	for _, b := range []struct {
		api    BucketAPI
		bucket string
	}{{srcAPI, src.Bucket}, {dstAPI, dst.Bucket}} {
		_, err := b.api.GetBucketWebsite(ctx, &s3.GetBucketWebsiteInput{Bucket: aws.String(b.bucket)})
		switch {
		case err == nil:
			c.Redirects = true
		case !absent(err, "NoSuchWebsiteConfiguration"):
			c.Redirects = true
			notes = append(notes, fmt.Sprintf("cannot read the website configuration of s3://%s (%v): every object's website redirect is read and carried, a HeadObject each; "+
				"grant s3:GetBucketWebsite on arn:aws:s3:::%s to pay that only where a bucket is a website", b.bucket, err, b.bucket))
		}
	}
	if skipLock {
		return c, notes, nil
	}
	srcLock, err := lockConfig(ctx, srcAPI, src.Bucket)
	unknown := err != nil
	if unknown {
		notes = append(notes, fmt.Sprintf("cannot read the Object Lock configuration of s3://%s (%v): every object's retention and holds are read and carried, a HeadObject each; "+
			"grant s3:GetBucketObjectLockConfiguration on arn:aws:s3:::%s to pay that only for a locked source", src.Bucket, err, src.Bucket))
	} else if srcLock == nil {
		return c, notes, nil
	}
	dstLock, err := lockConfig(ctx, dstAPI, dst.Bucket)
	switch {
	case err != nil:
		return Copy{}, nil, &SettingError{Action: "s3:GetBucketObjectLockConfiguration", Bucket: dst.Bucket, Err: err}
	case dstLock == nil && !unknown:
		return Copy{}, nil, ErrNoLockAtDest
	}
	// A source whose lock cannot be read, into a destination without
	// Object Lock: an object that has a retention is refused by S3 (the
	// copy fails, named, as rejected), never copied without it.
	c.Lock = true
	if dstLock != nil && dstLock.Rule != nil && dstLock.Rule.DefaultRetention != nil {
		d := dstLock.Rule.DefaultRetention
		c.LockFloor = &Retention{Mode: string(d.Mode), Days: aws.ToInt32(d.Days), Years: aws.ToInt32(d.Years)}
	}
	return c, notes, nil
}

// lockConfig is bucket's Object Lock configuration, nil when it has none.
func lockConfig(ctx context.Context, api BucketAPI, bucket string) (*types.ObjectLockConfiguration, error) {
	out, err := api.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)})
	switch {
	case absent(err, "ObjectLockConfigurationNotFoundError"):
		return nil, nil
	case err != nil:
		return nil, err
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
