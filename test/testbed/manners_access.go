package testbed

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// mayGet reports whether the caller may read key (s3:GetObject), as
// versitygw judges by the bucket's policy: a HEAD in the caller's name
// refused with 403.
func (m *Manners) mayGet(ctx context.Context, access, bucket, key string) bool {
	if access == AccessKey || access == "" {
		return true
	}
	_, err := m.callerClient(access, bucket).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return !forbidden(err)
}

// callerClient asks versitygw in the caller's name (its access key and
// the secret the test gave it), without retries.
func (m *Manners) callerClient(access, bucket string) *s3.Client {
	m.mu.Lock()
	secret := m.secrets[access]
	m.mu.Unlock()
	return s3.New(m.client(bucket).Options(), func(o *s3.Options) {
		o.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(access, secret, ""))
		o.RetryMaxAttempts = 1
	})
}

// forbidden reports a 403 answer.
func forbidden(err error) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}

// mayDeleteMissing reports whether the caller may delete key, which is
// not there, as versitygw judges by the bucket's policy: asked with an
// unconditional delete in the caller's name, which deletes nothing (on a
// versioned bucket it leaves a delete marker on the missing key, which
// listings do not show).
func (m *Manners) mayDeleteMissing(ctx context.Context, access, bucket, key string) bool {
	if access == AccessKey || access == "" {
		return true
	}
	_, err := m.callerClient(access, bucket).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return !forbidden(err)
}

// listRight is whether a caller may list a bucket, as found at a time.
type listRight struct {
	may bool
	at  time.Time
}

// mayList reports whether the caller may list bucket (s3:ListBucket), as
// versitygw judges by the bucket's policy: asked with an empty listing in
// the caller's name, and remembered for a second (tests change policies).
func (m *Manners) mayList(ctx context.Context, access, bucket string) bool {
	if access == AccessKey || access == "" {
		return true // the root user may do anything
	}
	m.mu.Lock()
	known, ok := m.canList[[2]string{access, bucket}]
	m.mu.Unlock()
	if ok && time.Since(known.at) < time.Second {
		return known.may
	}
	_, err := m.callerClient(access, bucket).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)})
	may := err == nil
	m.mu.Lock()
	m.canList[[2]string{access, bucket}] = listRight{may, time.Now()}
	m.mu.Unlock()
	return may
}

// Expire refuses every request signed with access key (or lets them
// through again, with false) as S3 refuses an expired session's.
func (m *Manners) Expire(access string, expired bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expired[access] = expired
}
