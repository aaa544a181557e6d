package copier

import (
	"bytes"
	"context"
	"maps"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestLockOfNeverShortens: a copy keeps its source's retention exactly,
// never in a stronger mode or to a later date than the source's; where the
// destination's default retention would keep it at least as long in a mode
// at least as strong, none is set and S3's default applies from the copy's
// creation. A retention that has run out is not set (S3 refuses a date in
// the past); holds are kept; nothing at all unless the run carries locks.
func TestLockOfNeverShortens(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	in30 := now.AddDate(0, 0, 30)
	head := func(mode types.ObjectLockMode, until time.Time) *s3.HeadObjectOutput {
		h := &s3.HeadObjectOutput{ObjectLockMode: mode, ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn}
		if !until.IsZero() {
			h.ObjectLockRetainUntilDate = aws.Time(until)
		}
		return h
	}
	floor := func(mode types.ObjectLockRetentionMode, days, years int32) *Retention {
		return &Retention{Mode: mode, Days: days, Years: years}
	}
	gov, comp := types.ObjectLockModeGovernance, types.ObjectLockModeCompliance
	for _, c := range []struct {
		name      string
		head      *s3.HeadObjectOutput
		w         Write
		mode      types.ObjectLockMode
		until     time.Time
		legalHold types.ObjectLockLegalHoldStatus
	}{
		{"not carried", head(gov, in30), Write{}, "", time.Time{}, ""},
		{"the source's", head(gov, in30), Write{Lock: true}, gov, in30, types.ObjectLockLegalHoldStatusOn},
		{"a shorter default: the source's", head(gov, in30), Write{Lock: true, LockFloor: floor(types.ObjectLockRetentionModeGovernance, 10, 0)},
			gov, in30, types.ObjectLockLegalHoldStatusOn},
		{"a longer default as strong: the default's", head(gov, in30), Write{Lock: true, LockFloor: floor(types.ObjectLockRetentionModeGovernance, 0, 1)},
			"", time.Time{}, types.ObjectLockLegalHoldStatusOn},
		{"a longer default, stronger: the default's", head(gov, in30), Write{Lock: true, LockFloor: floor(types.ObjectLockRetentionModeCompliance, 0, 1)},
			"", time.Time{}, types.ObjectLockLegalHoldStatusOn},
		{"a longer default, weaker: the source's COMPLIANCE, not raised", head(comp, in30), Write{Lock: true, LockFloor: floor(types.ObjectLockRetentionModeGovernance, 0, 1)},
			comp, in30, types.ObjectLockLegalHoldStatusOn},
		{"a short COMPLIANCE default does not make a long GOVERNANCE one COMPLIANCE", head(gov, now.AddDate(10, 0, 0)), Write{Lock: true, LockFloor: floor(types.ObjectLockRetentionModeCompliance, 1, 0)},
			gov, now.AddDate(10, 0, 0), types.ObjectLockLegalHoldStatusOn},
		{"run out: the default applies", head(comp, now.AddDate(0, 0, -1)), Write{Lock: true, LockFloor: floor(types.ObjectLockRetentionModeGovernance, 5, 0)},
			"", time.Time{}, types.ObjectLockLegalHoldStatusOn},
		{"a legal hold alone", head("", time.Time{}), Write{Lock: true}, "", time.Time{}, types.ObjectLockLegalHoldStatusOn},
	} {
		l := lockOf(c.head, c.w, now)
		if l.mode != c.mode || !aws.ToTime(l.until).Equal(c.until) || l.legalHold != c.legalHold {
			t.Errorf("%s: mode %q until %v hold %q; want %q %v %q", c.name, l.mode, aws.ToTime(l.until), l.legalHold, c.mode, c.until, c.legalHold)
		}
	}
}

// TestCarriesWhatS3DoesNotCopy copies, in one request and in parts, an
// object with a website redirect, a retention and a legal hold between
// Object Lock buckets on versitygw, which (as S3 documents of CopyObject
// under a metadata directive) copies none of them by itself: with Write's
// Redirects and Lock the copies have them all, without they have none.
func TestCarriesWhatS3DoesNotCopy(t *testing.T) {
	env := testbed.Get(t)
	ctx := context.Background()
	src, dst := env.LockedBucket(t), env.LockedBucket(t)
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	for _, k := range []struct {
		key  string
		size int
	}{{"small", 100}, {"big", 11 << 20}} {
		_, err := env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String(k.key), Body: bytes.NewReader(randomBytes(k.size)),
			WebsiteRedirectLocation: aws.String("/elsewhere/" + k.key), ObjectLockMode: types.ObjectLockModeGovernance,
			ObjectLockRetainUntilDate: aws.Time(until), ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn,
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
		if err != nil {
			t.Fatal(err)
		}
	}
	c := New(NewDirect(env.Manners().Client(src), nil), Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20})
	for _, carry := range []bool{true, false} {
		for _, k := range []string{"small", "big"} {
			to := k + "-copy"
			if !carry {
				to = k + "-plain"
			}
			h := head(t, env, src, k)
			err := c.Copy(ctx, Source{Bucket: src, Key: k, Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag)},
				Target{Bucket: dst, Key: to, Write: Write{Redirects: carry, Lock: carry}})
			if err != nil {
				t.Fatalf("copy %s: %v", k, err)
			}
			got := head(t, env, dst, to)
			if carry {
				if aws.ToString(got.WebsiteRedirectLocation) != "/elsewhere/"+k || got.ObjectLockMode != types.ObjectLockModeGovernance ||
					!aws.ToTime(got.ObjectLockRetainUntilDate).Equal(until) || got.ObjectLockLegalHoldStatus != types.ObjectLockLegalHoldStatusOn {
					t.Errorf("%s: redirect %q, lock %q until %v, legal hold %q", to, aws.ToString(got.WebsiteRedirectLocation), got.ObjectLockMode, aws.ToTime(got.ObjectLockRetainUntilDate), got.ObjectLockLegalHoldStatus)
				}
				continue
			}
			// The server copies neither by itself in one request (S3's
			// behaviour); a copy in parts keeps the redirect regardless.
			if k == "small" && got.WebsiteRedirectLocation != nil {
				t.Errorf("%s: the server copied the redirect by itself: the test bed no longer shows S3's behaviour", to)
			}
			if got.ObjectLockMode != "" || got.ObjectLockLegalHoldStatus == types.ObjectLockLegalHoldStatusOn {
				t.Errorf("%s: the server copied Object Lock by itself: the test bed no longer shows S3's behaviour", to)
			}
		}
	}
}

// TestCopiesAnnotations: CopyObject copies an object's annotations (its
// annotation directive is COPY by default); a multipart upload has none
// (CopyObject's API reference), so a copy in parts puts the source's on
// the copy itself. Through the test bed's Manners, which serves
// annotations as S3 does (versitygw knows none).
func TestCopiesAnnotations(t *testing.T) {
	env := testbed.Get(t)
	ctx := context.Background()
	src, dst := env.Bucket(t), env.Bucket(t)
	m := env.Manners()
	api := m.Client(src)
	env.Put(t, src, []testbed.Object{{Key: "small", Body: randomBytes(100)}, {Key: "big", Body: randomBytes(11 << 20)}})
	want := map[string]string{"labels": `{"cat":0.98}`, "lineage": "etl-run-42"}
	for _, key := range []string{"small", "big"} {
		for name, payload := range want {
			if _, err := api.PutObjectAnnotation(ctx, &s3.PutObjectAnnotationInput{Bucket: aws.String(src), Key: aws.String(key),
				AnnotationName: aws.String(name), AnnotationPayload: bytes.NewReader([]byte(payload))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := New(NewDirect(api, nil), Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20})
	for _, key := range []string{"small", "big"} {
		h := head(t, env, src, key)
		if err := c.Copy(ctx, Source{Bucket: src, Key: key, Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag)}, Target{Bucket: dst, Key: key}); err != nil {
			t.Fatalf("copy %s: %v", key, err)
		}
		if got := m.Annotations(dst, key); !maps.Equal(got, want) {
			t.Errorf("%s: the copy's annotations %v, want %v", key, got, want)
		}
	}
}
