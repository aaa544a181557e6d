package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestObjectLockIsCarried: S3 does not copy an object's Object Lock
// retention or legal hold (the S3 user guide, "Using S3 Object Lock":
// they are per object version, set on the request that writes it). From a
// source with Object Lock, into a destination without it, the plan refuses
// (exit 2) unless --skip-object-lock; into one with it, every copy keeps
// its legal hold and a retention never shorter than its source's nor than
// the destination's default retention would give it.
func TestObjectLockIsCarried(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	srcB := env.LockedBucket(t)
	now := time.Now().UTC().Truncate(time.Second)
	short, long := now.AddDate(0, 0, 2), now.AddDate(3, 0, 0)
	for key, until := range map[string]time.Time{"short.bin": short, "long.bin": long, "free.bin": {}} {
		in := &s3.PutObjectInput{Bucket: aws.String(srcB), Key: aws.String(key), Body: bytes.NewReader([]byte("locked " + key)),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}
		if !until.IsZero() {
			in.ObjectLockMode, in.ObjectLockRetainUntilDate = types.ObjectLockModeGovernance, aws.Time(until)
			in.ObjectLockLegalHoldStatus = types.ObjectLockLegalHoldStatusOn
		}
		if _, err := env.S3.PutObject(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	src := "s3://" + srcB

	plain := env.Bucket(t)
	r := run(t, env, "planner", "run", "--source", src, "--dest", "s3://"+plain)
	if r.code != 2 || !strings.Contains(r.stderr, "Object Lock") || !strings.Contains(r.stderr, "--skip-object-lock") {
		t.Fatalf("a locked source into a bucket without Object Lock: exit %d\n%s", r.code, tail(r.stderr))
	}
	if n := len(env.Keys(t, plain, "")); n != 0 {
		t.Fatalf("the refused run copied %d objects", n)
	}
	mustRun(t, env, "planner", "run", "--source", src, "--dest", "s3://"+plain, "--skip-object-lock")

	dstB := env.LockedBucket(t)
	if _, err := env.S3.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: aws.String(dstB),
		ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
			Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(30)}}}}); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	mustRun(t, env, "planner", "run", "--source", src, "--dest", "s3://"+dstB)
	floor := started.AddDate(0, 0, 30)
	for key, want := range map[string]time.Time{"short.bin": floor, "long.bin": long} {
		h, err := env.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(dstB), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		got := aws.ToTime(h.ObjectLockRetainUntilDate)
		if h.ObjectLockMode != types.ObjectLockModeGovernance || got.Before(want.Add(-time.Second)) || got.After(want.Add(time.Minute)) ||
			h.ObjectLockLegalHoldStatus != types.ObjectLockLegalHoldStatusOn {
			t.Errorf("%s: %q until %v, legal hold %q; want GOVERNANCE until %v with the hold", key, h.ObjectLockMode, got, h.ObjectLockLegalHoldStatus, want)
		}
	}
}
