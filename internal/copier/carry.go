package copier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Write says how a copy is written, and what it carries over that S3 does
// not copy by itself. The zero value writes as S3 would by default, keeping
// the source's storage class.
type Write struct {
	// StorageClass of the copy; "" keeps the source object's.
	StorageClass types.StorageClass
	// SSEKMSKeyID encrypts the copy with this KMS key; "": the
	// destination bucket's default encryption.
	SSEKMSKeyID string
	// ACL is a canned ACL for the copy; "" sets none.
	ACL types.ObjectCannedACL
	// Redirects reads the source's website redirect and sets it on the
	// copy: CopyObject's API reference says S3 does not copy
	// x-amz-website-redirect-location under a metadata directive.
	Redirects bool
	// Lock reads the source's Object Lock retention, legal hold and event
	// hold and sets them on the copy (S3 does not copy them): the
	// retention never shorter or weaker than LockFloor would make it.
	Lock bool
	// LockFloor is the destination bucket's default retention, nil for
	// none.
	LockFloor *Retention
}

// inspects reports whether a copy needs the source's HeadObject first.
func (w Write) inspects() bool { return w.Redirects || w.Lock }

// Retention is a bucket's default retention: S3 gives each new object
// mode until its creation plus Years and Days.
type Retention struct {
	Mode        types.ObjectLockRetentionMode
	Years, Days int32
}

// lock is the Object Lock of a copy.
type lock struct {
	mode      types.ObjectLockMode
	until     *time.Time
	legalHold types.ObjectLockLegalHoldStatus
	eventHold types.ObjectLockEventHold
	eventDays *int32
	eventYrs  *int32
}

// lockOf is the Object Lock a copy, made at now, of the object head
// describes takes under w: the source's legal and event holds, and its
// retention, exactly (never raised to a stronger mode or a later date than
// it has), unless the destination's default retention would keep the copy
// at least as long in a mode at least as strong: then none is set, and S3
// applies the default from the copy's creation (so the source's shorter one
// does not undercut it). A retention that has run out is not set (S3
// refuses a date in the past), and the default applies by itself.
func lockOf(head *s3.HeadObjectOutput, w Write, now time.Time) lock {
	if !w.Lock {
		return lock{}
	}
	l := lock{legalHold: head.ObjectLockLegalHoldStatus}
	if head.ObjectLockEventHold == types.ObjectLockEventHoldOn {
		l.eventHold, l.eventDays, l.eventYrs = head.ObjectLockEventHold, head.ObjectLockEventHoldDurationDays, head.ObjectLockEventHoldDurationYears
	}
	until := aws.ToTime(head.ObjectLockRetainUntilDate)
	if head.ObjectLockMode == "" || !until.After(now) {
		return l
	}
	if f := w.LockFloor; f != nil {
		floor := now.AddDate(int(f.Years), 0, int(f.Days))
		strong := f.Mode == types.ObjectLockRetentionModeCompliance || head.ObjectLockMode == types.ObjectLockModeGovernance
		if strong && !floor.Before(until) {
			return l // the default keeps it as long, as strongly
		}
	}
	l.mode, l.until = head.ObjectLockMode, aws.Time(until.UTC())
	return l
}

// carrySingle sets on a CopyObject what S3 does not copy of the object
// head describes.
func carrySingle(in *s3.CopyObjectInput, head *s3.HeadObjectOutput, w Write, now time.Time) {
	if w.Redirects {
		in.WebsiteRedirectLocation = head.WebsiteRedirectLocation
	}
	l := lockOf(head, w, now)
	in.ObjectLockMode, in.ObjectLockRetainUntilDate, in.ObjectLockLegalHoldStatus = l.mode, l.until, l.legalHold
	in.ObjectLockEventHold, in.ObjectLockEventHoldDurationDays, in.ObjectLockEventHoldDurationYears = l.eventHold, l.eventDays, l.eventYrs
}

// carryMultipart sets on a CreateMultipartUpload the Object Lock of the
// object head describes (the rest of what a copy in parts carries is set
// field by field in copyMultipart).
func carryMultipart(in *s3.CreateMultipartUploadInput, head *s3.HeadObjectOutput, w Write, now time.Time) {
	l := lockOf(head, w, now)
	in.ObjectLockMode, in.ObjectLockRetainUntilDate, in.ObjectLockLegalHoldStatus = l.mode, l.until, l.legalHold
	in.ObjectLockEventHold, in.ObjectLockEventHoldDurationDays, in.ObjectLockEventHoldDurationYears = l.eventHold, l.eventDays, l.eventYrs
}

// copyAnnotations puts the source's annotations on a copy in parts, whose
// ETag is etag: CopyObject copies them (its annotation directive is COPY by
// default), a multipart upload does not (CopyObject's API reference). A
// server that does not know annotations has none to copy.
func (c *Copier) copyAnnotations(ctx context.Context, src Source, dst Target, etag string) error {
	list := &s3.ListObjectAnnotationsInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.Key), VersionId: optional(src.VersionID)}
	for {
		page, err := c.src.ListObjectAnnotations(ctx, list)
		if absentFeature(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list source annotations: %w", err)
		}
		for _, a := range page.Annotations {
			if err := c.copyAnnotation(ctx, src, dst, aws.ToString(a.AnnotationName), etag); err != nil {
				return err
			}
		}
		if page.NextContinuationToken == nil {
			return nil
		}
		list.ContinuationToken = page.NextContinuationToken
	}
}

// copyAnnotation copies one annotation (at most 1 MiB) from src to dst.
func (c *Copier) copyAnnotation(ctx context.Context, src Source, dst Target, name, etag string) error {
	get, err := c.src.GetObjectAnnotation(ctx, &s3.GetObjectAnnotationInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.Key), VersionId: optional(src.VersionID), AnnotationName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("get source annotation %q: %w", name, err)
	}
	payload, err := io.ReadAll(io.LimitReader(get.AnnotationPayload, 1<<20+1))
	get.AnnotationPayload.Close()
	if err != nil {
		return fmt.Errorf("read source annotation %q: %w", name, err)
	}
	_, err = c.api.PutObjectAnnotation(ctx, &s3.PutObjectAnnotationInput{Bucket: aws.String(dst.Bucket), Key: aws.String(dst.Key),
		AnnotationName: aws.String(name), AnnotationPayload: bytes.NewReader(payload), ObjectIfMatch: optional(etag)})
	if err != nil {
		return fmt.Errorf("put annotation %q: %w", name, err)
	}
	return nil
}

// absentFeature reports a server that does not implement a call: it says
// so, or (as S3-compatible servers that ignore an unknown subresource do)
// answers 200 with something else than XML, here the object itself. A 200
// of XML that cannot be read (an answer cut short) is an error.
func absentFeature(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusOK && re.Response != nil &&
		!strings.Contains(re.Response.Header.Get("Content-Type"), "xml") {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "NotImplemented", "MethodNotAllowed":
		return true
	}
	return false
}
