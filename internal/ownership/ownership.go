// Package ownership says, on every S3 request, which account must own each
// bucket it names and who pays for it, from one book of buckets: S3's
// ExpectedBucketOwner and ExpectedSourceBucketOwner (a bucket name that
// another account has since registered is refused with 403, not written to
// or read from), and RequestPayer (a Requester Pays bucket refuses any other
// account's request that does not say it pays). The planner fills the book
// from its flags; a worker from the locations each message names.
package ownership

import (
	"context"
	"net/url"
	"reflect"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// Book is what is known of each bucket's owner and payer. The zero value
// is empty; a nil *Book sets nothing. Safe for concurrent use.
type Book struct {
	mu      sync.RWMutex
	buckets map[string]Bucket
}

// Bucket is one bucket's entry: the account that must own it ("" for no
// check) and whether the requester pays for requests to it.
type Bucket struct {
	Owner         string
	RequesterPays bool
}

// Set records bucket's entry; an empty entry removes it.
func (b *Book) Set(bucket string, e Bucket) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buckets == nil {
		b.buckets = map[string]Bucket{}
	}
	if e == (Bucket{}) {
		delete(b.buckets, bucket)
		return
	}
	b.buckets[bucket] = e
}

// SetPair records the entries of a copy's source and destination. One
// bucket that is both (a copy between prefixes) takes both: the owner
// either names, and its requester pays if either says so.
func (b *Book) SetPair(srcBucket string, src Bucket, dstBucket string, dst Bucket) {
	if srcBucket != dstBucket {
		b.Set(srcBucket, src)
		b.Set(dstBucket, dst)
		return
	}
	both := Bucket{Owner: src.Owner, RequesterPays: src.RequesterPays || dst.RequesterPays}
	if both.Owner == "" {
		both.Owner = dst.Owner
	}
	b.Set(srcBucket, both)
}

// Of is bucket's entry.
func (b *Book) Of(bucket string) Bucket {
	if b == nil {
		return Bucket{}
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.buckets[bucket]
}

// Copy is what a copy of an object of src into dst says: the owner each
// bucket must have, and whether it pays (for either).
func (b *Book) Copy(dst, src string) (owner, srcOwner string, pays bool) {
	d, s := b.Of(dst), b.Of(src)
	return d.Owner, s.Owner, d.RequesterPays || s.RequesterPays
}

// SourceBucket is the bucket an x-amz-copy-source names ("bucket/key" or
// "/bucket/key", URL-encoded, perhaps with ?versionId).
func SourceBucket(copySource string) string {
	s := strings.TrimPrefix(copySource, "/")
	bucket, _, _ := strings.Cut(s, "/")
	if u, err := url.PathUnescape(bucket); err == nil {
		return u
	}
	return bucket
}

// APIOption sets, on every request of an S3 client it is given to, the
// fields the book says of the buckets the request names, unless the caller
// set them: ExpectedBucketOwner of Bucket, ExpectedSourceBucketOwner of the
// CopySource's bucket, and RequestPayer when either pays.
func (b *Book) APIOption(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("s3clone/ownership",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			b.fill(in.Parameters)
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

// fill sets the fields of an S3 input (a pointer to its struct), which the
// SDK's inputs name alike.
func (b *Book) fill(params any) {
	v := reflect.ValueOf(params)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return
	}
	v = v.Elem()
	bucket := field[*string](v, "Bucket")
	if bucket == nil || *bucket == nil {
		return
	}
	dst := b.Of(**bucket)
	pays := dst.RequesterPays
	if cs := field[*string](v, "CopySource"); cs != nil && *cs != nil {
		src := b.Of(SourceBucket(**cs))
		pays = pays || src.RequesterPays
		setString(v, "ExpectedSourceBucketOwner", src.Owner)
	}
	setString(v, "ExpectedBucketOwner", dst.Owner)
	if payer := field[types.RequestPayer](v, "RequestPayer"); pays && payer != nil && *payer == "" {
		*payer = types.RequestPayerRequester
	}
}

// field is the address of v's field name, if it has one of type T.
func field[T any](v reflect.Value, name string) *T {
	f := v.FieldByName(name)
	if !f.IsValid() || f.Type() != reflect.TypeFor[T]() || !f.CanAddr() {
		return nil
	}
	return f.Addr().Interface().(*T)
}

// setString sets a *string field to value unless value is "" or the field
// is already set.
func setString(v reflect.Value, name, value string) {
	if p := field[*string](v, name); p != nil && *p == nil && value != "" {
		*p = aws.String(value)
	}
}
