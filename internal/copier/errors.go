package copier

import (
	"context"
	"errors"
	"net/http"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Reason says why a copy did not happen, in words that go into reports.
type Reason string

const (
	// ReasonVanished: the source object (or the version of it a copy
	// names) no longer exists (NoSuchKey, NoSuchVersion). The
	// clone is still consistent with the source; it is reported as skipped.
	ReasonVanished Reason = "vanished"
	// ReasonChanged: the source object's ETag is no longer the listed one
	// (412 on CopySourceIfMatch). A new plan picks it up.
	ReasonChanged Reason = "changed"
	// ReasonAccessDenied: a permission is missing on the source or destination.
	ReasonAccessDenied Reason = "access-denied"
	// ReasonNoBucket: the source or destination bucket does not exist.
	ReasonNoBucket Reason = "no-such-bucket"
	// ReasonArchived: the object is in an archive storage class (GLACIER,
	// DEEP_ARCHIVE, or an archive tier of INTELLIGENT_TIERING) and must be
	// restored before it can be copied (InvalidObjectState). Failed, with
	// how to restore it.
	ReasonArchived Reason = "archived"
	// ReasonNeedsKey: the source is encrypted with a customer-provided key
	// (SSE-C), which a copy cannot read without it. Failed.
	ReasonNeedsKey Reason = "needs-customer-key"
	// ReasonCredentials: the credentials expired or were refused as
	// out of date (ExpiredToken, InvalidToken, RequestExpired). The SDK
	// fetches fresh ones and tries again; a copy still refused is tried
	// again later with its message.
	ReasonCredentials Reason = "credentials-expired"
	// ReasonRejected: S3 refused the request as invalid (4xx); retrying the
	// same request cannot succeed.
	ReasonRejected Reason = "rejected"
	// ReasonTransient: throttling, a server error, a timeout or a network
	// fault that outlasted the SDK's retries. Worth trying again later.
	ReasonTransient Reason = "transient"
	// ReasonCanceled: the worker was stopping and cut the copy short.
	ReasonCanceled Reason = "canceled"
)

// Error is a failed copy with its classification.
type Error struct {
	Reason Reason
	Code   string // S3's error code, when it gave one
	Err    error
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying the copy cannot help.
func (e *Error) Permanent() bool {
	return e.Reason != ReasonTransient && e.Reason != ReasonCanceled && e.Reason != ReasonCredentials
}

// Blocked reports an error that blocks every copy alike until an operator
// acts (a missing permission, a missing bucket): such work should wait in
// the dead-letter queue for a redrive, not be reported as failed.
func (e *Error) Blocked() bool {
	return e.Reason == ReasonAccessDenied || e.Reason == ReasonNoBucket
}

// Classify wraps err in an *Error saying why the copy failed. It goes by the
// S3 error code and HTTP status, never by the error text.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	e := &Error{Err: err}
	var api smithy.APIError
	if errors.As(err, &api) {
		e.Code = api.ErrorCode()
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	e.Reason = reasonFor(err, e.Code, status)
	return e
}

func reasonFor(err error, code string, status int) Reason {
	switch code {
	case "NoSuchKey", "NoSuchVersion":
		// NoSuchVersion: the version a copy names was deleted since the plan
		// (404, as a deleted key is).
		return ReasonVanished
	case "NoSuchUpload":
		// The destination's upload is gone (a retried completion that had
		// succeeded, or a lifecycle rule aborted it): copy again.
		return ReasonTransient
	case "ExpiredToken", "ExpiredTokenException", "InvalidToken", "RequestExpired", "TokenRefreshRequired":
		return ReasonCredentials
	case "PreconditionFailed":
		return ReasonChanged
	case "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "KMS.AccessDeniedException":
		return ReasonAccessDenied
	case "NoSuchBucket":
		return ReasonNoBucket
	case "InvalidObjectState":
		return ReasonArchived
	case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException", "MovedPermanently":
		// Addressed to the wrong region: Regional asks again and retries;
		// a copier without regions can only report it.
		return ReasonRejected
	case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
		"InternalError", "ServiceUnavailable", "OperationAborted":
		return ReasonTransient
	}
	if errors.Is(err, context.Canceled) {
		return ReasonCanceled
	}
	switch {
	case status == http.StatusNotFound:
		return ReasonVanished // HeadObject's 404 carries no code
	case status == http.StatusPreconditionFailed:
		return ReasonChanged
	case status == http.StatusForbidden:
		return ReasonAccessDenied
	case status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout:
		return ReasonRejected
	}
	return ReasonTransient
}
