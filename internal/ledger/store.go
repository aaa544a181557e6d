package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3clone/s3clone/internal/s3wire"
)

// API is the part of the S3 client the ledger uses.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ API = (*s3.Client)(nil)

// Store is a ledger at s3://Bucket/Prefix. Safe for concurrent use.
type Store struct {
	api    API
	bucket string
	prefix string // "" or ending in "/"
	// Requests counts the requests made, for benchmarks and tests.
	Requests atomic.Int64
}

// New returns the ledger at bucket/prefix; a prefix that does not end in
// "/" gets one, so the ledger is a folder.
func New(api API, bucket, prefix string) *Store {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{api: api, bucket: bucket, prefix: prefix}
}

// Bucket is the ledger's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Prefix is the ledger's prefix: "" or ending in "/".
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

// Keys of the layout (see the package comment).
func (s *Store) runsPrefix() string              { return s.prefix + "runs/" }
func (s *Store) runPrefix(run string) string     { return s.runsPrefix() + run + "/" }
func (s *Store) runKey(run string) string        { return s.runPrefix(run) + "run.json" }
func (s *Store) sentPrefix(run string) string    { return s.runPrefix(run) + "sent/" }
func (s *Store) donePrefix(run string) string    { return s.runPrefix(run) + "done/" }
func (s *Store) workerKey(journal string) string { return s.prefix + "workers/" + journal + ".json" }

// Errors the ledger's operations wrap, for callers to say what to do.
var (
	// ErrNoBucket: the ledger's bucket does not exist.
	ErrNoBucket = errors.New("the ledger's bucket does not exist")
	// ErrDenied: S3 refused these credentials the access asked for.
	ErrDenied = errors.New("access denied")
	// ErrNotFound: no such run, or no such record.
	ErrNotFound = errors.New("not in the ledger")
	// ErrNewerLayout: a record written by a newer s3clone.
	ErrNewerLayout = errors.New("written by a newer s3clone")
)

// AccessError is a ledger call S3 refused these credentials: the
// operation and the key (for a listing, the prefix listed), from which
// config.LedgerError names the grant that is missing, drawn from
// deploy.Calls (the one list of calls and permissions the stack's roles are
// built from). It wraps ErrDenied.
type AccessError struct {
	Op     string // the S3 operation refused, e.g. "PutObject"
	Bucket string // the ledger's bucket
	Prefix string // the ledger's prefix
	Key    string // the key under the prefix (for a listing, the prefix listed)
	Err    error  // S3's answer
}

func (e *AccessError) Error() string { return fmt.Sprintf("%v: %v", ErrDenied, e.Err) }

func (e *AccessError) Unwrap() []error { return []error{ErrDenied, e.Err} }

// classify wraps err with the ledger error it means, if any: a refusal of
// op on key (for a listing, the prefix listed) becomes an *AccessError.
func (s *Store) classify(err error, op, key string) error {
	var api smithy.APIError
	var re *smithyhttp.ResponseError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket":
		return fmt.Errorf("%w: %w", ErrNoBucket, err)
	case errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound"):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &api) && (api.ErrorCode() == "AccessDenied" || api.ErrorCode() == "AllAccessDisabled"),
		errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden:
		return s.denied(err, op, key)
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// denied is the AccessError for op on key (the full key, under the prefix).
func (s *Store) denied(err error, op, key string) *AccessError {
	return &AccessError{Op: op, Bucket: s.bucket, Prefix: s.prefix, Key: strings.TrimPrefix(key, s.prefix), Err: err}
}

// CheckBucket fails with an error wrapping ErrNoBucket or ErrDenied when
// the ledger's bucket is missing or refuses to list the ledger to these
// credentials. It lists under the prefix (HeadBucket would need the right
// to list the whole bucket, which a shared bucket's owner may not grant).
func (s *Store) CheckBucket(ctx context.Context) error {
	s.Requests.Add(1)
	_, err := s.api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix), MaxKeys: aws.Int32(1)},
		func(o *s3.Options) { o.RetryMaxAttempts = 3 })
	if err != nil {
		return fmt.Errorf("list s3://%s/%s: %w", s.bucket, s.prefix, s.classify(err, "ListObjectsV2", s.prefix))
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	s.Requests.Add(1)
	_, err = s.api.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"),
	})
	if err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", s.bucket, key, s.classify(err, "PutObject", key))
	}
	return nil
}

// putOver writes v at key over the version whose ETag is etag ("": where
// there is none), and returns the new ETag; an error wrapping moved when
// the object is no longer that one (S3's conditional writes: If-Match,
// If-None-Match; 412, or 409 for a write racing another, or 404 for an
// If-Match on an object deleted since).
func (s *Store) putOver(ctx context.Context, key string, v any, etag string, moved error) (string, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentType: aws.String("application/json")}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	} else {
		in.IfNoneMatch = aws.String("*")
	}
	s.Requests.Add(1)
	out, err := s.api.PutObject(ctx, in)
	var re *smithyhttp.ResponseError
	switch {
	case errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict || re.HTTPStatusCode() == http.StatusNotFound):
		return "", fmt.Errorf("write s3://%s/%s: %w", s.bucket, key, moved)
	case err != nil:
		return "", fmt.Errorf("write s3://%s/%s: %w", s.bucket, key, s.classify(err, "PutObject", key))
	}
	return aws.ToString(out.ETag), nil
}

// get reads the JSON object at key into v, checking its layout version.
func (s *Store) get(ctx context.Context, key string, v interface{ layout() int }) error {
	s.Requests.Add(1)
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", s.bucket, key, s.classify(err, "GetObject", key))
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", s.bucket, key, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("s3://%s/%s is not a ledger record: %w", s.bucket, key, err)
	}
	if l := v.layout(); l > Layout {
		return fmt.Errorf("s3://%s/%s: layout %d, this build reads %d: %w", s.bucket, key, l, Layout, ErrNewerLayout)
	}
	return nil
}

func (r *Run) layout() int    { return r.Layout }
func (r *Sent) layout() int   { return r.Layout }
func (r *Entry) layout() int  { return r.Layout }
func (r *worker) layout() int { return r.Layout }

// list calls fn for every page of a listing; after is the StartAfter key,
// delimiter "" for a flat listing. fn returning false stops it.
func (s *Store) list(ctx context.Context, prefix, after, delimiter string, fn func(*s3.ListObjectsV2Output) bool) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)}
	if after != "" {
		in.StartAfter = aws.String(after)
	}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	p := s3.NewListObjectsV2Paginator(s.api, in)
	for p.HasMorePages() {
		s.Requests.Add(1)
		// A large run's status is mostly reading entry names: the lean
		// page reader does it in a fifth of the SDK's time.
		page, err := p.NextPage(ctx, s3wire.FastDecode)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", s.bucket, prefix, s.classify(err, "ListObjectsV2", prefix))
		}
		if !fn(page) {
			return nil
		}
	}
	return nil
}

// folders lists the immediate sub-folders of prefix, as their full prefixes.
func (s *Store) folders(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := s.list(ctx, prefix, "", "/", func(page *s3.ListObjectsV2Output) bool {
		for _, p := range page.CommonPrefixes {
			out = append(out, aws.ToString(p.Prefix))
		}
		return true
	})
	return out, err
}
