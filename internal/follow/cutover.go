package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/internal/ledger"
)

// MarkerAPI is what a cutover asks of the source bucket to mark the freeze.
type MarkerAPI interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// MarkKey is the marker object of mark id.
func MarkKey(id string) string { return MarksPrefix + id }

// PlaceMark writes the marker object of mark id in the source bucket: its
// event goes the way of every other change, so that once follow has seen it
// (and waited for events S3 sent out of order), every change before the
// freeze has come through. The marker is empty; follow never copies it.
func PlaceMark(ctx context.Context, api MarkerAPI, bucket, id string) error {
	_, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(MarkKey(id)), Body: bytes.NewReader(nil),
		Metadata: map[string]string{"s3clone": "cutover mark: delete it if a cutover left it behind"}})
	if err != nil {
		return fmt.Errorf("write the cutover's mark s3://%s/%s: %w", bucket, MarkKey(id), err)
	}
	return nil
}

// RemoveMark deletes the marker object once follow has seen it, so that no
// listing of the source (a verify, a later plan) meets it.
func RemoveMark(ctx context.Context, api MarkerAPI, bucket, id string) error {
	if _, err := api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(MarkKey(id))}); err != nil {
		return fmt.Errorf("delete the cutover's mark s3://%s/%s: %w", bucket, MarkKey(id), err)
	}
	return nil
}

// MarkBoard is where follow's marks are read.
type MarkBoard interface {
	Mark(ctx context.Context, run, id string) (*ledger.Mark, error)
}

// AwaitMark waits, reading every poll, until follow has closed mark id of
// its run, or ctx ends.
func AwaitMark(ctx context.Context, board MarkBoard, run, id string, poll time.Duration) (*ledger.Mark, error) {
	for {
		m, err := board.Mark(ctx, run, id)
		switch {
		case err == nil:
			return m, nil
		case !errors.Is(err, ledger.ErrNotFound):
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Missing returns the work messages numbered from to seq that have no
// entry yet, at most n of them, and the number up to which every message
// has one (from-1 when the first is missing): the next call starts there.
func Missing(t *ledger.Tally, from, seq int64, n int) ([]int64, int64) {
	var out []int64
	through := from - 1
	for s := from; s <= seq && len(out) < n; s++ {
		switch {
		case !t.Has(s):
			out = append(out, s)
		case len(out) == 0:
			through = s
		}
	}
	return out, through
}
