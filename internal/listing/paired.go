package listing

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Side is one bucket prefix of a paired listing.
type Side struct {
	API    API
	Bucket string
	Prefix string
}

// Pair is one relative key and the object under it on each side; Src or
// Dst is nil where that side has no such key.
type Pair struct {
	Key string // relative to each side's prefix
	Src *Object
	Dst *Object
}

// PairStats counts what a paired listing did. Safe for concurrent use.
type PairStats struct {
	Requests int64
	Shards   int64
	Splits   int64
}

// Paired lists two prefixes over the same relative key ranges and joins
// them key by key: within a range both sides come back in S3's order (UTF-8
// binary), so a merge-join finds every key on either side with nothing held
// but a page per side. As in Lister, the top levels are walked with a
// delimiter, here on both sides at once: the union of their common prefixes
// becomes the shards (a prefix only the destination has is covered too), and
// ranges are cut in two whenever a lister is idle. Pairs from different
// shards arrive in no particular order.
type Paired struct {
	src, dst Side
	opts     Options
	mu       sync.Mutex
	stats    PairStats
}

// NewPaired returns a paired listing of src and dst.
func NewPaired(src, dst Side, opts Options) *Paired {
	return &Paired{src: src, dst: dst, opts: opts.withDefaults()}
}

// Stats returns the counts so far.
func (p *Paired) Stats() PairStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *Paired) count(f func(*PairStats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

// Run sends every pair on out, a page of pairs at a time, and closes out
// when it returns. It returns the first listing error, or ctx's.
func (p *Paired) Run(ctx context.Context, out chan<- []Pair) error {
	defer close(out)
	// Relative keys: the root shard is the whole key space of both sides.
	return runShards(ctx, p.opts, []*shard{{delim: true}}, func(ctx context.Context, sched *scheduler, s *shard) error {
		return p.join(ctx, sched, s, out)
	})
}

// join merge-joins one range of both sides.
func (p *Paired) join(ctx context.Context, sched *scheduler, s *shard, out chan<- []Pair) error {
	p.count(func(st *PairStats) { st.Shards++ })
	src := p.newCursor(p.src, s)
	dst := p.newCursor(p.dst, s)
	var batch []Pair
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case out <- batch:
			batch = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		a, err := src.peek(ctx)
		if err != nil {
			return err
		}
		b, err := dst.peek(ctx)
		if err != nil {
			return err
		}
		if a == nil && b == nil {
			if s.delim {
				p.descend(sched, s, src, dst)
			}
			return flush()
		}
		var pair Pair
		switch {
		case b == nil || (a != nil && a.rel < b.rel):
			pair = Pair{Key: a.rel, Src: &a.Object}
			src.next()
		case a == nil || b.rel < a.rel:
			pair = Pair{Key: b.rel, Dst: &b.Object}
			dst.next()
		default:
			pair = Pair{Key: a.rel, Src: &a.Object, Dst: &b.Object}
			src.next()
			dst.next()
		}
		if !s.keeps(pair.Key) {
			continue // at the walked level above: joined there
		}
		batch = append(batch, pair)
		if len(batch) >= int(p.opts.PageSize) {
			if err := flush(); err != nil {
				return err
			}
		}
		if (src.fetched || dst.fetched) && sched.hungry() {
			src.fetched, dst.fetched = false, false
			if m, ok := s.splitPoint(max(src.lastRel, dst.lastRel)); ok {
				p.count(func(st *PairStats) { st.Splits++ })
				sched.push(s.splitAt(m))
				src.upTo, dst.upTo = m, m
			}
		}
	}
}

// descend hands out the common prefixes a walked shard found on either
// side: each becomes a shard of its own while the walk budget lasts; past it,
// all of them go to one flat shard of the subtrees below this level.
func (p *Paired) descend(sched *scheduler, s *shard, a, b *cursor) {
	var cps []string
	for _, cp := range mergeUnique(a.cps, b.cps) {
		if !s.beyond(cp) {
			cps = append(cps, cp)
		}
	}
	if len(cps) == 0 {
		return
	}
	if a.overflow || b.overflow || !sched.reserveWalks(len(cps)) {
		sched.push(&shard{prefix: s.prefix, after: s.after, upTo: s.upTo, upToIncl: s.upToIncl, deep: true, level: s.prefix, depth: s.depth + 1})
		return
	}
	for _, cp := range cps {
		sched.push(&shard{prefix: cp, delim: s.depth+1 < maxWalkDepth, depth: s.depth + 1})
	}
}

// mergeUnique merges two sorted lists, dropping duplicates.
func mergeUnique(a, b []string) []string {
	out := make([]string, 0, max(len(a), len(b)))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0] < b[0]):
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return out
}

type relObject struct {
	Object
	rel string
}

// cursor walks one side of a range in order, a page at a time.
type cursor struct {
	p       *Paired
	side    Side
	in      *s3.ListObjectsV2Input
	buf     []relObject
	i       int
	more    bool
	upTo    string // inclusive relative upper bound, "" none
	lastRel string // relative key of the last object or common prefix fetched
	fetched bool   // a page was fetched since the last split check
	// cps are the relative common prefixes of a walked shard, at most
	// limit of them; overflow says there were more.
	cps      []string
	limit    int
	overflow bool
}

func (p *Paired) newCursor(side Side, s *shard) *cursor {
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(side.Bucket),
		Prefix:  aws.String(side.Prefix + s.prefix),
		MaxKeys: aws.Int32(p.opts.PageSize),
	}
	if s.after != "" {
		in.StartAfter = aws.String(side.Prefix + s.after)
	}
	if s.delim {
		in.Delimiter = aws.String(delimiter)
	}
	return &cursor{p: p, side: side, in: in, more: true, upTo: s.upTo, limit: p.opts.WalkBudget}
}

// peek returns the next object of the range, or nil at its end.
func (c *cursor) peek(ctx context.Context) (*relObject, error) {
	for c.i >= len(c.buf) {
		if !c.more {
			return nil, nil
		}
		if err := c.fetch(ctx); err != nil {
			return nil, err
		}
	}
	o := &c.buf[c.i]
	if c.upTo != "" && o.rel > c.upTo {
		c.more, c.buf = false, nil
		return nil, nil
	}
	return o, nil
}

func (c *cursor) next() { c.i++ }

func (c *cursor) fetch(ctx context.Context) error {
	c.p.count(func(st *PairStats) { st.Requests++ })
	page, err := Page(ctx, c.side.API, c.in)
	if err != nil {
		return fmt.Errorf("list s3://%s/%s: %w", c.side.Bucket, c.side.Prefix, err)
	}
	// A fresh slice: pairs already sent point into the previous one.
	c.buf, c.i = make([]relObject, 0, len(page.Contents)), 0
	for i, o := range page.Contents {
		key := aws.ToString(o.Key)
		rel := strings.TrimPrefix(key, c.side.Prefix)
		c.buf = append(c.buf, relObject{rel: rel, Object: Object{
			Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag),
			StorageClass: string(o.StorageClass), LastModified: aws.ToTime(o.LastModified), VersionID: versionOf(page, i),
		}})
		c.lastRel = max(c.lastRel, rel)
	}
	for _, cp := range page.CommonPrefixes {
		rel := strings.TrimPrefix(aws.ToString(cp.Prefix), c.side.Prefix)
		c.lastRel = max(c.lastRel, rel)
		if len(c.cps) >= c.limit {
			c.overflow = true
			continue
		}
		c.cps = append(c.cps, rel)
	}
	if upTo := listedUpTo(page); upTo != "" {
		// As of a time (AsOf), a page lists more than it holds.
		c.lastRel = max(c.lastRel, strings.TrimPrefix(upTo, c.side.Prefix))
	}
	c.fetched = true
	c.more = aws.ToBool(page.IsTruncated) && page.NextContinuationToken != nil && (c.upTo == "" || c.lastRel <= c.upTo)
	c.in.ContinuationToken = page.NextContinuationToken
	return nil
}
