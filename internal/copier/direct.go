package copier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3clone/s3clone/internal/ownership"
)

// Direct is an S3 client whose CopyObject sends a hand-built, SigV4-signed
// request straight to the client's HTTP pool, without the SDK's middleware
// stack. Every other call is the SDK's.
//
// The SDK spends several hundred allocations per call on its generic
// pipeline, and on a small-object clone the client's CPU per copy decides
// how many copies a machine can drive. Direct keeps to the common case and
// hands everything else to the SDK, which stays the authority on errors:
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
//   - a RequestTimeTooSkewed answer also sets Direct's clock by the
//     server's, and if giveUpAfter direct attempts in a row fail where the
//     SDK's succeed, Direct stops trying (OnGiveUp hears of it).
type Direct struct {
	*s3.Client
	http       aws.HTTPClient
	creds      aws.CredentialsProvider
	signer     *v4.Signer
	params     s3.EndpointParameters // all but the bucket
	resolver   s3.EndpointResolverV2
	retryer    aws.Retryer
	onThrottle func()

	endpoints sync.Map // bucket → *endpoint

	sent, fellBack atomic.Int64
	// skew is how far the server's clock is ahead of ours, learnt from a
	// RequestTimeTooSkewed answer, and added to the signing time.
	skew atomic.Int64
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
	o := client.Options()
	d := &Direct{
		Client:     client,
		http:       o.HTTPClient,
		creds:      o.Credentials,
		resolver:   o.EndpointResolverV2,
		retryer:    o.Retryer,
		onThrottle: onThrottle,
		signer:     v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
		params: s3.EndpointParameters{
			Region:                         aws.String(o.Region),
			UseFIPS:                        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
			UseDualStack:                   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
			Endpoint:                       o.BaseEndpoint,
			ForcePathStyle:                 aws.Bool(o.UsePathStyle),
			Accelerate:                     aws.Bool(o.UseAccelerate),
			DisableMultiRegionAccessPoints: aws.Bool(o.DisableMultiRegionAccessPoints),
			UseArnRegion:                   aws.Bool(o.UseARNRegion),
			DisableS3ExpressSessionAuth:    aws.Bool(true), // as the SDK's CopyObject sets it
		},
	}
	if aws.IsCredentialsProvider(d.creds, (*aws.AnonymousCredentials)(nil)) {
		d.creds = nil // unsigned requests are the SDK's to make
	}
	return d
}

// Sent is how many copies went out directly; FellBack how many of them the
// SDK then had to send again (refusals, throttles, faults).
func (d *Direct) Sent() int64     { return d.sent.Load() }
func (d *Direct) FellBack() int64 { return d.fellBack.Load() }

// endpoint is where a bucket's objects are addressed and how requests to
// them are signed; usable is false when Direct cannot sign for it.
type endpoint struct {
	base          url.URL // scheme, host and the bucket's path, if any
	rawPath       string  // base's path as sent
	signingName   string
	signingRegion string
	usable        bool
}

// CopyObject copies directly when it can, else through the SDK.
func (d *Direct) CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if len(optFns) > 0 || !directInput(in) || d.http == nil || d.creds == nil || d.off.Load() {
		return d.Client.CopyObject(ctx, in, optFns...)
	}
	ep := d.endpoint(ctx, aws.ToString(in.Bucket))
	if !ep.usable {
		return d.Client.CopyObject(ctx, in)
	}
	if d.Pace != nil {
		bucket, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
		if err := d.Pace.Wait(ctx, bucket, key); err != nil {
			return nil, err
		}
		defer d.Pace.Settle(bucket, key)
	}
	d.sent.Add(1)
	out, err := d.send(ctx, ep, in)
	if d.Pace != nil {
		var th throttled
		d.Pace.Done(aws.ToString(in.Bucket), aws.ToString(in.Key), errors.As(err, &th))
	}
	if err == nil {
		d.rescued.Store(0)
		return out, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	d.fellBack.Add(1)
	var th throttled
	if errors.As(err, &th) {
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
	var exp expired
	if sdkErr == nil && !errors.As(err, &exp) && d.rescued.Add(1) == giveUpAfter {
		d.off.Store(true)
		if d.OnGiveUp != nil {
			d.OnGiveUp(err)
		}
	}
	return out, sdkErr
}

// directInput reports whether in sets no field but those send encodes.
func directInput(in *s3.CopyObjectInput) bool {
	if in == nil || aws.ToString(in.Bucket) == "" || aws.ToString(in.Key) == "" || aws.ToString(in.CopySource) == "" {
		return false
	}
	rest := *in
	rest.Bucket, rest.Key, rest.CopySource, rest.CopySourceIfMatch = nil, nil, nil, nil
	rest.MetadataDirective, rest.TaggingDirective, rest.StorageClass, rest.ACL = "", "", "", ""
	rest.ServerSideEncryption, rest.SSEKMSKeyId = "", nil
	return reflect.ValueOf(rest).IsZero()
}

func (d *Direct) endpoint(ctx context.Context, bucket string) *endpoint {
	if v, ok := d.endpoints.Load(bucket); ok {
		return v.(*endpoint)
	}
	ep := d.resolve(ctx, bucket)
	v, _ := d.endpoints.LoadOrStore(bucket, ep)
	return v.(*endpoint)
}

// resolve runs the SDK's endpoint rules for bucket, with the parameters
// its CopyObject would bind (the rules do not look at the key).
func (d *Direct) resolve(ctx context.Context, bucket string) *endpoint {
	ep := &endpoint{}
	region := aws.ToString(d.params.Region)
	if d.resolver == nil || region == "" || strings.Contains(region, "fips") {
		return ep
	}
	params := d.params
	params.Bucket = aws.String(bucket)
	resolved, err := d.resolver.ResolveEndpoint(ctx, params)
	if err != nil || len(resolved.Headers) > 0 || resolved.URI.RawQuery != "" || resolved.URI.Host == "" {
		return ep
	}
	ep.base = resolved.URI
	ep.rawPath = resolved.URI.RawPath
	if ep.rawPath == "" {
		ep.rawPath = resolved.URI.Path
	}
	ep.signingName, ep.signingRegion = "s3", region
	if opts, ok := smithyauth.GetAuthOptions(&resolved.Properties); ok && len(opts) > 0 {
		opt := opts[0]
		// Endpoint rules name schemes "sigv4", "sigv4a", "sigv4-s3express".
		if opt.SchemeID != "sigv4" && opt.SchemeID != "aws.auth#sigv4" {
			return ep
		}
		if v, ok := smithyhttp.GetSigV4SigningName(&opt.SignerProperties); ok {
			ep.signingName = v
		}
		if v, ok := smithyhttp.GetSigV4SigningRegion(&opt.SignerProperties); ok {
			ep.signingRegion = v
		}
	}
	ep.usable = true
	return ep
}

// directUserAgent tells direct requests from the SDK's in a server's logs.
const directUserAgent = "s3clone (direct copy)"

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// throttled is a direct attempt S3 answered with a throttling error.
type throttled struct{ code string }

func (t throttled) Error() string { return "throttled: " + t.code }

// ErrorCode is what the SDK's retryer reads to know a throttle (its backoff
// waits longer after one than after other faults).
func (t throttled) ErrorCode() string { return t.code }

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

// expired is a direct attempt refused for out-of-date credentials: the
// SDK's retry fetches fresh ones, which is no fault of the direct path.
type expired struct{ code string }

func (e expired) Error() string { return "credentials refused: " + e.code }

var expiredCodes = map[string]bool{"ExpiredToken": true, "ExpiredTokenException": true, "RequestExpired": true, "TokenRefreshRequired": true}

var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// send makes one direct attempt. Any error means "ask the SDK".
func (d *Direct) send(ctx context.Context, ep *endpoint, in *s3.CopyObjectInput) (*s3.CopyObjectOutput, error) {
	creds, err := d.creds.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	// The path is joined as the SDK joins it.
	u := ep.base // a copy
	key := aws.ToString(in.Key)
	u.Path = smithyhttp.JoinPath(ep.base.Path, "/"+key)
	u.RawPath = smithyhttp.JoinPath(ep.rawPath, "/"+httpbinding.EscapePath(key, false))
	u.RawQuery = "x-id=CopyObject"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "", nil)
	if err != nil {
		return nil, err
	}
	req.URL = &u
	req.Host = u.Host
	h := req.Header
	h["User-Agent"] = []string{directUserAgent}
	h["Accept-Encoding"] = []string{"identity"} // as the SDK asks: no transparent gzip
	h["X-Amz-Content-Sha256"] = []string{emptySHA256}
	h["X-Amz-Copy-Source"] = []string{*in.CopySource}
	setHeader(h, "X-Amz-Copy-Source-If-Match", aws.ToString(in.CopySourceIfMatch))
	setHeader(h, "X-Amz-Metadata-Directive", string(in.MetadataDirective))
	setHeader(h, "X-Amz-Tagging-Directive", string(in.TaggingDirective))
	setHeader(h, "X-Amz-Storage-Class", string(in.StorageClass))
	setHeader(h, "X-Amz-Acl", string(in.ACL))
	setHeader(h, "X-Amz-Server-Side-Encryption", string(in.ServerSideEncryption))
	setHeader(h, "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", aws.ToString(in.SSEKMSKeyId))
	if owner, srcOwner, pays := d.Owners.Copy(aws.ToString(in.Bucket), ownership.SourceBucket(*in.CopySource)); owner != "" || srcOwner != "" || pays {
		setHeader(h, "X-Amz-Expected-Bucket-Owner", owner)
		setHeader(h, "X-Amz-Source-Expected-Bucket-Owner", srcOwner)
		if pays {
			h["X-Amz-Request-Payer"] = []string{string(types.RequestPayerRequester)}
		}
	}
	// The SDK's own signer, set as the S3 client sets it (S3 paths are
	// escaped once, not twice).
	if err := d.signer.SignHTTP(ctx, creds, req, emptySHA256, ep.signingName, ep.signingRegion, time.Now().Add(time.Duration(d.skew.Load()))); err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf := bodies.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bodies.Put(buf)
		}
	}()
	buf.Reset()
	// S3 may hold a long copy's 200 open with whitespace before the result.
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, 1<<20)); err != nil {
		return nil, err
	}
	body := buf.Bytes()
	if resp.StatusCode != http.StatusOK {
		code := xmlText(body, "Code")
		// Every 503 from S3 is a throttle (SlowDown; a HEAD's has no body),
		// as the client's retry observer counts it.
		if _, ok := retry.DefaultThrottleErrorCodes[code]; ok || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			if d.onThrottle != nil {
				d.onThrottle()
			}
			if _, ok := retry.DefaultThrottleErrorCodes[code]; !ok {
				code = "SlowDown" // a bare 429 or 503, named so the retryer backs off as from a throttle
			}
			return nil, throttled{code}
		}
		if code == "RequestTimeTooSkewed" {
			// As the SDK does: sign from now on by the server's clock.
			if at, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
				d.skew.Store(int64(time.Until(at)))
			}
		}
		if expiredCodes[code] {
			return nil, expired{code}
		}
		return nil, fmt.Errorf("status %d %s", resp.StatusCode, code)
	}
	// A 200 can still carry an error, sent after the copy failed.
	if root := rootElement(body); root != "CopyObjectResult" {
		return nil, fmt.Errorf("200 with root element %q", root)
	}
	out := &s3.CopyObjectOutput{
		CopyObjectResult:     &types.CopyObjectResult{ETag: optionalText(body, "ETag")},
		VersionId:            optionalHeader(resp.Header, "X-Amz-Version-Id"),
		CopySourceVersionId:  optionalHeader(resp.Header, "X-Amz-Copy-Source-Version-Id"),
		ServerSideEncryption: types.ServerSideEncryption(resp.Header.Get("X-Amz-Server-Side-Encryption")),
	}
	if t, err := time.Parse(time.RFC3339Nano, xmlText(body, "LastModified")); err == nil {
		out.CopyObjectResult.LastModified = &t
	}
	return out, nil
}

func setHeader(h http.Header, name, value string) {
	if value != "" {
		h[name] = []string{value}
	}
}

func optionalHeader(h http.Header, name string) *string {
	if v := h.Get(name); v != "" {
		return &v
	}
	return nil
}

// rootElement is the name of the first element of an XML document.
func rootElement(doc []byte) string {
	for {
		doc = bytes.TrimLeft(doc, " \t\r\n")
		if !bytes.HasPrefix(doc, []byte("<?")) && !bytes.HasPrefix(doc, []byte("<!")) {
			break
		}
		end := bytes.IndexByte(doc, '>')
		if end < 0 {
			return ""
		}
		doc = doc[end+1:]
	}
	if len(doc) == 0 || doc[0] != '<' {
		return ""
	}
	end := bytes.IndexAny(doc, " \t\r\n/>")
	if end < 0 {
		return ""
	}
	return string(doc[1:end])
}

// xmlText is the unescaped text of the first <name> element of doc, "" if
// there is none. S3's answers are flat enough for this.
func xmlText(doc []byte, name string) string {
	open := "<" + name + ">"
	i := bytes.Index(doc, []byte(open))
	if i < 0 {
		return ""
	}
	rest := doc[i+len(open):]
	j := bytes.Index(rest, []byte("</"+name+">"))
	if j < 0 {
		return ""
	}
	return html.UnescapeString(string(rest[:j]))
}

func optionalText(doc []byte, name string) *string {
	if v := xmlText(doc, name); v != "" {
		return &v
	}
	return nil
}
