package copier

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Current reads what src's key holds now, with a HeadObject in the source's
// region: its size, ETag and storage class, so that a copy can be pinned to
// exactly what was read. A key that is not there is an *Error with
// ReasonVanished (S3 answers 404 to a caller allowed s3:ListBucket, 403
// otherwise: a worker without it reads a deletion as access denied).
func (c *Copier) Current(ctx context.Context, src Source) (Source, error) {
	out, err := c.src.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.Key)})
	if err != nil {
		return src, Classify(fmt.Errorf("head s3://%s/%s: %w", src.Bucket, src.Key, err))
	}
	src.Size = aws.ToInt64(out.ContentLength)
	src.ETag = aws.ToString(out.ETag)
	src.StorageClass = string(out.StorageClass)
	src.Modified = aws.ToTime(out.LastModified)
	src.VersionID = ""
	return src, nil
}

// Current reads what src's key holds now, in the source's region.
func (r *Regional) Current(ctx context.Context, src Source) (Source, error) {
	for attempt := 0; ; attempt++ {
		region, err := r.regions.Region(ctx, src.Bucket, src.Region)
		if err != nil {
			return src, lookupError(err)
		}
		got, err := r.copier(region, region).Current(ctx, src)
		if attempt > 0 || !WrongRegion(err) {
			return got, err
		}
		r.regions.Forget(src.Bucket)
		src.Region = ""
	}
}
