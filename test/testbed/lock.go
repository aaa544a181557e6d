package testbed

import (
	"context"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3 gives every object written into a bucket with a default retention
// (Object Lock's default rule) that retention, from its creation, unless
// the write names one (the S3 user guide, "Configuring S3 Object Lock":
// bucket default settings). versitygw does not. So once a write without
// x-amz-object-lock-mode succeeds (a PutObject, a CopyObject, the
// completion of an upload created without one), the proxy sets the
// default on the object written.

// defaultRetention is bucket's default retention, nil for none; asked of
// versitygw, and remembered for a second (tests change it).
func (m *Manners) defaultRetention(ctx context.Context, bucket string) *types.DefaultRetention {
	m.mu.Lock()
	known, ok := m.defaults[bucket]
	m.mu.Unlock()
	if ok && time.Since(known.at) < time.Second {
		return known.rule
	}
	var rule *types.DefaultRetention
	out, err := m.client(bucket).GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(bucket)})
	if err == nil && out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.Rule != nil {
		rule = out.ObjectLockConfiguration.Rule.DefaultRetention
	}
	m.mu.Lock()
	m.defaults[bucket] = defaultRule{rule, time.Now()}
	m.mu.Unlock()
	return rule
}

type defaultRule struct {
	rule *types.DefaultRetention
	at   time.Time
}

// applyDefaultRetention gives the object a write made the bucket's default
// retention, when the write named none.
func (m *Manners) applyDefaultRetention(r *http.Request, q request) error {
	query := r.URL.Query()
	completion := r.Method == http.MethodPost && query.Has("uploadId")
	put := r.Method == http.MethodPut && q.key != "" && !query.Has("partNumber") && !query.Has("tagging") && !query.Has("acl") &&
		!query.Has("retention") && !query.Has("legal-hold") && !query.Has("annotation")
	if !(completion || put) || r.Header.Get("X-Amz-Object-Lock-Mode") != "" {
		return nil
	}
	ctx := context.WithoutCancel(r.Context())
	rule := m.defaultRetention(ctx, q.bucket)
	if rule == nil || rule.Mode == "" {
		return nil
	}
	client := m.client(q.bucket)
	if completion {
		// The upload may have named one when it was created.
		if h, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(q.bucket), Key: aws.String(q.key)}); err != nil || h.ObjectLockMode != "" {
			return err
		}
	}
	until := time.Now().UTC().AddDate(int(aws.ToInt32(rule.Years)), 0, int(aws.ToInt32(rule.Days)))
	_, err := client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(q.bucket), Key: aws.String(q.key),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(rule.Mode), RetainUntilDate: aws.Time(until)}})
	return err
}
