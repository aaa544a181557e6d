package plan

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/test/testbed"
)

// syntheticBucket serves a flat bucket of n keys, made up on the fly from
// the position in the key space, so a million keys cost no memory here.
type syntheticBucket struct{ n int }

func (b syntheticBucket) key(i int) string { return fmt.Sprintf("images/%08d.jpg", i) }

func (b syntheticBucket) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	start := 0
	if tok := aws.ToString(in.ContinuationToken); tok != "" {
		start, _ = strconv.Atoi(tok)
	} else if after := aws.ToString(in.StartAfter); after != "" {
		// First index whose key is > after.
		lo, hi := 0, b.n
		for lo < hi {
			mid := (lo + hi) / 2
			if b.key(mid) <= after {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		start = lo
	}
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	end := min(start+int(aws.ToInt32(in.MaxKeys)), b.n)
	for i := start; i < end; i++ {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(b.key(i)), Size: aws.Int64(int64(1000 + i%50000)), ETag: aws.String(`"0123456789abcdef0123456789abcdef"`)})
	}
	if end < b.n {
		out.IsTruncated = aws.Bool(true)
		out.NextContinuationToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

// BenchmarkPlan plans a synthetic flat bucket and reports keys/s and the
// peak heap while planning, which must not grow with the number of keys.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			for b.Loop() {
				peak, stop := watchHeap()
				start := time.Now()
				l := listing.New(syntheticBucket{n: n}, "b", "", listing.Options{}, zerolog.Nop())
				sum := &Summary{Run: "r", Source: Location{Bucket: "b"}, Dest: Location{Bucket: "c"}}
				err := Enqueue(context.Background(), ListSource(l), sum, Options{}, func(context.Context, [][]byte) error { return nil }, nil)
				stop()
				if err != nil {
					b.Fatal(err)
				}
				if sum.Objects.Load() != int64(n) {
					b.Fatalf("planned %d of %d keys", sum.Objects.Load(), n)
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "keys/s")
				b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
				b.ReportMetric(float64(testbed.PeakRSS(0))/1024, "process-peak-RSS-MiB") // the test binary included
			}
		})
	}
}

// BenchmarkDiff joins two synthetic buckets of n identical keys and reports
// pairs/s and the peak heap, which must not grow with the number of keys.
func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			for b.Loop() {
				peak, stop := watchHeap()
				start := time.Now()
				side := listing.Side{API: syntheticBucket{n: n}, Bucket: "b"}
				p := listing.NewPaired(side, side, listing.Options{})
				var counts DiffCounts
				err := Diff(context.Background(), p, &Comparer{}, &counts, func(context.Context, Finding) error { return nil })
				stop()
				if err != nil {
					b.Fatal(err)
				}
				if counts.Matching.Load() != int64(n) {
					b.Fatalf("%d of %d keys matched", counts.Matching.Load(), n)
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "pairs/s")
				b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
			}
		})
	}
}

// watchHeap samples the heap in use until stop is called.
func watchHeap() (*atomic.Uint64, func()) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	return &peak, func() { close(done); <-finished }
}
