package plan

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

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
//  3. both ETags single-part (an MD5: 32 hex digits, no "-N" part count):
//     equal ETags match, anything else is different;
//  4. otherwise (multipart on either side, part sizes unknown) the
//     checksums from HeadObject, when both sides carry one of the same
//     algorithm: equal is a match; unequal full-object checksums are
//     different (unequal composite ones prove nothing and fall through);
//  5. otherwise: different if the source was modified after the
//     destination was written, else a match.
//
// Objects encrypted with SSE-KMS or SSE-C have ETags that are not MD5s; rule
// 3 can then call a faithful copy different, which costs a needless copy,
// never a missed one.
type Comparer struct {
	// Src and Dst read checksums for rule 4; nil skips it.
	Src, Dst             HeadAPI
	SrcBucket, DstBucket string
}

var md5ETag = regexp.MustCompile(`^"?[0-9a-fA-F]{32}"?$`)

// Compare applies the rule to one pair and says which step decided it.
func (c *Comparer) Compare(ctx context.Context, pr listing.Pair) (Problem, string, error) {
	switch {
	case pr.Dst == nil:
		return Missing, "not in destination", nil
	case pr.Src == nil:
		return Extra, "not in source", nil
	case pr.Src.Size != pr.Dst.Size:
		return Different, "size", nil
	case md5ETag.MatchString(pr.Src.ETag) && md5ETag.MatchString(pr.Dst.ETag):
		if pr.Src.ETag == pr.Dst.ETag {
			return Match, "etag", nil
		}
		return Different, "etag", nil
	}
	if c.Src != nil && c.Dst != nil {
		verdict, err := c.checksums(ctx, pr)
		if err != nil {
			return "", "", err
		}
		if verdict != "" {
			return verdict, "checksum", nil
		}
	}
	if pr.Src.LastModified.After(pr.Dst.LastModified) {
		return Different, "source newer", nil
	}
	return Match, "size and age", nil
}

// checksums compares the two objects' checksums: "" when they prove nothing.
func (c *Comparer) checksums(ctx context.Context, pr listing.Pair) (Problem, error) {
	src, err := c.Src.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.SrcBucket), Key: aws.String(pr.Src.Key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return "", fmt.Errorf("head s3://%s/%s: %w", c.SrcBucket, pr.Src.Key, err)
	}
	dst, err := c.Dst.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.DstBucket), Key: aws.String(pr.Dst.Key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return "", fmt.Errorf("head s3://%s/%s: %w", c.DstBucket, pr.Dst.Key, err)
	}
	for _, pick := range []func(*s3.HeadObjectOutput) *string{
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumCRC64NVME },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumCRC32C },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumCRC32 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumSHA256 },
		func(h *s3.HeadObjectOutput) *string { return h.ChecksumSHA1 },
	} {
		a, b := aws.ToString(pick(src)), aws.ToString(pick(dst))
		if a == "" || b == "" {
			continue
		}
		if a == b {
			return Match, nil
		}
		if src.ChecksumType != types.ChecksumTypeComposite && dst.ChecksumType != types.ChecksumTypeComposite {
			return Different, nil
		}
		return "", nil
	}
	return "", nil
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
	}
}

// Deciders is how many goroutines compare pairs; more than the listers so
// that checksum look-ups do not hold up the listing.
const Deciders = 16

// Diff joins both sides with p, compares every pair with cmp, counts them,
// and hands each one that does not match to found, which is called from one
// goroutine at a time. It returns the first error of any stage.
func Diff(ctx context.Context, p *listing.Paired, cmp *Comparer, counts *DiffCounts, found func(context.Context, Finding) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pairs := make(chan []listing.Pair, 16)
	findings := make(chan Finding, 256)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.Run(ctx, pairs); err != nil {
			cancel(err)
		}
	})
	var deciders sync.WaitGroup
	for range Deciders {
		deciders.Go(func() {
			for page := range pairs {
				if ctx.Err() != nil {
					continue // drain, so the listing can end
				}
				for _, pr := range page {
					problem, reason, err := cmp.Compare(ctx, pr)
					if err != nil {
						cancel(err)
						break
					}
					counts.add(problem)
					if problem == Match {
						continue
					}
					select {
					case findings <- Finding{Pair: pr, Problem: problem, Reason: reason}:
					case <-ctx.Done():
					}
				}
			}
		})
	}
	wg.Go(func() {
		deciders.Wait()
		close(findings)
	})
	for f := range findings {
		if ctx.Err() != nil {
			continue
		}
		if err := found(ctx, f); err != nil {
			cancel(err)
		}
	}
	wg.Wait()
	return context.Cause(ctx)
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
