package testbed

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// KMS makes the keys under prefix in bucket read as SSE-KMS objects.
func (m *Manners) KMS(bucket, prefix string) { m.addPrefix(mannerKMS, bucket, prefix) }

// SSEC makes the keys under prefix in bucket SSE-C objects.
func (m *Manners) SSEC(bucket, prefix string) { m.addPrefix(mannerSSEC, bucket, prefix) }

// encryptedKMS reports an object that reads as SSE-KMS: under a KMS
// prefix, or last written asking for it.
func (m *Manners) encryptedKMS(bucket, key string) bool {
	if m.has(mannerKMS, bucket, key) {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.written[bucket+"/"+key].SSE == "aws:kms"
}

func (m *Manners) realETag(ctx context.Context, bucket, key string) (string, error) {
	out, err := m.client(bucket).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// shownETag is the ETag bucket/key shows a client, given its real one.
func (m *Manners) shownETag(bucket, key, real string) string {
	if m.encryptedKMS(bucket, key) {
		return kmsETag(bucket, key, real)
	}
	return real
}

// kmsETag is the ETag an emulated SSE-KMS object shows: not the MD5 of its
// body, and different for the same body in another bucket or key.
func kmsETag(bucket, key, real string) string {
	sum := md5.Sum([]byte("kms\x00" + bucket + "\x00" + key + "\x00" + strings.Trim(real, `"`)))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}
