package plan

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

type versioningFake types.BucketVersioningStatus

func (f versioningFake) GetBucketVersioning(context.Context, *s3.GetBucketVersioningInput, ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error) {
	return &s3.GetBucketVersioningOutput{Status: types.BucketVersioningStatus(f)}, nil
}

func TestCheckAsOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		status types.BucketVersioningStatus
		at     time.Time
		want   error
	}{
		{types.BucketVersioningStatusEnabled, now.Add(-time.Hour), nil},
		{types.BucketVersioningStatusEnabled, now, nil},
		{types.BucketVersioningStatusSuspended, now.Add(-time.Hour), nil}, // the versions written while on are kept
		{"", now.Add(-time.Hour), ErrNeverVersioned},
		{types.BucketVersioningStatusEnabled, now.Add(time.Second), ErrFutureTime},
	}
	for _, c := range cases {
		if err := CheckAsOf(context.Background(), versioningFake(c.status), "b", c.at, now); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("versioning %q, as of %s: %v, want %v", c.status, c.at, err, c.want)
		}
	}
}
