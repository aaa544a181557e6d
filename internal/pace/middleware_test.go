package pace

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// slowDowns answers the first n requests of each method with S3's 503
// SlowDown, then succeeds: a CopyObject result for a PUT, headers for a HEAD.
type slowDowns struct {
	mu    sync.Mutex
	n     int
	seen  map[string]int
	times map[string][]time.Time
}

func (s *slowDowns) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen[r.Method]++
	s.times[r.Method] = append(s.times[r.Method], time.Now())
	throttle := s.seen[r.Method] <= s.n
	s.mu.Unlock()
	if throttle {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
		}
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", "3")
		w.Header().Set("ETag", `"e"`)
		return
	}
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><CopyObjectResult><ETag>"e"</ETag></CopyObjectResult>`))
}

func (s *slowDowns) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[method]
}

func client(url string) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 10
			o.MaxBackoff = 200 * time.Millisecond
			o.RateLimiter = ratelimit.None
		}),
	})
}

// A paced client's writes wait for their prefix's rate at every attempt
// and are retried after a throttle as the rate allows, past the client's
// own 10 attempts; its reads keep the client's retries and backoff.
func TestClientPacesWritesAndLeavesReads(t *testing.T) {
	t.Parallel()
	srv := &slowDowns{n: 12, seen: map[string]int{}, times: map[string][]time.Time{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	p := New(Config{Worker: "w"})
	c := p.Client(client(ts.URL))
	ctx := context.Background()

	start := time.Now()
	_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("img/a.jpg"), CopySource: aws.String("src/img/a.jpg")})
	if err != nil {
		t.Fatalf("a copy throttled 12 times: %v (want it copied: throttles are retried up to %d times)", err, ThrottledAttempts)
	}
	tot := p.Totals()
	if srv.count(http.MethodPut) != 13 || tot.Sent != 13 || tot.Throttled != 12 || tot.Cuts == 0 || tot.Waiting != 0 {
		t.Fatalf("%d PUTs; totals %+v: want 13 paced attempts, 12 throttled, a cut, no key left waiting", srv.count(http.MethodPut), tot)
	}
	// 13 attempts at the prefix's rate (100 a second to start, cut by
	// the throttles; the floor is 100 alone): about 0.1 s, not the
	// seconds of a backoff.
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the copy took %v", took)
	}

	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String("img/a.jpg")})
	if err == nil || !strings.Contains(err.Error(), "exceeded maximum number of attempts, 10") {
		t.Fatalf("a HEAD throttled 12 times: %v, want the client's 10 attempts exhausted", err)
	}
	if got := p.Totals(); got.Sent != 13 || got.Throttled != 12 {
		t.Fatalf("a read was paced: totals %+v", got)
	}
	// The HEAD's retries backed off as the client's retryer does (up to
	// 200 ms here); the copy's followed the rate.
	srv.mu.Lock()
	heads := srv.times[http.MethodHead]
	srv.mu.Unlock()
	if span := heads[len(heads)-1].Sub(heads[0]); span < 100*time.Millisecond {
		t.Errorf("10 HEAD attempts within %v: the read did not back off", span)
	}
}
