package bench

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/test/testbed"
)

// BenchmarkListing lists a 100,000-key bucket (S3CLONE_BENCH_LIST_OBJECTS)
// behind the latency proxy with one sequential lister and with the parallel
// lister's default 64 (target: several times faster).
func BenchmarkListing(b *testing.B) {
	env := testbed.Get(b)
	n := setting("S3CLONE_BENCH_LIST_OBJECTS", 100_000)
	ms := setting("S3CLONE_BENCH_LATENCY_MS", 20)
	slow := env.WithLatency(b, ms)
	bucket := env.Bucket(b)
	for start := 0; start < n; start += 5000 { // in chunks: bodies are empty, keys are many
		var objs []testbed.Object
		for i := start; i < min(start+5000, n); i++ {
			objs = append(objs, testbed.Object{Key: fmt.Sprintf("img/%d/%02d/%02d/photo-%07d.jpg", 2020+i%5, i%12, i%28, i)})
		}
		env.Put(b, bucket, objs)
	}
	client := s3.New(s3.Options{
		Region: testbed.Region, BaseEndpoint: aws.String(slow), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(testbed.AccessKey, testbed.SecretKey, ""),
		// A connection for each lister, as the planner's pool has.
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.MaxIdleConnsPerHost = 64 }),
	})
	for b.Loop() {
		var times []time.Duration
		for _, listers := range []int{1, 64} {
			l := listing.New(client, bucket, "", listing.Options{Listers: listers}, zerolog.Nop())
			out := make(chan []listing.Object, 16)
			errc := make(chan error, 1)
			start := time.Now()
			go func() { errc <- l.Run(context.Background(), out) }()
			got := 0
			for page := range out {
				got += len(page)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			took := time.Since(start)
			if got != n {
				b.Fatalf("%d listers listed %d of %d keys", listers, got, n)
			}
			times = append(times, took)
			b.ReportMetric(took.Seconds(), fmt.Sprintf("s-%d-listers", listers))
			b.Logf("%d keys, %d ms latency, %2d listers: %.2fs, %d requests over %d shards, %d splits",
				n, ms, listers, took.Seconds(), l.Stats.Requests.Load(), l.Stats.Shards.Load(), l.Stats.Splits.Load())
		}
		b.ReportMetric(times[0].Seconds()/times[1].Seconds(), "speedup")
		b.Logf("parallel listing is %.1f× faster than one sequential lister", times[0].Seconds()/times[1].Seconds())
	}
}
