package testbed

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

// ImageStoreKey is key i of a bucket shaped like the seed's image store:
// dated paths of photos and their thumbnails, with one key in fifty flat
// at the top (exports, manifests).
func ImageStoreKey(i int) string {
	if i%50 == 0 {
		return fmt.Sprintf("export-%07d.csv", i)
	}
	day := i / 2000 // about 2,000 uploads a day
	y, m, d := 2020+day/360, 1+day/30%12, 1+day%30
	if i%4 == 0 {
		return fmt.Sprintf("thumbs/%d/%02d/%02d/%07d_256.webp", y, m, d, i)
	}
	return fmt.Sprintf("photos/%d/%02d/%02d/IMG_%07d.jpg", y, m, d, i)
}

// ImageStoreSize is object i's size: small (so a disk holds a million twice),
// from 64 bytes to 2 KiB, varied.
func ImageStoreSize(i int) int { return 64 + (i*7919)%1985 }

// Seed puts n objects into bucket straight to the server (no proxy), key(i)
// and size(i) bytes each, with many uploads in flight; it returns how long
// it took. Bodies are made as they are sent, so memory stays small at any n.
func (e *Env) Seed(t testing.TB, bucket string, n, from int, key func(int) string, size func(int) int) time.Duration {
	t.Helper()
	const inFlight = 128
	client := s3.New(e.S3.Options(), func(o *s3.Options) {
		o.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = inFlight
		})
	})
	started := time.Now()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(inFlight)
	var done atomic.Int64
	filler := bytes.Repeat([]byte("s3clone seed "), 200)
	for i := from; i < from+n; i++ {
		g.Go(func() error {
			body := make([]byte, size(i))
			copy(body, fmt.Sprintf("%d:", i)) // no two alike
			copy(body[min(len(body), 12):], filler)
			_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key(i)), Body: bytes.NewReader(body)})
			if err != nil {
				return fmt.Errorf("seed %q: %w", key(i), err)
			}
			if d := done.Add(1); d%100000 == 0 {
				t.Logf("seeded %d of %d objects (%.0f/s)", d, n, float64(d)/time.Since(started).Seconds())
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return time.Since(started)
}
