package s3wire

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
)

// Copier sends CopyObject as one hand-built request, signed with the SDK's
// v4 signer, straight to the client's HTTP pool, without the SDK's
// middleware stack, and reads only a clean answer: a 200 with a
// CopyObjectResult. It makes one attempt and never retries; any error means
// "ask the SDK", which stays the authority on errors, retries and backoff.
// Safe for concurrent use.
type Copier struct {
	http     aws.HTTPClient
	creds    aws.CredentialsProvider
	signer   *v4.Signer
	params   s3.EndpointParameters // all but the bucket
	resolver s3.EndpointResolverV2

	endpoints sync.Map // bucket → *endpoint
	// skew is how far the server's clock is ahead of ours, learnt from a
	// RequestTimeTooSkewed answer, and added to the signing time.
	skew atomic.Int64
}

// NewCopier sends copies as client would: its HTTP client, credentials,
// region, endpoint options and endpoint rules. A client without credentials,
// or with anonymous ones, has no usable bucket (unsigned requests are the
// SDK's to make).
func NewCopier(client *s3.Client) *Copier {
	o := client.Options()
	c := &Copier{
		http:     o.HTTPClient,
		creds:    o.Credentials,
		resolver: o.EndpointResolverV2,
		signer:   v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
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
	if aws.IsCredentialsProvider(c.creds, (*aws.AnonymousCredentials)(nil)) {
		c.creds = nil
	}
	return c
}

// Encodes reports whether in sets a bucket, a key and a copy source, and no
// field but those Copy sends: CopySourceIfMatch, MetadataDirective,
// TaggingDirective, StorageClass, ACL, ServerSideEncryption, SSEKMSKeyId,
// ExpectedBucketOwner, ExpectedSourceBucketOwner and RequestPayer.
func Encodes(in *s3.CopyObjectInput) bool {
	if in == nil || aws.ToString(in.Bucket) == "" || aws.ToString(in.Key) == "" || aws.ToString(in.CopySource) == "" {
		return false
	}
	rest := *in
	rest.Bucket, rest.Key, rest.CopySource, rest.CopySourceIfMatch = nil, nil, nil, nil
	rest.MetadataDirective, rest.TaggingDirective, rest.StorageClass, rest.ACL = "", "", "", ""
	rest.ServerSideEncryption, rest.SSEKMSKeyId = "", nil
	rest.ExpectedBucketOwner, rest.ExpectedSourceBucketOwner, rest.RequestPayer = nil, nil, ""
	return reflect.ValueOf(rest).IsZero()
}

// Usable reports whether Copy can send copies into bucket: the client has
// an HTTP client and credentials, and the SDK's endpoint rules address the
// bucket with plain SigV4 (not S3 Express, not a multi-region access
// point, not a FIPS pseudo-region). The rules are run once per bucket.
func (c *Copier) Usable(ctx context.Context, bucket string) bool {
	return c.http != nil && c.creds != nil && c.endpoint(ctx, bucket).usable
}

// ErrUnusable is Copy's error for an input Encodes refuses or a bucket
// Usable refuses: nothing was sent.
var ErrUnusable = errors.New("s3wire: not a copy this path sends")

// Throttled is a copy S3 answered with a throttling error (any 503, a 429,
// or a code the SDK's retryer counts as a throttle).
type Throttled struct {
	// Code is S3's error code, or SlowDown for a bare 429 or 503.
	Code string
}

func (t Throttled) Error() string { return "throttled: " + t.Code }

// ErrorCode is what the SDK's retryer reads to know a throttle (its backoff
// waits longer after one than after other faults).
func (t Throttled) ErrorCode() string { return t.Code }

// Expired is a copy refused for out-of-date credentials: a fresh attempt
// through the SDK fetches new ones, which is no fault of this path.
type Expired struct {
	// Code is S3's error code (ExpiredToken, RequestExpired…).
	Code string
}

func (e Expired) Error() string { return "credentials refused: " + e.Code }

var expiredCodes = map[string]bool{"ExpiredToken": true, "ExpiredTokenException": true, "RequestExpired": true, "TokenRefreshRequired": true}

// UserAgent tells Copier's requests from the SDK's in a server's logs.
const UserAgent = "s3clone (direct copy)"

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// endpoint is where a bucket's objects are addressed and how requests to
// them are signed; usable is false when Copier cannot sign for it.
type endpoint struct {
	base          url.URL // scheme, host and the bucket's path, if any
	rawPath       string  // base's path as sent
	signingName   string
	signingRegion string
	usable        bool
}

func (c *Copier) endpoint(ctx context.Context, bucket string) *endpoint {
	if v, ok := c.endpoints.Load(bucket); ok {
		return v.(*endpoint)
	}
	ep := c.resolve(ctx, bucket)
	v, _ := c.endpoints.LoadOrStore(bucket, ep)
	return v.(*endpoint)
}

// resolve runs the SDK's endpoint rules for bucket, with the parameters
// its CopyObject would bind (the rules do not look at the key).
func (c *Copier) resolve(ctx context.Context, bucket string) *endpoint {
	ep := &endpoint{}
	region := aws.ToString(c.params.Region)
	if c.resolver == nil || region == "" || strings.Contains(region, "fips") {
		return ep
	}
	params := c.params
	params.Bucket = aws.String(bucket)
	resolved, err := c.resolver.ResolveEndpoint(ctx, params)
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

var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Copy makes one attempt to copy as in says, and returns what the SDK's
// CopyObject would return for a clean answer (the result's ETag and
// LastModified, the version ids and the server-side encryption). Any error
// means "ask the SDK": ErrUnusable (nothing sent), Throttled, Expired,
// another refusal, a 200 that carries an error, or a transport fault. A
// RequestTimeTooSkewed refusal sets Copier's clock by the server's for the
// attempts that follow, as the SDK does.
func (c *Copier) Copy(ctx context.Context, in *s3.CopyObjectInput) (*s3.CopyObjectOutput, error) {
	if !Encodes(in) || !c.Usable(ctx, aws.ToString(in.Bucket)) {
		return nil, ErrUnusable
	}
	req, err := c.request(ctx, c.endpoint(ctx, aws.ToString(in.Bucket)), in)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
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
	return c.answer(resp, buf.Bytes())
}

// request builds and signs the request for in.
func (c *Copier) request(ctx context.Context, ep *endpoint, in *s3.CopyObjectInput) (*http.Request, error) {
	creds, err := c.creds.Retrieve(ctx)
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
	h["User-Agent"] = []string{UserAgent}
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
	setHeader(h, "X-Amz-Expected-Bucket-Owner", aws.ToString(in.ExpectedBucketOwner))
	setHeader(h, "X-Amz-Source-Expected-Bucket-Owner", aws.ToString(in.ExpectedSourceBucketOwner))
	setHeader(h, "X-Amz-Request-Payer", string(in.RequestPayer))
	// The SDK's own signer, set as the S3 client sets it (S3 paths are
	// escaped once, not twice).
	if err := c.signer.SignHTTP(ctx, creds, req, emptySHA256, ep.signingName, ep.signingRegion, time.Now().Add(time.Duration(c.skew.Load()))); err != nil {
		return nil, err
	}
	return req, nil
}

// answer reads a response whose body is body.
func (c *Copier) answer(resp *http.Response, body []byte) (*s3.CopyObjectOutput, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, c.refusal(resp, body)
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

// refusal is the error of an answer other than 200.
func (c *Copier) refusal(resp *http.Response, body []byte) error {
	code := xmlText(body, "Code")
	// Every 503 from S3 is a throttle (SlowDown; a HEAD's has no body),
	// as the client's retry observer counts it.
	if _, ok := retry.DefaultThrottleErrorCodes[code]; ok || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if !ok {
			code = "SlowDown" // a bare 429 or 503, named so the retryer backs off as from a throttle
		}
		return Throttled{code}
	}
	if code == "RequestTimeTooSkewed" {
		// As the SDK does: sign from now on by the server's clock.
		if at, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			c.skew.Store(int64(time.Until(at)))
		}
	}
	if expiredCodes[code] {
		return Expired{code}
	}
	return fmt.Errorf("status %d %s", resp.StatusCode, code)
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
