package s3wire

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/s3clone/s3clone/internal/s3wire/wiretest"
)

func copySource(bucket, key string) string { return bucket + "/" + httpbinding.EscapePath(key, false) }

// copyInput is a copy with the fields the copier sets by default.
func copyInput() *s3.CopyObjectInput {
	return &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("k"), CopySource: aws.String("src/k"),
		CopySourceIfMatch: aws.String(`"e"`), MetadataDirective: types.MetadataDirectiveCopy}
}

// volatile headers differ between any two requests.
var volatile = []string{"Authorization", "X-Amz-Date", "User-Agent", "X-Amz-User-Agent", "Amz-Sdk-Invocation-Id", "Amz-Sdk-Request"}

// TestCopierSendsWhatTheSDKSends builds the same copies through the SDK and
// through Copier, for the endpoint set-ups an operator can choose on AWS
// and awkward keys, and compares the requests: URL, headers, and what the
// signature covers; then the results read from the same answer. (Whether
// the signature is valid is proven on the real server by the copier's
// tests.)
func TestCopierSendsWhatTheSDKSends(t *testing.T) {
	t.Parallel()
	setups := map[string]func(*s3.Options){
		"aws virtual-hosted": func(o *s3.Options) {},
		"aws path-style":     func(o *s3.Options) { o.UsePathStyle = true },
		"other region":       func(o *s3.Options) { o.Region = "eu-central-2" },
		"fips and dualstack": func(o *s3.Options) {
			o.Region = "us-gov-west-1"
			o.EndpointOptions.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
			o.EndpointOptions.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
		},
		"accelerate":      func(o *s3.Options) { o.UseAccelerate = true },
		"custom endpoint": func(o *s3.Options) { o.BaseEndpoint = aws.String("http://127.0.0.1:7070"); o.UsePathStyle = true },
		"custom endpoint with a path": func(o *s3.Options) {
			o.BaseEndpoint = aws.String("https://storage.example.com:8443/s3/")
			o.UsePathStyle = true
		},
	}
	buckets := []string{"dest-bucket", "dotted.bucket.name"}
	keys := []string{"images/2026/11/photo-000123.jpg", "dir with space/a+b%c?d#e=f&g.jpg", "ünï/çødé.jpg",
		"/leading", "a//b", "trailing/", "~tilde/!$'()*,;:@[]", "a/./b/../c", "%41%2F"}
	inputs := []func(bucket, key string) *s3.CopyObjectInput{
		func(bucket, key string) *s3.CopyObjectInput { // what the copier sends by default
			return &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
				CopySource: aws.String(copySource("source.bucket", key)), CopySourceIfMatch: aws.String(`"9b2cf535f27731c974343645a3985328"`),
				MetadataDirective: types.MetadataDirectiveCopy, TaggingDirective: types.TaggingDirectiveCopy}
		},
		func(bucket, key string) *s3.CopyObjectInput { // every field Copier sends
			return &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
				CopySource:        aws.String(copySource("source", key)),
				MetadataDirective: types.MetadataDirectiveCopy, TaggingDirective: types.TaggingDirectiveCopy,
				StorageClass: types.StorageClassIntelligentTiering, ACL: types.ObjectCannedACLBucketOwnerFullControl,
				ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: aws.String("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
				ExpectedBucketOwner: aws.String("222222222222"), ExpectedSourceBucketOwner: aws.String("111111111111"), RequestPayer: types.RequestPayerRequester}
		},
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			via := &wiretest.Scripted{Answers: []wiretest.Answer{{Status: 200, Body: wiretest.CopyResult}}}
			client := wiretest.Client(via, setup)
			wire := NewCopier(client)
			sent := 0
			for _, bucket := range buckets {
				for _, key := range keys {
					for i, input := range inputs {
						sdkOut, sdkErr := client.CopyObject(context.Background(), input(bucket, key))
						out, err := wire.Copy(context.Background(), input(bucket, key))
						if sdkErr != nil {
							// Refused by the endpoint rules (accelerate cannot
							// address a dotted bucket): Copier must not send it.
							if !errors.Is(err, ErrUnusable) || wire.Usable(context.Background(), bucket) {
								t.Errorf("%s %s: %v where the SDK refused with %v", bucket, key, err, sdkErr)
							}
							continue
						}
						if err != nil {
							t.Fatalf("copy: %v", err)
						}
						sent++
						sdkReq, req := via.Reqs[len(via.Reqs)-2], via.Reqs[len(via.Reqs)-1]
						what := bucket + " " + key + " input " + string(rune('0'+i))
						sameRequest(t, what, sdkReq, req)
						sameOutput(t, what, sdkOut, out)
					}
				}
			}
			if sent == 0 {
				t.Error("nothing sent")
			}
		})
	}
}

func sameRequest(t *testing.T, what string, sdk, direct *http.Request) {
	t.Helper()
	if direct.Header.Get("User-Agent") != UserAgent {
		t.Errorf("%s: User-Agent %q", what, direct.Header.Get("User-Agent"))
	}
	if sdk.Method != direct.Method || sdk.URL.String() != direct.URL.String() || sdk.Host != direct.Host && direct.Host != direct.URL.Host {
		t.Errorf("%s:\n SDK    %s %s (host %q)\n direct %s %s (host %q)", what, sdk.Method, sdk.URL, sdk.Host, direct.Method, direct.URL, direct.Host)
	}
	if sdk.ContentLength != direct.ContentLength {
		t.Errorf("%s: content length %d, SDK's %d", what, direct.ContentLength, sdk.ContentLength)
	}
	sdkH, directH := sdk.Header.Clone(), direct.Header.Clone()
	for _, v := range volatile {
		sdkH.Del(v)
		directH.Del(v)
	}
	names := func(h http.Header) []string { return slices.Sorted(maps.Keys(h)) }
	if !slices.Equal(names(sdkH), names(directH)) {
		t.Errorf("%s: headers %v, SDK's %v", what, names(directH), names(sdkH))
	}
	for name := range sdkH {
		if sdkH.Get(name) != directH.Get(name) {
			t.Errorf("%s: %s %q, SDK's %q", what, name, directH.Get(name), sdkH.Get(name))
		}
	}
	// The SDK also signs its own amz-sdk-* bookkeeping headers.
	sdkScope, sdkSigned := authParts(sdk.Header.Get("Authorization"))
	sdkSigned = strings.NewReplacer("amz-sdk-invocation-id;", "", "amz-sdk-request;", "").Replace(sdkSigned)
	scope, signed := authParts(direct.Header.Get("Authorization"))
	if sdkScope != scope || sdkSigned != signed {
		t.Errorf("%s: signed %q for %q, SDK signed %q for %q", what, signed, scope, sdkSigned, sdkScope)
	}
}

// authParts is a SigV4 Authorization header's credential scope without the
// date, and its signed-header list.
func authParts(auth string) (scope, signed string) {
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ", ") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "Credential":
			fields := strings.Split(v, "/")
			scope = strings.Join(slices.Delete(fields, 1, 2), "/")
		case "SignedHeaders":
			signed = v
		}
	}
	return scope, signed
}

func sameOutput(t *testing.T, what string, sdk, direct *s3.CopyObjectOutput) {
	t.Helper()
	if sdk.CopyObjectResult == nil || direct.CopyObjectResult == nil {
		t.Fatalf("%s: no CopyObjectResult (SDK %v, direct %v)", what, sdk.CopyObjectResult, direct.CopyObjectResult)
	}
	s, d := sdk.CopyObjectResult, direct.CopyObjectResult
	if aws.ToString(s.ETag) != aws.ToString(d.ETag) || !aws.ToTime(s.LastModified).Equal(aws.ToTime(d.LastModified)) ||
		aws.ToString(sdk.VersionId) != aws.ToString(direct.VersionId) {
		t.Errorf("%s: direct answered ETag %s, modified %v, version %s; SDK %s, %v, %s", what,
			aws.ToString(d.ETag), d.LastModified, aws.ToString(direct.VersionId), aws.ToString(s.ETag), s.LastModified, aws.ToString(sdk.VersionId))
	}
}

// TestCopierSendsNothingUnusual: inputs Copier does not encode, anonymous
// or missing credentials and endpoints it cannot sign for send nothing.
func TestCopierSendsNothingUnusual(t *testing.T) {
	t.Parallel()
	withMetadata := copyInput()
	withMetadata.MetadataDirective = types.MetadataDirectiveReplace
	withMetadata.Metadata = map[string]string{"a": "b"}
	withVersion := copyInput()
	withVersion.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	noSource := copyInput()
	noSource.CopySource = nil
	mrap := copyInput()
	mrap.Bucket = aws.String("arn:aws:s3::111122223333:accesspoint/mfzwi23gnjvgw.mrap")
	via := &wiretest.Scripted{Answers: []wiretest.Answer{{Status: 200, Body: wiretest.CopyResult}}}
	wire := NewCopier(wiretest.Client(via, func(*s3.Options) {}))
	for name, in := range map[string]*s3.CopyObjectInput{"nil": nil, "metadata": withMetadata, "checksum": withVersion,
		"no source": noSource, "multi-region point": mrap} {
		if _, err := wire.Copy(context.Background(), in); !errors.Is(err, ErrUnusable) {
			t.Errorf("%s: %v, want ErrUnusable", name, err)
		}
	}
	for name, opt := range map[string]func(*s3.Options){
		"anonymous":      func(o *s3.Options) { o.Credentials = aws.AnonymousCredentials{} },
		"no credentials": func(o *s3.Options) { o.Credentials = nil },
		"fips region":    func(o *s3.Options) { o.Region = "fips-us-gov-west-1" },
	} {
		wire := NewCopier(wiretest.Client(via, opt))
		if wire.Usable(context.Background(), "dst") {
			t.Errorf("%s: usable", name)
		}
		if _, err := wire.Copy(context.Background(), copyInput()); !errors.Is(err, ErrUnusable) {
			t.Errorf("%s: %v, want ErrUnusable", name, err)
		}
	}
	if len(via.Reqs) != 0 {
		t.Errorf("%d requests sent, want none", len(via.Reqs))
	}
	if !Encodes(copyInput()) {
		t.Error("the copier's own input is not encoded")
	}
}

// TestCopierReadsOnlyACleanAnswer: every answer but a 200 with a
// CopyObjectResult is an error, typed for what the caller does next:
// Throttled (with a code the SDK's retryer knows for a throttle), Expired,
// or any other.
func TestCopierReadsOnlyACleanAnswer(t *testing.T) {
	t.Parallel()
	throttles := retry.IsErrorThrottles(retry.DefaultThrottles)
	for _, c := range []struct {
		name     string
		answer   wiretest.Answer
		throttle string // the Throttled code, if one
		expired  bool
		text     string // the error's text, if neither
	}{
		{"slow down", wiretest.Answer{Status: 503, Body: wiretest.S3Error("SlowDown")}, "SlowDown", false, ""},
		{"too many requests", wiretest.Answer{Status: 429}, "SlowDown", false, ""},
		{"bare 503", wiretest.Answer{Status: 503}, "SlowDown", false, ""},
		{"service unavailable", wiretest.Answer{Status: 503, Body: wiretest.S3Error("ServiceUnavailable")}, "SlowDown", false, ""},
		{"throttling code on a 400", wiretest.Answer{Status: 400, Body: wiretest.S3Error("Throttling")}, "Throttling", false, ""},
		{"expired token", wiretest.Answer{Status: 400, Body: wiretest.S3Error("ExpiredToken")}, "", true, ""},
		{"request expired", wiretest.Answer{Status: 403, Body: wiretest.S3Error("RequestExpired")}, "", true, ""},
		{"200 with an error", wiretest.Answer{Status: 200, Body: "\n\n   " + wiretest.S3Error("InternalError")}, "", false, `200 with root element "Error"`},
		{"empty 200", wiretest.Answer{Status: 200}, "", false, `200 with root element ""`},
		{"precondition failed", wiretest.Answer{Status: 412, Body: wiretest.S3Error("PreconditionFailed")}, "", false, "status 412 PreconditionFailed"},
		{"dropped connection", wiretest.Answer{Err: io.ErrUnexpectedEOF}, "", false, "unexpected EOF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			via := &wiretest.Scripted{Answers: []wiretest.Answer{c.answer}}
			out, err := NewCopier(wiretest.Client(via, func(*s3.Options) {})).Copy(context.Background(), copyInput())
			if out != nil || err == nil || len(via.Reqs) != 1 {
				t.Fatalf("%v, %v after %d requests; want one request and an error", out, err, len(via.Reqs))
			}
			var th Throttled
			if errors.As(err, &th) != (c.throttle != "") || th.Code != c.throttle {
				t.Errorf("error %v, want throttled %q", err, c.throttle)
			}
			if c.throttle != "" && throttles.IsErrorThrottle(err) != aws.TrueTernary {
				t.Errorf("the SDK's retryer does not take %v for a throttle", err)
			}
			var exp Expired
			if errors.As(err, &exp) != c.expired {
				t.Errorf("error %v, want expired %v", err, c.expired)
			}
			if c.text != "" && !strings.Contains(err.Error(), c.text) {
				t.Errorf("error %q, want %q", err, c.text)
			}
		})
	}
	via := &wiretest.Scripted{Answers: []wiretest.Answer{{Status: 200, Body: wiretest.CopyResult,
		Header: http.Header{"X-Amz-Copy-Source-Version-Id": {"s1"}, "X-Amz-Server-Side-Encryption": {"AES256"}}}}}
	out, err := NewCopier(wiretest.Client(via, func(*s3.Options) {})).Copy(context.Background(), copyInput())
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.CopyObjectResult.ETag) != `"9b2cf535f27731c974343645a3985328"` || aws.ToString(out.VersionId) != "v7" ||
		aws.ToString(out.CopySourceVersionId) != "s1" || out.ServerSideEncryption != types.ServerSideEncryptionAes256 ||
		!aws.ToTime(out.CopyObjectResult.LastModified).Equal(time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)) {
		t.Errorf("read %+v, result %+v", out, out.CopyObjectResult)
	}
}

// TestCopierLearnsTheServersClock: refused as too skewed, Copier signs the
// next copies by the server's clock (from its Date header), as the SDK does.
func TestCopierLearnsTheServersClock(t *testing.T) {
	t.Parallel()
	ahead := time.Now().Add(time.Hour).UTC()
	via := &wiretest.Scripted{By: func(req *http.Request) wiretest.Answer {
		at, _ := time.Parse("20060102T150405Z", req.Header.Get("X-Amz-Date"))
		if at.Before(ahead.Add(-time.Minute)) {
			return wiretest.Answer{Status: 403, Body: wiretest.S3Error("RequestTimeTooSkewed"), Header: http.Header{"Date": {ahead.Format(http.TimeFormat)}}}
		}
		return wiretest.Answer{Status: 200, Body: wiretest.CopyResult}
	}}
	wire := NewCopier(wiretest.Client(via, func(*s3.Options) {}))
	if _, err := wire.Copy(context.Background(), copyInput()); err == nil || !strings.Contains(err.Error(), "RequestTimeTooSkewed") {
		t.Fatalf("first copy: %v, want the refusal", err)
	}
	for range 2 {
		if _, err := wire.Copy(context.Background(), copyInput()); err != nil {
			t.Fatal(err)
		}
	}
	if len(via.Reqs) != 3 {
		t.Errorf("%d requests, want 3", len(via.Reqs))
	}
}

func TestRootElementAndText(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]string{
		wiretest.CopyResult:                        "CopyObjectResult",
		"  \n" + wiretest.S3Error("InternalError"): "Error",
		`<?xml version="1.0"?><!-- x --><Error/>`:  "Error",
		"":                   "",
		"garbage":            "",
		"<?xml unterminated": "",
	} {
		if got := rootElement([]byte(doc)); got != want {
			t.Errorf("rootElement(%q) = %q, want %q", doc, got, want)
		}
	}
	if got := xmlText([]byte(wiretest.CopyResult), "ETag"); got != `"9b2cf535f27731c974343645a3985328"` {
		t.Errorf("ETag %q", got)
	}
	if got := xmlText([]byte(wiretest.S3Error("SlowDown")), "Code"); got != "SlowDown" {
		t.Errorf("Code %q", got)
	}
	if got := xmlText([]byte("<Code>unclosed"), "Code"); got != "" {
		t.Errorf("unclosed element gave %q", got)
	}
}
