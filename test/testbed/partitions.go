package testbed

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Partition is one emulated S3 partition of a bucket: the keys under Prefix
// (the longest matching Prefix wins; "" is the whole bucket).
//
// S3 takes at least 3,500 PUT/COPY/POST/DELETE requests a second per
// partitioned prefix, answers 503 SlowDown beyond, and splits partitions
// gradually under sustained load; a Partition plays that at a chosen scale.
type Partition struct {
	Prefix string
	// Limit is the write requests a second it takes (a token bucket
	// refilled at Limit a second, holding a 200 ms burst: max(1,
	// Limit*0.2), full at the start); beyond it, it answers 503 SlowDown.
	Limit float64
	// SplitAfter is how long a sustained load makes it split: when in every
	// whole second of a span this long the writes arriving (accepted and
	// throttled) were at least 80% of its limit, its limit doubles and the
	// clock starts again. 0 never splits.
	SplitAfter time.Duration
	// MaxSplits is how many times it may split (0 with SplitAfter set
	// means 1).
	MaxSplits int
}

// Partitions is a proxy in front of an S3 endpoint playing partitions of
// one bucket (path-style addressing: /bucket/key). Writes of an object
// (PUT, POST, DELETE on /bucket/key, copies and multipart calls included)
// whose key falls in a partition take a token of it or are answered 503
// SlowDown without reaching the upstream; everything else (GET, HEAD,
// bucket-level requests, other buckets, keys outside every partition) is
// passed on untouched. Requests are forwarded unchanged, raw path and Host
// header included (they are SigV4-signed).
type Partitions struct {
	URL    string
	bucket string
	parts  []*partition
	proxy  *httputil.ReverseProxy
}

// PartitionStats is what a partition did since the start or the last Reset.
type PartitionStats struct {
	Prefix              string
	Limit               float64 // now (after splits)
	Accepted, Throttled int64   // write requests passed on / answered 503
	Splits              int
	SplitAt             []time.Time
	First, Last         time.Time // first and last accepted write
	// PerSecond is the accepted writes in each whole second since First,
	// up to the second of Last.
	PerSecond []int64
}

// Partitions starts the proxy in front of e.S3Endpoint for bucket.
func (e *Env) Partitions(t testing.TB, bucket string, parts ...Partition) *Partitions {
	t.Helper()
	return PartitionsBefore(t, e.S3Endpoint, bucket, parts...)
}

// PartitionsBefore starts the proxy in front of any S3 endpoint URL (for
// unit tests with a stub upstream). The server is closed when the test ends.
func PartitionsBefore(t testing.TB, upstream, bucket string, parts ...Partition) *Partitions {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("partitions: upstream %q: %v", upstream, err)
	}
	if bucket == "" {
		t.Fatal("partitions: no bucket")
	}
	p := &Partitions{bucket: bucket}
	now := time.Now()
	seen := map[string]bool{}
	for _, cfg := range parts {
		if !(cfg.Limit > 0) {
			t.Fatalf("partitions: prefix %q: limit %v, want > 0", cfg.Prefix, cfg.Limit)
		}
		if seen[cfg.Prefix] {
			t.Fatalf("partitions: prefix %q given twice", cfg.Prefix)
		}
		seen[cfg.Prefix] = true
		p.parts = append(p.parts, newPartition(cfg, now))
	}
	p.proxy = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the client signed this Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *Partitions) serve(w http.ResponseWriter, r *http.Request) {
	if part := p.writeTo(r); part != nil && !part.take() {
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
		return
	}
	p.proxy.ServeHTTP(w, r)
}

// writeTo is the partition an object write falls in, nil for any other
// request or a key outside every partition.
func (p *Partitions) writeTo(r *http.Request) *partition {
	switch r.Method {
	case http.MethodPut, http.MethodPost, http.MethodDelete:
	default:
		return nil
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != p.bucket || key == "" {
		return nil
	}
	return p.partitionOf(key)
}

// partitionOf is the partition with the longest prefix of key, nil if none.
func (p *Partitions) partitionOf(key string) *partition {
	var best *partition
	for _, part := range p.parts {
		if strings.HasPrefix(key, part.Prefix) && (best == nil || len(part.Prefix) > len(best.Prefix)) {
			best = part
		}
	}
	return best
}

// Stats is each partition's counts, in the order the partitions were given.
func (p *Partitions) Stats() []PartitionStats {
	out := make([]PartitionStats, len(p.parts))
	for i, part := range p.parts {
		part.mu.Lock()
		out[i] = part.stats(time.Now())
		part.mu.Unlock()
	}
	return out
}

// Stat is the counts of the partition with this prefix; it panics if no
// partition has it.
func (p *Partitions) Stat(prefix string) PartitionStats {
	for i, s := range p.Stats() {
		if p.parts[i].Prefix == prefix {
			return s
		}
	}
	panic("testbed: no partition with prefix " + prefix)
}

// Throttled is the writes answered 503 over all partitions.
func (p *Partitions) Throttled() int64 {
	var n int64
	for _, s := range p.Stats() {
		n += s.Throttled
	}
	return n
}

// Reset takes counters and splits back to the start: limits to the
// configured ones, token buckets full.
func (p *Partitions) Reset() {
	for _, part := range p.parts {
		part.mu.Lock()
		part.reset(time.Now())
		part.mu.Unlock()
	}
}

// partition is the state of one Partition; the methods taking a time are
// called with mu held.
type partition struct {
	Partition // as configured

	mu                  sync.Mutex
	limit               float64
	tokens              float64
	refilled            time.Time // when tokens were last brought up to date
	accepted, throttled int64
	splitAt             []time.Time
	first, last         time.Time
	perSecond           []int64
	// Load tracking for splits, in whole seconds from the first write after
	// an idle second.
	winStart    time.Time // start of the current second; zero when idle
	winCount    int64     // writes arriving in it, accepted or not
	loadedSince time.Time // start of the run of loaded seconds; zero when none
}

func newPartition(cfg Partition, now time.Time) *partition {
	p := &partition{Partition: cfg}
	p.reset(now)
	return p
}

func (p *partition) reset(now time.Time) {
	p.limit = p.Limit
	p.tokens = burst(p.limit)
	p.refilled = now
	p.accepted, p.throttled = 0, 0
	p.splitAt = nil
	p.first, p.last = time.Time{}, time.Time{}
	p.perSecond = nil
	p.winStart, p.winCount, p.loadedSince = time.Time{}, 0, time.Time{}
}

// burst is the token bucket's capacity: 200 ms at the limit, at least one.
func burst(limit float64) float64 { return max(1, limit*0.2) }

func (p *partition) maxSplits() int {
	switch {
	case p.SplitAfter <= 0:
		return 0
	case p.MaxSplits <= 0:
		return 1
	}
	return p.MaxSplits
}

// take admits a write arriving now, or refuses it.
func (p *partition) take() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.admit(time.Now())
}

// admit counts a write arriving at now and says whether it found a token.
func (p *partition) admit(now time.Time) bool {
	p.advance(now)
	if p.winStart.IsZero() {
		p.winStart = now
	}
	p.winCount++
	p.refill(now)
	if p.tokens < 1 {
		p.throttled++
		return false
	}
	p.tokens--
	p.accepted++
	if p.first.IsZero() {
		p.first = now
	}
	p.last = now
	i := max(0, int(now.Sub(p.first)/time.Second))
	for len(p.perSecond) <= i {
		p.perSecond = append(p.perSecond, 0)
	}
	p.perSecond[i]++
	return true
}

// refill adds the tokens earned at the current limit up to now.
func (p *partition) refill(now time.Time) {
	if now.After(p.refilled) {
		p.tokens = min(burst(p.limit), p.tokens+now.Sub(p.refilled).Seconds()*p.limit)
		p.refilled = now
	}
}

// advance closes the second of load tracking if it ended by now, and
// splits the partition when that second completes a sustained span. A
// second after it without any write makes the partition idle: tracking
// starts again with the next write.
func (p *partition) advance(now time.Time) {
	if p.winStart.IsZero() {
		return
	}
	end := p.winStart.Add(time.Second)
	if now.Before(end) {
		return
	}
	if float64(p.winCount) >= 0.8*p.limit {
		if p.loadedSince.IsZero() {
			p.loadedSince = p.winStart
		}
		if len(p.splitAt) < p.maxSplits() && end.Sub(p.loadedSince) >= p.SplitAfter {
			p.split(end)
		}
	} else {
		p.loadedSince = time.Time{}
	}
	p.winCount = 0
	if now.Before(end.Add(time.Second)) {
		p.winStart = end
	} else { // the second after it went by without a write
		p.winStart, p.loadedSince = time.Time{}, time.Time{}
	}
}

// split doubles the limit at time at; the sustained-load clock restarts.
func (p *partition) split(at time.Time) {
	p.refill(at) // tokens earned at the old limit up to the split
	p.limit *= 2
	p.splitAt = append(p.splitAt, at)
	p.loadedSince = time.Time{}
}

func (p *partition) stats(now time.Time) PartitionStats {
	p.advance(now)
	return PartitionStats{
		Prefix:    p.Prefix,
		Limit:     p.limit,
		Accepted:  p.accepted,
		Throttled: p.throttled,
		Splits:    len(p.splitAt),
		SplitAt:   append([]time.Time(nil), p.splitAt...),
		First:     p.first,
		Last:      p.last,
		PerSecond: append([]int64(nil), p.perSecond...),
	}
}
