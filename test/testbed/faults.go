package testbed

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// FaultProxy is an HTTP proxy in front of the S3 server that answers a share
// of requests with S3's throttling or server errors, or drops the connection
// without an answer, and passes the rest through untouched (signatures
// included: the Host header is kept).
type FaultProxy struct {
	URL                        string
	SlowDowns, Internal, Drops atomic.Int64
	Passed                     atomic.Int64
	// Matched counts the requests passed on that match (CountingWhere).
	Matched atomic.Int64
	match   func(*http.Request) bool
	delay   time.Duration
}

// Faults starts a FaultProxy in front of the S3 server; the percentages
// are of all requests.
func (e *Env) Faults(t testing.TB, slowDownPct, internalPct, dropPct float64) *FaultProxy {
	return e.faults(t, e.S3Endpoint, s3Error, nil, 0, slowDownPct, internalPct, dropPct)
}

// SQSFaults starts a FaultProxy in front of the SQS server, answering in
// SQS's JSON protocol (RequestThrottled for "slow down"). It faults only the
// calls that move messages (send, receive, delete, change visibility), not
// the attribute look-ups of start-up checks.
func (e *Env) SQSFaults(t testing.TB, throttledPct, internalPct, dropPct float64) *FaultProxy {
	moves := func(r *http.Request) bool {
		target := r.Header.Get("X-Amz-Target")
		return !strings.HasSuffix(target, "GetQueueAttributes") && !strings.HasSuffix(target, "GetQueueUrl")
	}
	return e.faults(t, e.SQSEndpoint, sqsError, moves, 0, throttledPct, internalPct, dropPct)
}

// Counting starts a proxy in front of target (an S3 endpoint, such as a
// latency proxy) that passes every request on and counts them in Passed.
func (e *Env) Counting(t testing.TB, target string) *FaultProxy {
	return e.faults(t, target, s3Error, nil, 0, 0, 0, 0)
}

// CountingWhere is Counting that also counts, in Matched, the requests
// match picks (say, those for one bucket).
func (e *Env) CountingWhere(t testing.TB, target string, match func(*http.Request) bool) *FaultProxy {
	return e.faultsMatching(t, target, s3Error, nil, match, 0, 0, 0, 0)
}

// Client is an S3 client for endpoint (the server, or a proxy in front of
// it) with the testbed's credentials.
func (e *Env) Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region: Region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// Slow starts a proxy in front of the S3 server that holds every request
// for delay before passing it on, to make a listing take its time.
func (e *Env) Slow(t testing.TB, delay time.Duration) *FaultProxy {
	return e.faults(t, e.S3Endpoint, s3Error, nil, delay, 0, 0, 0)
}

type errorWriter func(w http.ResponseWriter, status int, code, msg string)

func (e *Env) faults(t testing.TB, target string, writeErr errorWriter, only func(*http.Request) bool, delay time.Duration, slowDownPct, internalPct, dropPct float64) *FaultProxy {
	t.Helper()
	return e.faultsMatching(t, target, writeErr, only, nil, delay, slowDownPct, internalPct, dropPct)
}

func (e *Env) faultsMatching(t testing.TB, target string, writeErr errorWriter, only, match func(*http.Request) bool, delay time.Duration, slowDownPct, internalPct, dropPct float64) *FaultProxy {
	t.Helper()
	upstream, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	fp := &FaultProxy{delay: delay, match: match}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(upstream)
		r.Out.Host = r.In.Host // the client signed this Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		roll := rand.Float64() * 100
		if only != nil && !only(r) {
			roll = 100 // never faulted
		}
		switch {
		case roll < slowDownPct:
			fp.SlowDowns.Add(1)
			writeErr(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		case roll < slowDownPct+internalPct:
			fp.Internal.Add(1)
			writeErr(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
		case roll < slowDownPct+internalPct+dropPct:
			fp.Drops.Add(1)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close() // no answer at all: the client sees the connection reset
			}
		default:
			fp.Passed.Add(1)
			if fp.match != nil && fp.match(r) {
				fp.Matched.Add(1)
			}
			time.Sleep(fp.delay)
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	fp.URL = srv.URL
	return fp
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>injected</RequestId></Error>`, code, msg)
}

func sqsError(w http.ResponseWriter, status int, code, msg string) {
	if code == "SlowDown" {
		status, code = http.StatusBadRequest, "RequestThrottled"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", code+";Sender")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#%s","message":%q}`, code, msg)
}
