package testbed

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stubS3 is an upstream answering 200 to everything, recording what it got.
type stubS3 struct {
	URL string
	n   atomic.Int64
	mu  sync.Mutex
	got []string // "METHOD RequestURI Host"
}

func newStubS3(t *testing.T) *stubS3 {
	s := &stubS3{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // a stub: the body means nothing
		s.n.Add(1)
		s.mu.Lock()
		s.got = append(s.got, r.Method+" "+r.RequestURI+" "+r.Host)
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *stubS3) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return ""
	}
	return s.got[len(s.got)-1]
}

// send makes one request through the proxy and returns the status and body.
func send(t *testing.T, c *http.Client, method, url string, header ...string) (int, string) {
	t.Helper()
	status, body, err := try(c, method, url, header...)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

// try is send for any goroutine.
func try(c *http.Client, method, url string, header ...string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: read: %w", method, url, err)
	}
	return resp.StatusCode, string(body), nil
}

func testClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

const (
	slowDownCode = "<Code>SlowDown</Code>"
	slowDownMsg  = "<Message>Please reduce your request rate.</Message>"
)

// A burst above the limit: the bucket's 200 ms pass at once, the rest are
// answered SlowDown without reaching the upstream. Every kind of object
// write takes a token.
func TestPartitionsBurst(t *testing.T) {
	up := newStubS3(t)
	p := PartitionsBefore(t, up.URL, "bkt", Partition{Prefix: "", Limit: 50})
	c := testClient(t)
	writes := []struct{ method, path string }{
		{"PUT", "/bkt/k"},                            // PutObject (a CopyObject below)
		{"PUT", "/bkt/k?partNumber=1&uploadId=u"},    // UploadPart(Copy)
		{"POST", "/bkt/k?uploads"},                   // CreateMultipartUpload
		{"POST", "/bkt/k?uploadId=u"},                // CompleteMultipartUpload
		{"DELETE", "/bkt/k"},                         // DeleteObject
		{"PUT", "/bkt/dir/k%2Fwith%20space?tagging"}, // PutObjectTagging
		{"DELETE", "/bkt/k?uploadId=u"},              // AbortMultipartUpload
		{"PUT", "/bkt/copy"},                         // CopyObject
		{"PUT", "/bkt/copy?partNumber=2&uploadId=u"}, // UploadPartCopy
		{"POST", "/bkt/k?restore"},                   // RestoreObject
	}
	const n = 40
	var accepted, throttled int64
	start := time.Now()
	for i := range n {
		w := writes[i%len(writes)]
		status, body := send(t, c, w.method, p.URL+w.path, "X-Amz-Copy-Source", "/src/k")
		switch status {
		case http.StatusOK:
			accepted++
		case http.StatusServiceUnavailable:
			throttled++
			if !strings.Contains(body, slowDownCode) || !strings.Contains(body, slowDownMsg) {
				t.Fatalf("503 body %q, want S3's SlowDown", body)
			}
		default:
			t.Fatalf("%s %s: status %d", w.method, w.path, status)
		}
	}
	elapsed := time.Since(start)
	// 10 tokens at the start, 50 more a second while the burst lasted.
	most := 10 + int64(elapsed.Seconds()*50) + 1
	if accepted < 10 || accepted > most {
		t.Errorf("accepted %d of %d in %v, want 10..%d", accepted, n, elapsed, most)
	}
	if throttled != n-accepted || throttled == 0 {
		t.Errorf("throttled %d, want %d (and some)", throttled, n-accepted)
	}
	if got := up.n.Load(); got != accepted {
		t.Errorf("upstream saw %d requests, want the %d accepted", got, accepted)
	}
	s := p.Stats()
	if len(s) != 1 || s[0].Accepted != accepted || s[0].Throttled != throttled || s[0].Limit != 50 || s[0].Splits != 0 {
		t.Errorf("stats %+v, want accepted %d throttled %d limit 50 no split", s, accepted, throttled)
	}
	if s[0].First.Before(start) || s[0].Last.Before(s[0].First) || len(s[0].PerSecond) != 1 || s[0].PerSecond[0] != accepted {
		t.Errorf("stats first %v last %v per second %v, want one second of %d after %v", s[0].First, s[0].Last, s[0].PerSecond, accepted, start)
	}
	if p.Throttled() != throttled {
		t.Errorf("Throttled() %d, want %d", p.Throttled(), throttled)
	}
}

// Writes paced at half the limit for a second are never throttled.
func TestPartitionsPaced(t *testing.T) {
	up := newStubS3(t)
	p := PartitionsBefore(t, up.URL, "bkt", Partition{Prefix: "", Limit: 100})
	c := testClient(t)
	tick := time.NewTicker(20 * time.Millisecond) // 50 a second
	defer tick.Stop()
	const n = 50
	for i := range n {
		if status, body := send(t, c, "PUT", p.URL+"/bkt/k"); status != http.StatusOK {
			t.Fatalf("write %d: status %d %s", i, status, body)
		}
		<-tick.C
	}
	s := p.Stat("")
	if s.Accepted != n || s.Throttled != 0 || up.n.Load() != n {
		t.Errorf("accepted %d throttled %d upstream %d, want %d, 0, %d", s.Accepted, s.Throttled, up.n.Load(), n, n)
	}
	var sum int64
	for _, v := range s.PerSecond {
		sum += v
	}
	if sum != n || len(s.PerSecond) > 2 {
		t.Errorf("per second %v, want %d over a second or two", s.PerSecond, n)
	}
}

// Reads, bucket-level requests, other buckets and keys outside every
// partition go through untouched; the longest prefix wins; the request
// reaches the upstream unchanged.
func TestPartitionsWhatCounts(t *testing.T) {
	up := newStubS3(t)
	// 0.1 a second: one token, the next in ten seconds.
	p := PartitionsBefore(t, up.URL, "bkt", Partition{Prefix: "a/", Limit: 0.1})
	c := testClient(t)
	free := []struct{ method, path string }{
		{"GET", "/bkt/a/x"},
		{"HEAD", "/bkt/a/x"},
		{"GET", "/bkt/a/x?tagging"},
		{"POST", "/bkt?delete"}, // DeleteObjects
		{"POST", "/bkt/?delete"},
		{"GET", "/bkt?list-type=2&prefix=a/"},
		{"PUT", "/bkt"},        // CreateBucket
		{"PUT", "/bkt?policy"}, // PutBucketPolicy
		{"DELETE", "/bkt"},
		{"PUT", "/other/a/x"}, // another bucket
		{"DELETE", "/other/a/x"},
		{"PUT", "/bkt/b/x"}, // outside every partition
		{"POST", "/bkt/ab?uploads"},
		{"DELETE", "/bkt/z"},
	}
	for range 5 {
		for _, f := range free {
			if status, body := send(t, c, f.method, p.URL+f.path); status != http.StatusOK {
				t.Fatalf("%s %s: status %d %s", f.method, f.path, status, body)
			}
		}
	}
	if s := p.Stat("a/"); s.Accepted != 0 || s.Throttled != 0 {
		t.Fatalf("requests that are no writes in a/ counted: %+v", s)
	}
	if got := up.n.Load(); got != int64(5*len(free)) {
		t.Fatalf("upstream saw %d, want %d", got, 5*len(free))
	}
	if status, _ := send(t, c, "PUT", p.URL+"/bkt/a/x"); status != http.StatusOK {
		t.Fatalf("first write in a/: status %d", status)
	}
	// The key is decoded: a%2Fy is a/y.
	if status, body := send(t, c, "PUT", p.URL+"/bkt/a%2Fy"); status != http.StatusServiceUnavailable || !strings.Contains(body, slowDownCode) {
		t.Fatalf("second write in a/: status %d %s, want 503 SlowDown", status, body)
	}
	if status, _ := send(t, c, "GET", p.URL+"/bkt/a/x"); status != http.StatusOK {
		t.Fatalf("read in a throttled partition: status %d", status)
	}
	if s := p.Stat("a/"); s.Accepted != 1 || s.Throttled != 1 {
		t.Errorf("a/: %+v, want 1 accepted, 1 throttled", s)
	}

	// Longest prefix: a/ takes its own writes, "" the rest of the bucket.
	up2 := newStubS3(t)
	p2 := PartitionsBefore(t, up2.URL, "bkt", Partition{Prefix: "", Limit: 0.1}, Partition{Prefix: "a/", Limit: 1000})
	for i := range 30 {
		if status, body := send(t, c, "PUT", p2.URL+"/bkt/a/k"); status != http.StatusOK {
			t.Fatalf("write %d in a/: status %d %s", i, status, body)
		}
	}
	if status, _ := send(t, c, "PUT", p2.URL+"/bkt/ab"); status != http.StatusOK {
		t.Fatalf("first write in the bucket: status %d", status)
	}
	if status, _ := send(t, c, "PUT", p2.URL+"/bkt/b/k"); status != http.StatusServiceUnavailable {
		t.Fatalf("second write in the bucket: status %d, want 503", status)
	}
	// The "" partition is out of tokens; bucket-level requests still pass.
	for _, f := range []struct{ method, path string }{{"POST", "/bkt?delete"}, {"POST", "/bkt/?delete"}, {"PUT", "/bkt?policy"}, {"DELETE", "/bkt"}, {"GET", "/bkt/ab"}, {"HEAD", "/bkt/ab"}} {
		if status, body := send(t, c, f.method, p2.URL+f.path); status != http.StatusOK {
			t.Fatalf("%s %s with \"\" out of tokens: status %d %s", f.method, f.path, status, body)
		}
	}
	s := p2.Stats()
	if s[0].Prefix != "" || s[0].Accepted != 1 || s[0].Throttled != 1 || s[1].Prefix != "a/" || s[1].Accepted != 30 || s[1].Throttled != 0 {
		t.Errorf("stats %+v, want \"\" 1 accepted 1 throttled, a/ 30 accepted", s)
	}

	// Forwarded unchanged: raw path, query and the signed Host.
	const uri = "/bkt/a/%E2%82%AC%20x%2By?partNumber=2&uploadId=u%2B1"
	req, err := http.NewRequest("PUT", p2.URL+uri, strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "signed.example:9000"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "PUT " + uri + " signed.example:9000"; resp.StatusCode != http.StatusOK || up2.last() != want {
		t.Errorf("upstream got %q (status %d), want %q", up2.last(), resp.StatusCode, want)
	}
}

// Driven at twice its limit, a partition splits once a second of sustained
// load has gone by, to twice the limit, and no more than MaxSplits; Reset
// brings the configured limit back.
func TestPartitionsSplit(t *testing.T) {
	up := newStubS3(t)
	p := PartitionsBefore(t, up.URL, "bkt", Partition{Prefix: "", Limit: 50, SplitAfter: time.Second, MaxSplits: 1})
	c := testClient(t)
	tick := time.NewTicker(10 * time.Millisecond) // 100 a second
	defer tick.Stop()
	var accepted, throttled int64
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); <-tick.C {
		switch status, _ := send(t, c, "PUT", p.URL+"/bkt/k"); status {
		case http.StatusOK:
			accepted++
		case http.StatusServiceUnavailable:
			throttled++
		default:
			t.Fatalf("status %d", status)
		}
	}
	s := p.Stat("")
	if s.Splits != 1 || s.Limit != 100 || len(s.SplitAt) != 1 {
		t.Fatalf("after 2.5 s at 100/s: %d splits (at %v), limit %v; want 1 split to 100", s.Splits, s.SplitAt, s.Limit)
	}
	// The first write starts the clock; that second was loaded, so the
	// split comes right at its end.
	if d := s.SplitAt[0].Sub(s.First); d != time.Second {
		t.Errorf("split %v after the first write, want 1s", d)
	}
	if s.Accepted != accepted || s.Throttled != throttled || up.n.Load() != accepted || throttled == 0 {
		t.Errorf("stats accepted %d throttled %d, upstream %d; client saw %d and %d", s.Accepted, s.Throttled, up.n.Load(), accepted, throttled)
	}
	// At 50 a second no whole second takes more than 10 + 50; at 100 the
	// next second takes more.
	if len(s.PerSecond) < 2 || s.PerSecond[0] > 60 || s.PerSecond[0] < 40 || s.PerSecond[1] <= 60 {
		t.Errorf("accepted per second %v, want at most 60 then more than 60", s.PerSecond)
	}
	p.Reset()
	s = p.Stat("")
	if s.Limit != 50 || s.Splits != 0 || s.SplitAt != nil || s.Accepted != 0 || s.Throttled != 0 || !s.First.IsZero() || s.PerSecond != nil {
		t.Errorf("after Reset: %+v", s)
	}
}

// Reset zeroes the counters and fills the bucket, while requests flow and
// Stats is read.
func TestPartitionsReset(t *testing.T) {
	up := newStubS3(t)
	p := PartitionsBefore(t, up.URL, "bkt", Partition{Prefix: "", Limit: 50}, Partition{Prefix: "x/", Limit: 20})
	c := testClient(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				path := "/bkt/k"
				if (g+i)%2 == 0 {
					path = "/bkt/x/k"
				}
				status, _, err := try(c, "PUT", p.URL+path)
				if err != nil || status != http.StatusOK && status != http.StatusServiceUnavailable {
					t.Errorf("status %d, %v", status, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			_ = p.Stats()
			p.Reset()
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	p.Reset()
	for _, s := range p.Stats() {
		if s.Accepted != 0 || s.Throttled != 0 || s.Splits != 0 || !s.First.IsZero() || !s.Last.IsZero() || s.PerSecond != nil {
			t.Errorf("after Reset: %+v", s)
		}
	}
	// The bucket is full again: 10 writes at once pass, as at the start.
	for i := range 10 {
		if status, _ := send(t, c, "PUT", p.URL+"/bkt/k"); status != http.StatusOK {
			t.Fatalf("write %d after Reset: status %d", i, status)
		}
	}
	if s := p.Stat(""); s.Accepted != 10 || s.Throttled != 0 || s.Limit != 50 {
		t.Errorf("after Reset and 10 writes: %+v", s)
	}
}

// The partition's clock, on made-up times: the token bucket, what counts
// as sustained load, restarts of the clock and the split limits.
func TestPartitionClock(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// drive writes at rate a second over [from, from+d); returns how many passed.
	drive := func(p *partition, from, d time.Duration, rate float64) (passed int) {
		step := time.Duration(float64(time.Second) / rate)
		for x := from; x < from+d; x += step {
			if p.admit(at(x)) {
				passed++
			}
		}
		return passed
	}

	t.Run("bucket", func(t *testing.T) {
		p := newPartition(Partition{Limit: 10}, t0) // 2 tokens
		got := []bool{p.admit(t0), p.admit(t0), p.admit(t0), p.admit(at(50 * time.Millisecond)), p.admit(at(100 * time.Millisecond)), p.admit(at(100 * time.Millisecond))}
		if want := []bool{true, true, false, false, true, false}; !equalBools(got, want) {
			t.Errorf("admitted %v, want %v", got, want)
		}
		// An idle minute refills no more than the 200 ms burst.
		if n := drive(p, time.Minute, time.Millisecond, 1e6); n != 2 {
			t.Errorf("after a minute idle %d passed at once, want 2", n)
		}
		if s := p.stats(at(2 * time.Minute)); s.Accepted != 5 || s.Throttled != 3+1000-2 {
			t.Errorf("stats %+v", s)
		}
	})

	t.Run("splits", func(t *testing.T) {
		p := newPartition(Partition{Limit: 10, SplitAfter: 2 * time.Second, MaxSplits: 2}, t0)
		drive(p, 0, 1500*time.Millisecond, 10) // one loaded second, then half
		drive(p, 5*time.Second, time.Second, 10)
		drive(p, 6*time.Second, time.Second, 5) // loaded, then below 80%
		drive(p, 7*time.Second, time.Second, 8) // 80%: loaded
		drive(p, 8*time.Second, 900*time.Millisecond, 10)
		if s := p.stats(at(8950 * time.Millisecond)); s.Splits != 0 {
			t.Fatalf("split at %v without two whole loaded seconds", s.SplitAt)
		}
		drive(p, 8900*time.Millisecond, 1100*time.Millisecond, 10)
		s := p.stats(at(10 * time.Second))
		if s.Splits != 1 || !s.SplitAt[0].Equal(at(9*time.Second)) || s.Limit != 20 {
			t.Fatalf("after 7s..9s loaded: splits at %v, limit %v; want one at 9s, 20", s.SplitAt, s.Limit)
		}
		// 10 a second is not 80% of 20: no split however long.
		drive(p, 10*time.Second, 3*time.Second, 10)
		if s := p.stats(at(13 * time.Second)); s.Splits != 1 {
			t.Fatalf("split again at %v under 80%% of 20", s.SplitAt)
		}
		// 16 a second (80% of 20) from 13s splits at 15s.
		drive(p, 13*time.Second, 2*time.Second, 16)
		s = p.stats(at(15 * time.Second))
		if s.Splits != 2 || !s.SplitAt[1].Equal(at(15*time.Second)) || s.Limit != 40 {
			t.Fatalf("splits at %v, limit %v; want the second at 15s, 40", s.SplitAt, s.Limit)
		}
		drive(p, 15*time.Second, 5*time.Second, 100)
		if s := p.stats(at(20 * time.Second)); s.Splits != 2 || s.Limit != 40 {
			t.Fatalf("past MaxSplits: splits at %v, limit %v", s.SplitAt, s.Limit)
		}
		p.reset(at(21 * time.Second))
		if s := p.stats(at(21 * time.Second)); s.Limit != 10 || s.Splits != 0 || s.Accepted != 0 || s.Throttled != 0 {
			t.Fatalf("after reset: %+v", s)
		}
	})

	t.Run("max splits", func(t *testing.T) {
		once := newPartition(Partition{Limit: 10, SplitAfter: time.Second}, t0) // MaxSplits 0: one split
		never := newPartition(Partition{Limit: 10}, t0)
		thrice := newPartition(Partition{Limit: 10, SplitAfter: 2 * time.Second, MaxSplits: 3}, t0)
		for _, p := range []*partition{once, never, thrice} {
			drive(p, 0, 10*time.Second, 1000)
		}
		// Under constant load the clock restarts at each split: 2s, 4s, 6s.
		s := thrice.stats(at(10 * time.Second))
		if s.Splits != 3 || s.Limit != 80 || !s.SplitAt[0].Equal(at(2*time.Second)) || !s.SplitAt[1].Equal(at(4*time.Second)) || !s.SplitAt[2].Equal(at(6*time.Second)) {
			t.Errorf("MaxSplits 3 every 2s: splits at %v, limit %v; want 2s, 4s, 6s and 80", s.SplitAt, s.Limit)
		}
		if s := once.stats(at(10 * time.Second)); s.Splits != 1 || s.Limit != 20 || !s.SplitAt[0].Equal(at(time.Second)) {
			t.Errorf("MaxSplits 0: splits at %v, limit %v; want one at 1s", s.SplitAt, s.Limit)
		}
		if s := never.stats(at(10 * time.Second)); s.Splits != 0 || s.Limit != 10 {
			t.Errorf("SplitAfter 0: splits at %v, limit %v; want none", s.SplitAt, s.Limit)
		}
	})
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
