package copier

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/encoding/httpbinding"
)

// TestSignerMatchesTheSDK signs the same requests with the SDK's v4.Signer
// (as its S3 client configures it) and with Direct's signer, at the same
// moment, and wants the same headers back byte for byte.
func TestSignerMatchesTheSDK(t *testing.T) {
	sdk := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	var ours signer
	when := time.Date(2026, 11, 25, 23, 59, 59, 0, time.UTC)
	creds := []aws.Credentials{
		{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
		{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "other-secret", SessionToken: "FwoGZXIvYXdzEJr//////////wEaDExample+token=="},
	}
	hosts := []string{"http://127.0.0.1:7070", "https://dest.s3.eu-central-2.amazonaws.com", "https://s3.us-east-1.amazonaws.com:443", "http://localhost:80"}
	keys := []string{"images/2026/11/photo-000123.jpg", "dir with space/a+b%c?d#e=f&g.jpg", "ünï/çødé.jpg", "a//b", "~!$'()*,;:@[]"}
	headerSets := []map[string]string{
		{"X-Amz-Metadata-Directive": "COPY", "X-Amz-Tagging-Directive": "COPY", "X-Amz-Copy-Source-If-Match": `"9b2cf535f27731c974343645a3985328"`},
		{"X-Amz-Storage-Class": "GLACIER_IR", "X-Amz-Acl": "bucket-owner-full-control", "X-Amz-Server-Side-Encryption": "aws:kms",
			"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "  spaced   key\tid  ", "X-Amzn-Trace-Id": "Root=1-5759e988", "X-Custom-Header": "kept"},
	}
	for ci, c := range creds {
		for _, host := range hosts {
			for _, key := range keys {
				for hi, extra := range headerSets {
					for _, region := range []string{"us-east-1", "eu-central-2"} {
						a, b := request(t, host, key, extra), request(t, host, key, extra)
						if err := sdk.SignHTTP(context.Background(), c, a, emptySHA256, "s3", region, when); err != nil {
							t.Fatal(err)
						}
						ours.sign(b, c, emptySHA256, "s3", region, when)
						for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
							if a.Header.Get(h) != b.Header.Get(h) {
								t.Errorf("creds %d, %s, %q, headers %d, %s: %s\n ours %q\n SDK  %q", ci, host, key, hi, region, h, b.Header.Get(h), a.Header.Get(h))
							}
						}
						if a.Host != b.Host || a.URL.String() != b.URL.String() {
							t.Errorf("%s %q: host %q URL %s, SDK's %q %s", host, key, b.Host, b.URL, a.Host, a.URL)
						}
					}
				}
			}
		}
	}
	// The day's key is derived once and reused until the day changes.
	first := ours.signingKey("s", "20261125", "us-east-1", "s3")
	if again := ours.signingKey("s", "20261125", "us-east-1", "s3"); &again[0] != &first[0] {
		t.Error("the signing key was derived again for the same day")
	}
	if next := ours.signingKey("s", "20261126", "us-east-1", "s3"); string(next) == string(first) {
		t.Error("the next day's signing key is the same")
	}
}

func request(t *testing.T, endpoint, key string, headers map[string]string) *http.Request {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/bucket/" + key
	u.RawPath = "/bucket/" + httpbinding.EscapePath(key, false)
	u.RawQuery = "x-id=CopyObject"
	req, err := http.NewRequest(http.MethodPut, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL = u
	req.Header.Set("User-Agent", "s3clone test")
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	req.Header.Set("X-Amz-Copy-Source", EscapeCopySource("source", key))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}
