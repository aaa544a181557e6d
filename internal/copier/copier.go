// Package copier copies one S3 object to another server-side: CopyObject up
// to a size threshold, UploadPartCopy with parts in parallel above it. No
// object byte passes through the process. Metadata, content headers, tags
// and the storage class are carried over; both paths copy only the exact
// version that was listed (by ETag), and a Source with a VersionID is read
// as that version everywhere (the copy, its parts, its metadata, tags and
// annotations), never as whatever is current.
package copier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"
)

// API is the part of the S3 client the copier uses.
type API interface {
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, optFns ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, optFns ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	PutObjectAnnotation(ctx context.Context, in *s3.PutObjectAnnotationInput, optFns ...func(*s3.Options)) (*s3.PutObjectAnnotationOutput, error)
	ListObjectAnnotations(ctx context.Context, in *s3.ListObjectAnnotationsInput, optFns ...func(*s3.Options)) (*s3.ListObjectAnnotationsOutput, error)
	GetObjectAnnotation(ctx context.Context, in *s3.GetObjectAnnotationInput, optFns ...func(*s3.Options)) (*s3.GetObjectAnnotationOutput, error)
}

var _ API = (*s3.Client)(nil)

// S3's limits on copies.
const (
	MaxCopyObjectSize = 5 << 30  // CopyObject copies at most 5 GiB
	MinPartSize       = 5 << 20  // every part but the last
	MaxPartSize       = 5 << 30  // any part
	MaxParts          = 10000    // parts in one upload
	DefaultPartSize   = 64 << 20 // a good size for server-side copies
)

// Options say how objects are copied. The zero value copies like S3 would
// with the defaults below.
type Options struct {
	// MultipartThreshold: objects larger than this are copied in parts.
	// Default and maximum MaxCopyObjectSize.
	MultipartThreshold int64
	// PartSize of a multipart copy; raised as needed to stay within
	// MaxParts. Default DefaultPartSize.
	PartSize int64
	// PartConcurrency is how many parts of one object are copied at once.
	// Default 8.
	PartConcurrency int
}

func (o Options) withDefaults() Options {
	if o.MultipartThreshold <= 0 || o.MultipartThreshold > MaxCopyObjectSize {
		o.MultipartThreshold = MaxCopyObjectSize
	}
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartConcurrency <= 0 {
		o.PartConcurrency = 8
	}
	return o
}

// Source is the object to copy, as it was listed.
type Source struct {
	Bucket       string
	Region       string // the bucket's region; "" for the copier's own
	Key          string
	Size         int64
	ETag         string // "" copies whatever version is current
	StorageClass string
	VersionID    string    // "": the current version; else this version exactly
	Modified     time.Time // when it was written, as read (Current); zero when unknown
}

// Target is where a copy goes: a key in a bucket, or a bucket (to delete
// from), with the bucket's region ("" for the copier's own), and how the
// copy is written there.
type Target struct {
	Bucket, Region, Key string
	Write               Write
}

// SourceAPI is what a copy asks of the source's region: a copy in parts
// reads the source's metadata and tags there. (CopyObject and
// UploadPartCopy go to the destination's region, which reads the source
// wherever it is.)
type SourceAPI interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, optFns ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
	ListObjectAnnotations(ctx context.Context, in *s3.ListObjectAnnotationsInput, optFns ...func(*s3.Options)) (*s3.ListObjectAnnotationsOutput, error)
	GetObjectAnnotation(ctx context.Context, in *s3.GetObjectAnnotationInput, optFns ...func(*s3.Options)) (*s3.GetObjectAnnotationOutput, error)
}

// Copier copies objects within one pair of regions (or one region).
// Safe for concurrent use.
type Copier struct {
	api  API       // the destination's region
	src  SourceAPI // the source's region
	opts Options
}

// New returns a Copier whose source and destination are in the region of
// api's client.
func New(api API, opts Options) *Copier {
	return &Copier{api: api, src: api, opts: opts.withDefaults()}
}

// NewBetween returns a Copier that reads the source through src (a client
// of its region) and writes through dst (one of the destination's).
func NewBetween(src SourceAPI, dst API, opts Options) *Copier {
	return &Copier{api: dst, src: src, opts: opts.withDefaults()}
}

// Copy copies src to dst; the regions in them are the caller's to match to
// the copier's clients. Errors are *Error, classified.
func (c *Copier) Copy(ctx context.Context, src Source, dst Target) error {
	var err error
	if src.Size > c.opts.MultipartThreshold {
		err = c.copyMultipart(ctx, src, dst)
	} else {
		err = c.copySingle(ctx, src, dst)
	}
	if err != nil {
		ce := Classify(fmt.Errorf("copy %s to s3://%s/%s: %w", src.Key, dst.Bucket, dst.Key, err))
		// A copy of an SSE-C object fails with 400 InvalidRequest, or, in
		// parts, at its first HeadObject with a bodiless 400.
		if (ce.Code == "InvalidRequest" || ce.Code == "BadRequest") && !WrongRegion(err) && c.customerKeyed(ctx, src) {
			ce.Reason = ReasonNeedsKey
		}
		return ce
	}
	return nil
}

// customerKeyed reports a source that S3 will not even describe without
// its encryption key: an SSE-C object answers HeadObject with 400, where
// any other answers 200, 403 or 404. (A copy of one fails with a 400
// InvalidRequest, as many malformed copies do.)
func (c *Copier) customerKeyed(ctx context.Context, src Source) bool {
	_, err := c.src.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.Key), VersionId: optional(src.VersionID)})
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusBadRequest && !WrongRegion(err)
}

func (c *Copier) copySingle(ctx context.Context, src Source, dst Target) error {
	w := dst.Write
	in := &s3.CopyObjectInput{
		Bucket:            aws.String(dst.Bucket),
		Key:               aws.String(dst.Key),
		CopySource:        aws.String(src.CopySource()),
		MetadataDirective: types.MetadataDirectiveCopy,
		TaggingDirective:  types.TaggingDirectiveCopy,
		StorageClass:      storageClass(src, w),
		ACL:               w.ACL,
	}
	if src.ETag != "" {
		in.CopySourceIfMatch = aws.String(src.ETag)
	}
	if w.SSEKMSKeyID != "" {
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(w.SSEKMSKeyID)
	}
	if w.inspects() {
		// What S3 does not copy is read first, of the listed version.
		head, err := c.src.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.Key), VersionId: optional(src.VersionID), IfMatch: optional(src.ETag)})
		if err != nil {
			return fmt.Errorf("head source: %w", err)
		}
		carrySingle(in, head, w, time.Now())
	}
	_, err := c.api.CopyObject(ctx, in)
	return err
}

// storageClass is the class to ask for: w's, else the source's. S3 would
// otherwise write every copy as STANDARD.
func storageClass(src Source, w Write) types.StorageClass {
	if w.StorageClass != "" {
		return w.StorageClass
	}
	if src.StorageClass == "" || src.StorageClass == string(types.StorageClassStandard) {
		return ""
	}
	return types.StorageClass(src.StorageClass)
}

func (c *Copier) copyMultipart(ctx context.Context, src Source, dst Target) error {
	w := dst.Write
	head, err := headWithChecksum(ctx, c.src, &s3.HeadObjectInput{
		Bucket: aws.String(src.Bucket), Key: aws.String(src.Key), VersionId: optional(src.VersionID), IfMatch: optional(src.ETag),
	})
	if err != nil {
		return fmt.Errorf("head source: %w", err)
	}
	sum := checksumOf(head).multipart()
	tagging, err := c.tagging(ctx, src, head)
	if err != nil {
		return err
	}
	create := &s3.CreateMultipartUploadInput{
		Bucket:             aws.String(dst.Bucket),
		Key:                aws.String(dst.Key),
		Metadata:           head.Metadata,
		ContentType:        head.ContentType,
		CacheControl:       head.CacheControl,
		ContentDisposition: head.ContentDisposition,
		ContentEncoding:    head.ContentEncoding,
		ContentLanguage:    head.ContentLanguage,
		//lint:ignore SA1019 the only typed form of the header CreateMultipartUpload takes
		Expires:                 head.Expires,
		WebsiteRedirectLocation: head.WebsiteRedirectLocation,
		Tagging:                 tagging,
		StorageClass:            storageClass(src, w),
		ACL:                     w.ACL,
	}
	if w.SSEKMSKeyID != "" {
		create.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		create.SSEKMSKeyId = aws.String(w.SSEKMSKeyID)
	}
	carryMultipart(create, head, w, time.Now())
	create.ChecksumAlgorithm, create.ChecksumType = sum.algorithm, sum.typ
	var optFns []func(*s3.Options)
	if raw := aws.ToString(head.ExpiresString); raw != "" {
		// Expires as S3 keeps it, date or not ("0", "-1"): the typed field
		// takes only an RFC 1123 date and would drop anything else.
		create.Expires = nil
		optFns = append(optFns, s3.WithAPIOptions(smithyhttp.SetHeaderValue("Expires", raw)))
	}
	up, err := c.api.CreateMultipartUpload(ctx, create, optFns...)
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	size := aws.ToInt64(head.ContentLength)
	parts, err := c.copyParts(ctx, src, up, size, sum.algorithm)
	if err == nil {
		complete := &s3.CompleteMultipartUploadInput{
			Bucket: up.Bucket, Key: up.Key, UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			ChecksumType:    sum.typ,
		}
		if f := checksumField(complete, sum.algorithm); f != nil && sum.value != nil {
			// The source's full-object checksum: S3 checks the copy against it.
			*f = sum.value
		}
		var done *s3.CompleteMultipartUploadOutput
		done, err = c.api.CompleteMultipartUpload(ctx, complete)
		if err != nil {
			return errors.Join(fmt.Errorf("complete multipart upload: %w", err), c.abort(ctx, up))
		}
		// Annotations, which a multipart upload never has: on the copy now
		// in place, pinned to it. (Until they are, it is without them; a
		// failure here fails the copy, which is then made again.)
		return c.copyAnnotations(ctx, src, dst, aws.ToString(done.ETag))
	}
	return errors.Join(err, c.abort(ctx, up))
}

// abort cancels an upload, even when ctx is already canceled, so that no
// incomplete upload is left behind to be billed.
func (c *Copier) abort(ctx context.Context, up *s3.CreateMultipartUploadOutput) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := c.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: up.Bucket, Key: up.Key, UploadId: up.UploadId})
	if err != nil {
		return fmt.Errorf("abort multipart upload %s: %w", aws.ToString(up.UploadId), err)
	}
	return nil
}

// tagging returns the source's tags as the URL-encoded query string that
// CreateMultipartUpload takes, or nil when it has none.
func (c *Copier) tagging(ctx context.Context, src Source, head *s3.HeadObjectOutput) (*string, error) {
	if head.TagCount != nil && *head.TagCount == 0 {
		return nil, nil
	}
	out, err := c.src.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.Key), VersionId: optional(src.VersionID)})
	if err != nil {
		return nil, fmt.Errorf("get source tags: %w", err)
	}
	if len(out.TagSet) == 0 {
		return nil, nil
	}
	v := url.Values{}
	for _, t := range out.TagSet {
		v.Add(aws.ToString(t.Key), aws.ToString(t.Value))
	}
	return aws.String(v.Encode()), nil
}

// PartSize returns the part size for an object of size bytes: the wanted
// size, raised so that the object fits in MaxParts parts.
func PartSize(size, want int64) int64 {
	need := (size + MaxParts - 1) / MaxParts
	return min(max(want, need, MinPartSize), MaxPartSize)
}

func (c *Copier) copyParts(ctx context.Context, src Source, up *s3.CreateMultipartUploadOutput, size int64, alg types.ChecksumAlgorithm) ([]types.CompletedPart, error) {
	partSize := PartSize(size, c.opts.PartSize)
	n := int((size + partSize - 1) / partSize)
	if n == 0 {
		n = 1 // an empty object still needs one (empty) part
	}
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.PartConcurrency)
	for i := range n {
		if gctx.Err() != nil {
			break // a part failed or ctx ended: the copy is over
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // the copy ended while this part waited for a slot
			}
			first := int64(i) * partSize
			last := min(first+partSize, size) - 1
			out, err := c.api.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket: up.Bucket, Key: up.Key, UploadId: up.UploadId,
				PartNumber:        aws.Int32(int32(i + 1)),
				CopySource:        aws.String(src.CopySource()),
				CopySourceRange:   copyRange(first, last),
				CopySourceIfMatch: optional(src.ETag),
			})
			if err != nil {
				return fmt.Errorf("copy part %d: %w", i+1, err)
			}
			parts[i] = types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(int32(i + 1))}
			// Each part's checksum, which an upload with one needs.
			if to, from := checksumField(&parts[i], alg), checksumField(out.CopyPartResult, alg); to != nil && from != nil {
				*to = *from
			}
			return nil
		})
	}
	if g.Wait() != nil {
		// gctx's cause rather than Wait's error: if ctx ended first, the
		// errors of the parts only echo that, and ctx's cause says why.
		return nil, context.Cause(gctx)
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err // ctx ended with no part failing: some may never have been handed out
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	return parts, nil
}

func copyRange(first, last int64) *string {
	if last < first {
		return nil // empty object: no range
	}
	return aws.String(fmt.Sprintf("bytes=%d-%d", first, last))
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// CopySource is src as the x-amz-copy-source header of CopyObject and
// UploadPartCopy names it: bucket/key, URL-encoded, and for a version
// "?versionId=" and the version id, query-escaped ("null", the version of
// an object written before versioning was enabled, is one like any other).
// CopyObject's API reference: "append ?versionId= to the value (for
// example, awsexamplebucket/reports/january.pdf?versionId=QUpfdndhfd8438MNFDN93jdnJFkdmqnh893)".
// The key's own "?" is escaped, so the query cannot be mistaken for part
// of it.
func (s Source) CopySource() string {
	cs := EscapeCopySource(s.Bucket, s.Key)
	if s.VersionID != "" {
		cs += "?versionId=" + url.QueryEscape(s.VersionID)
	}
	return cs
}

// EscapeCopySource renders bucket/key as the CopySource header wants it:
// URL-encoded, "/" kept between path segments. The Go SDK sends it as given.
func EscapeCopySource(bucket, key string) string {
	// The SDK's escaper for S3 paths: everything but unreserved characters
	// and "/" is percent-encoded, as S3 expects in x-amz-copy-source.
	return bucket + "/" + httpbinding.EscapePath(key, false)
}

// KeyError is one key a batch operation could not do.
type KeyError struct {
	Key string
	Err *Error
}

// Doomed is an object to delete, as the listing that found it saw it.
type Doomed struct {
	Key  string
	ETag string // "": delete whatever is there
}

// Delete deletes objects from bucket, each only if its ETag is still the
// listed one (S3's conditional delete): an object rewritten since it was
// listed is left alone and comes back as changed. Keys go by DeleteObjects,
// 1,000 a call, whose request is XML; a key with a character XML 1.0 cannot
// hold (a control character, U+FFFE) would reach S3 as another name (the
// SDK writes U+FFFD for it), so such keys go one by one by DeleteObject.
// A deletion counts only when S3 names that exact key deleted (or, one by
// one, finds no such key): Delete returns every other key, each with its
// classified error, or an error for a call that failed as a whole.
func (c *Copier) Delete(ctx context.Context, dst Target, objs []Doomed) ([]KeyError, error) {
	var batch, single []Doomed
	for _, o := range objs {
		if xmlSafe(o.Key) {
			batch = append(batch, o)
		} else {
			single = append(single, o)
		}
	}
	var failed []KeyError
	for _, o := range single {
		if err := c.deleteOne(ctx, dst.Bucket, o); err != nil {
			failed = append(failed, KeyError{Key: o.Key, Err: err})
		}
	}
	for len(batch) > 0 {
		n := min(len(batch), 1000)
		f, err := c.deleteBatch(ctx, dst.Bucket, batch[:n])
		failed = append(failed, f...)
		if err != nil {
			return failed, err
		}
		batch = batch[n:]
	}
	return failed, nil
}

// deleteBatch deletes up to 1,000 objects with one DeleteObjects call.
func (c *Copier) deleteBatch(ctx context.Context, bucket string, objs []Doomed) ([]KeyError, error) {
	ids := make([]types.ObjectIdentifier, len(objs))
	for i, o := range objs {
		ids[i] = types.ObjectIdentifier{Key: aws.String(o.Key), ETag: optional(o.ETag)}
	}
	// Not Quiet: S3 then names every key it deleted, and a deletion counts
	// only when it names that key.
	out, err := c.api.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(false)},
	})
	if err != nil {
		return nil, Classify(fmt.Errorf("delete %d keys from s3://%s: %w", len(objs), bucket, err))
	}
	deleted := make(map[string]bool, len(out.Deleted))
	for _, d := range out.Deleted {
		deleted[aws.ToString(d.Key)] = true
	}
	refused := make(map[string]bool, len(out.Errors))
	var failed []KeyError
	for _, e := range out.Errors {
		api := &smithy.GenericAPIError{Code: aws.ToString(e.Code), Message: aws.ToString(e.Message)}
		failed = append(failed, KeyError{Key: aws.ToString(e.Key), Err: Classify(api)})
		refused[aws.ToString(e.Key)] = true
	}
	for _, o := range objs {
		if !deleted[o.Key] && !refused[o.Key] {
			failed = append(failed, KeyError{Key: o.Key, Err: &Error{Reason: ReasonRejected,
				Err: fmt.Errorf("delete s3://%s/%s: S3 did not say it deleted this exact key", bucket, o.Key)}})
		}
	}
	return failed, nil
}

// deleteOne deletes one object with DeleteObject, only if its ETag is still
// the listed one. No such key (404, which S3 answers a conditional delete
// of a key that is gone) counts as deleted.
func (c *Copier) deleteOne(ctx context.Context, bucket string, o Doomed) *Error {
	_, err := c.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key), IfMatch: optional(o.ETag)})
	if err == nil {
		return nil
	}
	ce := Classify(fmt.Errorf("delete s3://%s/%s: %w", bucket, o.Key, err))
	if ce.Reason == ReasonVanished {
		return nil
	}
	return ce
}

// xmlSafe reports a key XML 1.0 can carry as it is: every character is one
// XML allows (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
// #x10000-#x10FFFF), and it is valid UTF-8.
func xmlSafe(key string) bool {
	for _, r := range key {
		switch {
		case r == utf8.RuneError:
			return false // invalid UTF-8 reads as U+FFFD too; a real U+FFFD is rare enough to go one by one
		case r == 0x09 || r == 0x0A || r == 0x0D, r >= 0x20 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}
