package plan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/listing"
)

// slowBucket serves a flat bucket one page per call, each page taking
// delay: a listing that takes a while, as a big bucket's does.
type slowBucket struct {
	pages int
	delay time.Duration
	done  atomic.Bool // the last page was served
}

func (b *slowBucket) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	time.Sleep(b.delay)
	page := 0
	if tok := aws.ToString(in.ContinuationToken); tok != "" {
		fmt.Sscan(tok, &page)
	}
	out := &s3.ListObjectsV2Output{}
	for i := range 100 {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(fmt.Sprintf("k-%04d-%03d", page, i)), Size: aws.Int64(1)})
	}
	if page+1 < b.pages {
		out.IsTruncated = aws.Bool(true)
		out.NextContinuationToken = aws.String(fmt.Sprint(page + 1))
	} else {
		b.done.Store(true)
	}
	return out, nil
}

func TestEnqueueStreamsWhileListing(t *testing.T) {
	t.Parallel()
	bucket := &slowBucket{pages: 20, delay: 50 * time.Millisecond}
	l := listing.New(bucket, "b", "", listing.Options{Listers: 1}, zerolog.Nop())
	sum := &Summary{Run: "r", Source: Location{Bucket: "b"}, Dest: Location{Bucket: "c"}}
	var mu sync.Mutex
	var sentBeforeDone, total int
	err := Enqueue(context.Background(), ListSource(l), sum, Options{MaxKeys: 100}, func(_ context.Context, bodies [][]byte) error {
		mu.Lock()
		defer mu.Unlock()
		if !bucket.done.Load() {
			sentBeforeDone += len(bodies)
		}
		total += len(bodies)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if total != 20 || sum.Objects.Load() != 2000 || sum.Messages.Load() != 20 {
		t.Fatalf("sent %d messages; summary %d objects in %d messages", total, sum.Objects.Load(), sum.Messages.Load())
	}
	if sentBeforeDone < 10 {
		t.Fatalf("only %d of 20 messages were sent before the listing ended: the plan is not streaming", sentBeforeDone)
	}
}

func TestEnqueueStopsOnSendError(t *testing.T) {
	t.Parallel()
	bucket := &slowBucket{pages: 50, delay: time.Millisecond}
	l := listing.New(bucket, "b", "", listing.Options{Listers: 1}, zerolog.Nop())
	sum := &Summary{Run: "r", Source: Location{Bucket: "b"}, Dest: Location{Bucket: "c"}}
	boom := fmt.Errorf("queue unreachable")
	err := Enqueue(context.Background(), ListSource(l), sum, Options{}, func(context.Context, [][]byte) error { return boom }, nil)
	if err != boom {
		t.Fatalf("Enqueue = %v, want the send error", err)
	}
	if bucket.done.Load() {
		t.Fatal("the listing ran to the end after sending had failed")
	}
}

// TestEnqueueReturnsTheCtxCause: a plan stopped from outside returns why
// it was stopped, not a stage's report that it was.
func TestEnqueueReturnsTheCtxCause(t *testing.T) {
	t.Parallel()
	errStop := errors.New("stopped")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	src := func(ctx context.Context, copies, deletes chan<- []listing.Object) error {
		defer close(copies)
		defer close(deletes)
		cancel(errStop)
		<-ctx.Done()
		return ctx.Err()
	}
	sum := &Summary{Run: "r", Source: Location{Bucket: "b"}, Dest: Location{Bucket: "c"}}
	err := Enqueue(ctx, src, sum, Options{}, func(context.Context, [][]byte) error { return nil }, nil)
	if !errors.Is(err, errStop) {
		t.Fatalf("Enqueue = %v, want the cause of the stop", err)
	}
}
