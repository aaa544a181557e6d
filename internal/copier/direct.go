package copier

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/internal/ownership"
	"github.com/s3clone/s3clone/internal/s3wire"
)

// Direct is an S3 client whose CopyObject sends a hand-built, SigV4-signed
// request straight to the client's HTTP pool (s3wire.Copier), without the
// SDK's middleware stack. Every other call is the SDK's.
//
// The SDK spends several hundred allocations per call on its generic
// pipeline, and on a small-object clone the client's CPU per copy decides
// how many copies a machine can drive (the measures are in s3wire's package
// comment). Direct keeps to the common case and hands everything else to
// the SDK, which stays the authority on errors:
//   - only the CopyObject fields the copier sets are sent directly; any other
//     field, or any per-call option, goes through the SDK;
//   - the endpoint and signing scope come from the SDK's own endpoint rules,
//     resolved once per bucket; a bucket whose endpoint needs anything but
//     plain SigV4 (S3 Express, multi-region access points) goes through the
//     SDK;
//   - an answer other than 200 with a CopyObjectResult, or any transport
//     fault, is retried through the SDK, which then retries, backs off,
//     corrects clock skew and parses the error as it would have. A copy is
//     idempotent, so sending it twice changes nothing;
//   - a RequestTimeTooSkewed answer also sets the direct path's clock by the
//     server's, and if giveUpAfter direct attempts in a row fail where the
//     SDK's succeed, Direct stops trying (OnGiveUp hears of it).
type Direct struct {
	*s3.Client
	wire       *s3wire.Copier
	retryer    aws.Retryer
	onThrottle func()

	sent, fellBack atomic.Int64
	// rescued counts direct attempts in a row that failed where the SDK's
	// then succeeded; at giveUpAfter the direct path is turned off.
	rescued atomic.Int64
	off     atomic.Bool
	// OnGiveUp, if set, hears once why the direct path was turned off.
	OnGiveUp func(lastErr error)
	// Owners, if set, says who must own each bucket and who pays: direct
	// copies send it as the client's requests do (the SDK's are told by
	// the client's own options).
	Owners *ownership.Book
	// Pace, if set, spaces the direct attempts as the client's own
	// middleware spaces the SDK's (pace.Pacer.Client).
	Pace Pacer
}

// Pacer spaces writes to the prefixes of a bucket (pace.Pacer).
type Pacer interface {
	Wait(ctx context.Context, bucket, key string) error
	Done(bucket, key string, throttled bool)
	Settle(bucket, key string)
}

// giveUpAfter is how many direct attempts in a row may fail where the SDK
// then succeeds before Direct stops trying: something on the way (a proxy,
// an S3-compatible server) takes the SDK's requests and not ours, and each
// copy would otherwise be sent twice.
const giveUpAfter = 50

// NewDirect wraps client. onThrottle, if not nil, is called for every
// throttling answer the direct path gets (the SDK's retryer reports those it
// gets itself).
func NewDirect(client *s3.Client, onThrottle func()) *Direct {
	return &Direct{Client: client, wire: s3wire.NewCopier(client), retryer: client.Options().Retryer, onThrottle: onThrottle}
}

// Sent is how many copies went out directly; FellBack how many of them the
// SDK then had to send again (refusals, throttles, faults).
func (d *Direct) Sent() int64     { return d.sent.Load() }
func (d *Direct) FellBack() int64 { return d.fellBack.Load() }

// CopyObject copies directly when it can, else through the SDK.
func (d *Direct) CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if len(optFns) > 0 || !directInput(in) || d.off.Load() || !d.wire.Usable(ctx, aws.ToString(in.Bucket)) {
		return d.Client.CopyObject(ctx, in, optFns...)
	}
	if d.Pace != nil {
		bucket, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
		if err := d.Pace.Wait(ctx, bucket, key); err != nil {
			return nil, err
		}
		defer d.Pace.Settle(bucket, key)
	}
	d.sent.Add(1)
	out, err := d.wire.Copy(ctx, d.owned(in))
	var th s3wire.Throttled
	throttle := errors.As(err, &th)
	if throttle && d.onThrottle != nil {
		d.onThrottle()
	}
	if d.Pace != nil {
		d.Pace.Done(aws.ToString(in.Bucket), aws.ToString(in.Key), throttle)
	}
	if err == nil {
		d.rescued.Store(0)
		return out, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	d.fellBack.Add(1)
	if throttle {
		// The SDK would back off before its second attempt; so do we, for
		// as long as its retryer says after a first throttle. Paced, the
		// prefix's rate does the waiting.
		if d.Pace == nil {
			if err := d.backOff(ctx, th); err != nil {
				return nil, err
			}
		}
		return d.Client.CopyObject(ctx, in)
	}
	out, sdkErr := d.Client.CopyObject(ctx, in)
	var exp s3wire.Expired
	if sdkErr == nil && !errors.As(err, &exp) && d.rescued.Add(1) == giveUpAfter {
		d.off.Store(true)
		if d.OnGiveUp != nil {
			d.OnGiveUp(err)
		}
	}
	return out, sdkErr
}

// directInput reports whether in sets no field but those the copier sets,
// which s3wire encodes. The owners and the payer are the Owners book's to
// say (owned), as the client's middleware says them for the SDK's requests.
func directInput(in *s3.CopyObjectInput) bool {
	return in != nil && in.ExpectedBucketOwner == nil && in.ExpectedSourceBucketOwner == nil && in.RequestPayer == "" && s3wire.Encodes(in)
}

// owned is in with the owners and the payer the Owners book names for its
// buckets.
func (d *Direct) owned(in *s3.CopyObjectInput) *s3.CopyObjectInput {
	owner, srcOwner, pays := d.Owners.Copy(aws.ToString(in.Bucket), ownership.SourceBucket(*in.CopySource))
	if owner == "" && srcOwner == "" && !pays {
		return in
	}
	with := *in
	if owner != "" {
		with.ExpectedBucketOwner = aws.String(owner)
	}
	if srcOwner != "" {
		with.ExpectedSourceBucketOwner = aws.String(srcOwner)
	}
	if pays {
		with.RequestPayer = types.RequestPayerRequester
	}
	return &with
}

// backOff waits as long as the client's retryer would before retrying an
// attempt that failed with err, or until ctx ends.
func (d *Direct) backOff(ctx context.Context, err error) error {
	if d.retryer == nil {
		return nil
	}
	wait, rerr := d.retryer.RetryDelay(1, err)
	if rerr != nil || wait <= 0 {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
