package copier

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// signer signs Direct's requests with AWS Signature Version 4 the way the
// SDK's v4.Signer does with DisableURIPathEscaping (S3's setting), byte for
// byte (TestSignerMatchesTheSDK), for the one shape Direct sends: no body
// and a handful of headers. The SDK's signer is generic: it copies the
// header map, parses the query, and allocates its way through; in a copy
// loop that was a seventh of the client's CPU.
type signer struct {
	mu  sync.Mutex
	key derivedKey // the last one derived; it changes once a day
}

type derivedKey struct {
	secret, date, region, service string
	key                           []byte
}

// unsignedHeaders are the headers the SDK leaves out of the signature.
var unsignedHeaders = map[string]bool{"Authorization": true, "User-Agent": true, "X-Amzn-Trace-Id": true, "Expect": true, "Transfer-Encoding": true}

// lowerNames spares a strings.ToLower per header for those Direct sends.
var lowerNames = map[string]string{}

func init() {
	for _, h := range []string{"Accept-Encoding", "X-Amz-Content-Sha256", "X-Amz-Copy-Source", "X-Amz-Copy-Source-If-Match",
		"X-Amz-Metadata-Directive", "X-Amz-Tagging-Directive", "X-Amz-Storage-Class", "X-Amz-Acl", "X-Amz-Server-Side-Encryption",
		"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id", "X-Amz-Date", "X-Amz-Security-Token"} {
		lowerNames[h] = strings.ToLower(h)
	}
}

var canonicals = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// sign adds X-Amz-Date, the session token if any, and Authorization to req.
// The URL's query must already be in canonical form (sorted, escaped).
func (s *signer) sign(req *http.Request, creds aws.Credentials, payloadHash, service, region string, now time.Time) {
	amzDate := now.UTC().Format("20060102T150405Z")
	date := amzDate[:8]
	h := req.Header
	h["X-Amz-Date"] = []string{amzDate}
	if creds.SessionToken != "" {
		h["X-Amz-Security-Token"] = []string{creds.SessionToken}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if bare := withoutDefaultPort(req.URL.Scheme, host); bare != host {
		req.Host, host = bare, bare
	}

	type header struct{ lower, name string }
	headers := make([]header, 0, len(h)+1)
	headers = append(headers, header{"host", ""})
	for name := range h {
		if unsignedHeaders[name] {
			continue
		}
		lower, ok := lowerNames[name]
		if !ok {
			lower = strings.ToLower(name)
		}
		headers = append(headers, header{lower, name})
	}
	slices.SortFunc(headers, func(a, b header) int { return strings.Compare(a.lower, b.lower) })
	var signed strings.Builder
	for i, hd := range headers {
		if i > 0 {
			signed.WriteByte(';')
		}
		signed.WriteString(hd.lower)
	}
	signedHeaders := signed.String()

	buf := canonicals.Get().(*bytes.Buffer)
	defer canonicals.Put(buf)
	buf.Reset()
	buf.WriteString(req.Method)
	buf.WriteByte('\n')
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	buf.WriteString(path)
	buf.WriteByte('\n')
	buf.WriteString(req.URL.RawQuery)
	buf.WriteByte('\n')
	for _, hd := range headers {
		buf.WriteString(hd.lower)
		buf.WriteByte(':')
		if hd.name == "" {
			writeTrimmed(buf, host)
		} else {
			for i, v := range h[hd.name] {
				if i > 0 {
					buf.WriteByte(',')
				}
				writeTrimmed(buf, v)
			}
		}
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
	buf.WriteString(signedHeaders)
	buf.WriteByte('\n')
	buf.WriteString(payloadHash)
	canonicalHash := sha256.Sum256(buf.Bytes())

	scope := date + "/" + region + "/" + service + "/aws4_request"
	buf.Reset()
	buf.WriteString("AWS4-HMAC-SHA256\n")
	buf.WriteString(amzDate)
	buf.WriteByte('\n')
	buf.WriteString(scope)
	buf.WriteByte('\n')
	var hexHash [64]byte
	hex.Encode(hexHash[:], canonicalHash[:])
	buf.Write(hexHash[:])
	mac := hmac.New(sha256.New, s.signingKey(creds.SecretAccessKey, date, region, service))
	mac.Write(buf.Bytes())
	var sig [64]byte
	hex.Encode(sig[:], mac.Sum(nil))
	h["Authorization"] = []string{"AWS4-HMAC-SHA256 Credential=" + creds.AccessKeyID + "/" + scope +
		", SignedHeaders=" + signedHeaders + ", Signature=" + string(sig[:])}
}

// signingKey derives (or reuses) the day's key for a region and service.
func (s *signer) signingKey(secret, date, region, service string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := &s.key
	if k.key != nil && k.secret == secret && k.date == date && k.region == region && k.service == service {
		return k.key
	}
	key := hmacSHA256([]byte("AWS4"+secret), date)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "aws4_request")
	*k = derivedKey{secret: secret, date: date, region: region, service: service, key: key}
	return key
}

func hmacSHA256(key []byte, data string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(data))
	return mac.Sum(nil)
}

// writeTrimmed writes v without leading or trailing spaces and with runs of
// spaces inside cut to one, as SigV4 canonical header values are.
func writeTrimmed(buf *bytes.Buffer, v string) {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "  ") {
		buf.WriteString(v)
		return
	}
	space := false
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		buf.WriteByte(v[i])
	}
}

// withoutDefaultPort drops :80 from an http host and :443 from an https
// one, as the SDK does before signing.
func withoutDefaultPort(scheme, host string) string {
	if scheme == "http" && strings.HasSuffix(host, ":80") {
		return strings.TrimSuffix(host, ":80")
	}
	if scheme == "https" && strings.HasSuffix(host, ":443") {
		return strings.TrimSuffix(host, ":443")
	}
	return host
}
