package plan

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"github.com/s3clone/s3clone/internal/listing"
)

// Problem is how a destination key stands against the source.
type Problem string

const (
	Match     Problem = "match"     // the destination holds the source's object
	Missing   Problem = "missing"   // in the source only
	Different Problem = "different" // in both, not the same object
	Extra     Problem = "extra"     // in the destination only
	// Failed is a key a run could not copy (the record names its source
	// object) or delete (its destination object): it is enqueued again.
	Failed Problem = "failed"
	// Unknown is a pair that could not be inspected (HeadObject refused:
	// an SSE-C object, a KMS key or a permission missing): reported, and a
	// diff or verify that met one ends with exit 1. Enqueued as a copy.
	Unknown Problem = "unknown"
	// Vanished is a pair whose object was deleted while the diff looked at
	// it: nothing to do, the next diff sees the bucket as it is then.
	Vanished Problem = "vanished"
)

// HeadAPI reads object checksums.
type HeadAPI interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

var _ HeadAPI = (*s3.Client)(nil)

// Comparer decides whether a destination object is the source's. The rule,
// cheapest evidence first:
//
//  1. a key on one side only is missing (source only) or extra (destination only);
//  2. different sizes: different;
//  3. equal ETags: a match;
//  4. both ETags shaped like an MD5 (32 hex digits, no "-N" part count):
//     the objects' HeadObject says whether they are: unless either side is
//     encrypted with SSE-KMS or SSE-C, whose ETags are not MD5s of the
//     content, the ETags differ, so the objects are different;
//  5. otherwise (a multipart or an encrypted object on either side) the
//     checksums from HeadObject, when both sides carry one of the same
//     algorithm: equal is a match; unequal full-object checksums are
//     different (unequal composite ones prove nothing and fall through);
//  6. otherwise: different if the source was modified after the
//     destination was written, else a match.
//
// With Redirects (a source with a website configuration), a pair found to
// match is also looked at with HeadObject: a website redirect
// (x-amz-website-redirect-location) that differs, or that the copy lacks,
// makes it different, since S3 does not copy one by itself.
//
// So a copy encrypted with SSE-KMS (by --sse-kms-key-id, or by the
// destination bucket's default) matches its source, and a diff right after
// a clone enqueues nothing. A pair whose HeadObject fails is Unknown (or
// Vanished, for a 404): reported, not a reason to stop.
type Comparer struct {
	// Src and Dst read checksums for rule 4; nil skips it.
	Src, Dst             HeadAPI
	SrcBucket, DstBucket string
	// Redirects compares website redirects too (two HeadObjects a pair).
	Redirects bool
	// AsOf, set when the source is compared as it was at a time, finds a
	// source key's version then: Recheck reads that version (HeadObject
	// with its id), not the object now, so a key changed since the time is
	// not taken for one that differs. Nil: the source as it is.
	AsOf VersionFinder
}

// VersionFinder finds what a key held at a time (listing.AsOf): the
// object with its version id, or false when it held nothing.
type VersionFinder interface {
	VersionAt(ctx context.Context, bucket, key string) (listing.Object, bool, error)
}

var _ VersionFinder = (*listing.AsOf)(nil)

var md5ETag = regexp.MustCompile(`^"?[0-9a-fA-F]{32}"?$`)

// Compare applies the rule to one pair and says which step decided it. Its
// error is reserved for the end of the diff (a canceled context); a key it
// cannot inspect is Unknown, with the error as its reason.
func (c *Comparer) Compare(ctx context.Context, pr listing.Pair) (Problem, string, error) {
	switch {
	case pr.Dst == nil:
		return Missing, "not in destination", nil
	case pr.Src == nil:
		return Extra, "not in source", nil
	case pr.Src.Size != pr.Dst.Size:
		return Different, "size", nil
	}
	heads := c.Src != nil && c.Dst != nil
	if pr.Src.ETag == pr.Dst.ETag && !(heads && c.Redirects) {
		return Match, "etag", nil
	}
	if !heads {
		if md5ETag.MatchString(pr.Src.ETag) && md5ETag.MatchString(pr.Dst.ETag) {
			return Different, "etag", nil // no way to tell: the cheaper mistake is a needless copy
		}
		return byAge(pr)
	}
	src, dst, problem, reason, err := c.heads(ctx, pr)
	if err != nil || problem != "" {
		return problem, reason, err
	}
	problem, reason = c.byContent(pr, src, dst)
	if problem == Match && c.Redirects && aws.ToString(src.WebsiteRedirectLocation) != aws.ToString(dst.WebsiteRedirectLocation) {
		return Different, "website redirect", nil
	}
	return problem, reason, nil
}

// byContent applies rules 3 to 6 with both objects' HeadObject.
func (c *Comparer) byContent(pr listing.Pair, src, dst *s3.HeadObjectOutput) (Problem, string) {
	switch {
	case pr.Src.ETag == pr.Dst.ETag:
		return Match, "etag"
	case md5ETag.MatchString(pr.Src.ETag) && md5ETag.MatchString(pr.Dst.ETag) && !encrypted(src) && !encrypted(dst):
		return Different, "etag"
	}
	if verdict := compareChecksums(src, dst); verdict != "" {
		return verdict, "checksum"
	}
	p, r, _ := byAge(pr)
	return p, r
}

// byAge is rule 6.
func byAge(pr listing.Pair) (Problem, string, error) {
	if pr.Src.LastModified.After(pr.Dst.LastModified) {
		return Different, "source newer", nil
	}
	return Match, "size and age", nil
}

// Recheck compares one pair as it is now: a HeadObject of srcKey in the
// source bucket (with AsOf, of its version at the time) and of dstKey in
// the destination, then the rule. It returns
// the record that enqueues the fix (key is the pair's key relative to the
// prefixes), a Match (its Reason says why: "in neither bucket" when both
// are gone), or Unknown when a side cannot be read. Its error is reserved
// for a context that ended.
func (c *Comparer) Recheck(ctx context.Context, key, srcKey, dstKey string) (Record, error) {
	var src, dst *listing.Object
	var srcErr, dstErr error
	var wg sync.WaitGroup
	wg.Go(func() { src, srcErr = c.lookupSource(ctx, srcKey) })
	dst, dstErr = lookup(ctx, c.Dst, c.DstBucket, dstKey)
	wg.Wait()
	if err := errors.Join(srcErr, dstErr); err != nil {
		if ctx.Err() != nil {
			return Record{}, ctx.Err()
		}
		return Record{Key: key, Problem: Unknown, Reason: err.Error()}, nil
	}
	if src == nil && dst == nil {
		return Record{Key: key, Problem: Match, Reason: "in neither bucket"}, nil
	}
	pair := listing.Pair{Key: key, Src: src, Dst: dst}
	problem, reason, err := c.Compare(ctx, pair)
	switch {
	case err != nil:
		return Record{}, err
	case problem == Match:
		return Record{Key: key, Problem: Match, Reason: reason}, nil
	case problem == Vanished: // the source went between the two looks
		problem, pair.Src = Extra, nil
	}
	return NewRecord(Finding{Pair: pair, Problem: problem, Reason: reason}), nil
}

// lookupSource is what the source's listing says of key: now, or with
// AsOf, at its time (a version is then read by its id, as Compare reads
// it). nil, nil when there is none.
func (c *Comparer) lookupSource(ctx context.Context, key string) (*listing.Object, error) {
	if c.AsOf == nil {
		return lookup(ctx, c.Src, c.SrcBucket, key)
	}
	obj, ok, err := c.AsOf.VersionAt(ctx, c.SrcBucket, key)
	if err != nil || !ok {
		return nil, err
	}
	return &obj, nil
}

// lookup is what a listing would say of one object now: nil, nil when
// there is none.
func lookup(ctx context.Context, api HeadAPI, bucket, key string) (*listing.Object, error) {
	out, err := head(ctx, api, bucket, key, "")
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &listing.Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		StorageClass: string(out.StorageClass), LastModified: aws.ToTime(out.LastModified)}, nil
}

// heads reads both objects' metadata and checksums, at once. A side that
// cannot be read decides the pair (problem is then not ""): Vanished for a
// source gone since the listing, Missing for a destination gone, else
// Unknown. Its error is ctx's, once ctx ended.
func (c *Comparer) heads(ctx context.Context, pr listing.Pair) (src, dst *s3.HeadObjectOutput, problem Problem, reason string, err error) {
	var srcErr, dstErr error
	var wg sync.WaitGroup
	// The source's listed version: a listing as of a time compares the
	// destination with that version, not with whatever is current.
	wg.Go(func() { src, srcErr = head(ctx, c.Src, c.SrcBucket, pr.Src.Key, pr.Src.VersionID) })
	dst, dstErr = head(ctx, c.Dst, c.DstBucket, pr.Dst.Key, "")
	wg.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, nil, "", "", ctx.Err()
	case notFound(srcErr):
		return nil, nil, Vanished, srcErr.Error(), nil // deleted while the diff looked: nothing to copy
	case notFound(dstErr):
		return nil, nil, Missing, "not in destination (deleted while compared)", nil
	case srcErr != nil:
		return nil, nil, Unknown, srcErr.Error(), nil
	case dstErr != nil:
		return nil, nil, Unknown, dstErr.Error(), nil
	}
	return src, dst, "", "", nil
}

// head reads one object's metadata with its checksum (of version, unless
// ""). Reading the checksum of an SSE-KMS object needs kms:Decrypt on its
// key: refused that (403), it reads the metadata alone, which the rule can
// still go by.
func head(ctx context.Context, api HeadAPI, bucket, key, version string) (*s3.HeadObjectOutput, error) {
	in := &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := api.HeadObject(ctx, in)
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		in.ChecksumMode = ""
		out, err = api.HeadObject(ctx, in)
	}
	if err != nil {
		return nil, fmt.Errorf("head s3://%s/%s: %w", bucket, key, err)
	}
	return out, nil
}

// encrypted reports an object whose ETag is not the MD5 of its content:
// SSE-KMS (and its dual-layer form) or SSE-C.
func encrypted(h *s3.HeadObjectOutput) bool {
	return h.ServerSideEncryption == types.ServerSideEncryptionAwsKms || h.ServerSideEncryption == types.ServerSideEncryptionAwsKmsDsse ||
		aws.ToString(h.SSECustomerAlgorithm) != ""
}

// notFound reports a HeadObject that found no object.
func notFound(err error) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// compareChecksums compares the two objects' checksums: "" when they prove nothing.
func compareChecksums(src, dst *s3.HeadObjectOutput) Problem {
	// Every algorithm S3 reports (one per object).
	for _, pick := range []func(*s3.HeadObjectOutput) *string{
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumCRC64NVME },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumCRC32C },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumCRC32 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumSHA512 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumSHA256 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumSHA1 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumMD5 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumXXHASH128 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumXXHASH64 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumXXHASH3 },
	} {
		a, b := aws.ToString(pick(src)), aws.ToString(pick(dst))
		if a == "" || b == "" {
			continue
		}
		if a == b {
			return Match
		}
		// A composite checksum (of parts: "...-N"; some servers do not say
		// its type) depends on the part sizes: unequal ones prove nothing.
		composite := src.ChecksumType == types.ChecksumTypeComposite || dst.ChecksumType == types.ChecksumTypeComposite ||
			strings.Contains(a, "-") || strings.Contains(b, "-")
		if !composite {
			return Different
		}
		return ""
	}
	return ""
}

// Finding is a pair that does not match, and why.
type Finding struct {
	listing.Pair
	Problem Problem
	Reason  string
}

// DiffCounts counts what a diff found. Safe for concurrent use.
type DiffCounts struct {
	Compared, Matching, Missing, Different, Extra atomic.Int64
	// Unknown pairs could not be inspected; Vanished ones were deleted from
	// the source while the diff looked at them (and are counted Extra as
	// well: the destination still has them).
	Unknown, Vanished atomic.Int64

	mu       sync.Mutex
	unknowns []string // the first few unknown keys, with why
}

// maxUnknowns is how many unknown keys DiffCounts keeps to show.
const maxUnknowns = 20

// Unknowns returns the first keys that could not be inspected, with why.
func (d *DiffCounts) Unknowns() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.unknowns)
}

func (d *DiffCounts) add(p Problem) {
	d.Compared.Add(1)
	switch p {
	case Match:
		d.Matching.Add(1)
	case Missing:
		d.Missing.Add(1)
	case Different:
		d.Different.Add(1)
	case Extra:
		d.Extra.Add(1)
	case Unknown:
		d.Unknown.Add(1)
	case Vanished:
		d.Vanished.Add(1)
	}
}

func (d *DiffCounts) noteUnknown(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.unknowns) < maxUnknowns {
		d.unknowns = append(d.unknowns, s)
	}
}

// Deciders is how many goroutines compare pairs; more than the default
// listers (64) so that HeadObject look-ups (two for each same-size pair
// whose ETags differ: every pair of an SSE-KMS clone) do not hold up the
// listing.
const Deciders = 128

// Diff joins both sides with p, compares every pair with cmp, counts them,
// and hands each one that does not match to found, which is called from one
// goroutine at a time. It returns the first error of any stage.
func Diff(ctx context.Context, p *listing.Paired, cmp *Comparer, counts *DiffCounts, found func(context.Context, Finding) error) error {
	pairs := make(chan []listing.Pair, 16)
	findings := make(chan Finding, 256)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Run(gctx, pairs) })
	// Counts the deciders alone: the last one out closes findings.
	var deciders sync.WaitGroup
	deciders.Add(Deciders)
	for range Deciders {
		g.Go(func() error {
			defer deciders.Done()
			return decide(gctx, cmp, counts, pairs, findings)
		})
	}
	g.Go(func() error {
		deciders.Wait()
		close(findings)
		return nil
	})
	g.Go(func() error {
		for f := range findings {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			if err := found(gctx, f); err != nil {
				return err
			}
		}
		return nil
	})
	if g.Wait() != nil {
		// gctx's cause rather than Wait's error: if ctx ended first, the
		// errors of the stages only echo that, and ctx's cause says why.
		return context.Cause(gctx)
	}
	return context.Cause(ctx)
}

// decide compares the pairs of every page from pairs, counts them and sends
// those that do not match to findings, until pairs is closed or ctx ends.
func decide(ctx context.Context, cmp *Comparer, counts *DiffCounts, pairs <-chan []listing.Pair, findings chan<- Finding) error {
	for page := range pairs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, pr := range page {
			if pr.Src != nil && Reserved(pr.Src.Key) {
				continue // a marker in the source: not part of the clone
			}
			problem, reason, err := cmp.Compare(ctx, pr)
			if err != nil {
				return err
			}
			if problem == Vanished && pr.Dst != nil {
				// Deleted from the source while compared: the destination's
				// object is now one the source does not have (a diff with
				// --delete removes it; a verify reports it). Counted as
				// vanished too, so the summary says what happened.
				counts.Vanished.Add(1)
				problem, reason = Extra, "deleted from the source while compared"
			}
			counts.add(problem)
			if problem == Match || problem == Vanished {
				continue
			}
			if problem == Unknown {
				counts.noteUnknown(pr.Key + ": " + reason)
			}
			select {
			case findings <- Finding{Pair: pr, Problem: problem, Reason: reason}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// DiffSource enqueues what a diff finds: copies of missing and different
// objects and, when mirror is set, deletions of extra ones. Deletions only
// ever name keys listed under the destination prefix.
func DiffSource(p *listing.Paired, cmp *Comparer, counts *DiffCounts, mirror bool) Source {
	return func(ctx context.Context, copies, deletes chan<- []listing.Object) error {
		defer close(copies)
		defer close(deletes)
		return Diff(ctx, p, cmp, counts, func(ctx context.Context, f Finding) error {
			return route(ctx, f.Problem, f.Src, f.Dst, mirror, copies, deletes)
		})
	}
}

// route sends a key that does not match where it belongs: the source object
// of a missing, different or failed copy to copies, the destination object
// of an extra key or a failed deletion to deletes when mirroring, else
// nowhere.
func route(ctx context.Context, p Problem, src, dst *listing.Object, mirror bool, copies, deletes chan<- []listing.Object) error {
	out, obj := copies, src
	if p == Extra || (p == Failed && src == nil) {
		if !mirror {
			return nil
		}
		out, obj = deletes, dst
	}
	select {
	case out <- []listing.Object{*obj}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
