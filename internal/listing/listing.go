package listing

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// API is the part of the S3 client the lister uses.
type API interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

var _ API = (*s3.Client)(nil)

// Object is one listed object.
type Object struct {
	Key          string
	Size         int64
	ETag         string
	StorageClass string
	LastModified time.Time
	// VersionID is the version listed, for a listing as of a time (AsOf);
	// "" for the current one.
	VersionID string
	// Token acknowledges the object to Options.Progress; zero when untracked.
	Token Token
}

// Options tune a Lister. Zero values take the defaults.
type Options struct {
	// Listers is how many ListObjectsV2 calls may be in flight. Default 64.
	Listers int
	// WalkBudget is how many prefixes the delimiter walk may open before it
	// lists the remaining subtrees flat. Default 8 × Listers.
	WalkBudget int
	// PageSize is MaxKeys per request. Default 1000 (S3's maximum).
	PageSize int32
	// Progress, when set, tracks acknowledgements so that an interrupted
	// listing can resume (Lister only).
	Progress *Progress
}

func (o Options) withDefaults() Options {
	if o.Listers <= 0 {
		o.Listers = 64
	}
	if o.WalkBudget <= 0 {
		o.WalkBudget = 8 * o.Listers
	}
	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	return o
}

// Stats counts what a listing did. Safe for concurrent use.
type Stats struct {
	Requests atomic.Int64 // ListObjectsV2 calls
	Objects  atomic.Int64 // objects emitted
	Shards   atomic.Int64 // shards listed, the root included
	Splits   atomic.Int64 // key-range splits
}

// Lister lists one bucket prefix concurrently.
type Lister struct {
	api    API
	bucket string
	prefix string
	opts   Options
	log    zerolog.Logger
	Stats  Stats
}

// New returns a Lister of bucket/prefix. The prefix is used as given: "a/b"
// also lists "a/bc"; pass "a/b/" for a directory.
func New(api API, bucket, prefix string, opts Options, log zerolog.Logger) *Lister {
	return &Lister{api: api, bucket: bucket, prefix: prefix, opts: opts.withDefaults(), log: log}
}

// Run lists every object under the prefix and sends them, a page at a time
// in no particular order across pages, on out. It closes out when it
// returns. It returns the first ListObjectsV2 error (after the SDK's own
// retries) or ctx's error; the pages already sent are then incomplete.
func (l *Lister) Run(ctx context.Context, out chan<- []Object) error {
	defer close(out)
	roots := []*shard{{prefix: l.prefix, delim: true}}
	if p := l.opts.Progress; p != nil {
		roots = p.roots(roots[0])
	}
	return runShards(ctx, l.opts, roots, func(ctx context.Context, sched *scheduler, s *shard) error {
		err := l.listShard(ctx, sched, s, out)
		if err == nil && l.opts.Progress != nil {
			l.opts.Progress.ended(s)
		}
		return err
	})
}

// push hands out a new shard, tracked when the listing is.
func (l *Lister) push(sched *scheduler, s *shard) {
	if l.opts.Progress != nil {
		l.opts.Progress.register(s, "", nil)
	}
	sched.push(s)
}

// runShards lists root and every shard split off it with opts.Listers
// listers, each calling list for one shard at a time. It returns the first
// error of any, or ctx's.
func runShards(ctx context.Context, opts Options, roots []*shard, list func(context.Context, *scheduler, *shard) error) error {
	g, gctx := errgroup.WithContext(ctx)
	sched := newScheduler(gctx, opts.WalkBudget)
	for _, r := range roots {
		sched.push(r)
	}
	for range opts.Listers {
		g.Go(func() error {
			for {
				s, ok := sched.next()
				if !ok {
					return nil
				}
				err := list(gctx, sched, s)
				sched.done()
				if err != nil {
					return err
				}
			}
		})
	}
	if g.Wait() != nil {
		// gctx's cause rather than Wait's error: if ctx ended first, the
		// errors of the listers only echo that, and ctx's cause says why.
		return context.Cause(gctx)
	}
	return context.Cause(ctx)
}

func (l *Lister) listShard(ctx context.Context, sched *scheduler, s *shard, out chan<- []Object) error {
	l.Stats.Shards.Add(1)
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(l.bucket),
		Prefix:  aws.String(s.prefix),
		MaxKeys: aws.Int32(l.opts.PageSize),
	}
	if s.after != "" {
		in.StartAfter = aws.String(s.after)
	}
	if s.delim {
		in.Delimiter = aws.String(delimiter)
	}
	for {
		l.Stats.Requests.Add(1)
		page, err := Page(ctx, l.api, in)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", l.bucket, s.prefix, err)
		}
		objs, last, finished := l.takePage(sched, s, page)
		if l.opts.Progress != nil {
			objs = l.opts.Progress.emit(s, objs)
		}
		if len(objs) > 0 {
			l.Stats.Objects.Add(int64(len(objs)))
			select {
			case out <- objs:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if finished || !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			return nil
		}
		if sched.hungry() {
			if m, ok := s.splitPoint(last); ok {
				l.Stats.Splits.Add(1)
				if p := l.opts.Progress; p != nil {
					sched.push(p.split(s, m))
				} else {
					sched.push(s.splitAt(m))
				}
			}
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// takePage filters one page to the shard, hands out its common prefixes as
// new shards, and returns the objects, the page's last entry, and whether the
// shard's upper bound was passed.
func (l *Lister) takePage(sched *scheduler, s *shard, page *s3.ListObjectsV2Output) (objs []Object, last string, finished bool) {
	objs = make([]Object, 0, len(page.Contents))
	for i, o := range page.Contents {
		key := aws.ToString(o.Key)
		last = max(last, key)
		if s.beyond(key) {
			finished = true
			break
		}
		if !s.keeps(key) {
			continue
		}
		objs = append(objs, Object{
			Key:          key,
			Size:         aws.ToInt64(o.Size),
			ETag:         aws.ToString(o.ETag),
			StorageClass: string(o.StorageClass),
			LastModified: aws.ToTime(o.LastModified),
			VersionID:    versionOf(page, i),
		})
	}
	var group []string
	handedOut := ""
	for _, cp := range page.CommonPrefixes {
		p := aws.ToString(cp.Prefix)
		last = max(last, p)
		if s.beyond(p) {
			finished = true
			break
		}
		if l.opts.Progress != nil && l.opts.Progress.handedOutBefore(s, p) {
			continue // a shard of its own since before the resume
		}
		handedOut = p
		if s.depth < maxWalkDepth && sched.reserveWalk() {
			l.push(sched, &shard{prefix: p, delim: true, depth: s.depth + 1})
			continue
		}
		group = append(group, p)
	}
	if len(group) > 0 {
		l.push(sched, subtrees(s, group[0], group[len(group)-1]))
	}
	if upTo := listedUpTo(page); upTo != "" {
		// As of a time (AsOf), a page lists more than it holds.
		last = max(last, upTo)
		finished = finished || s.beyond(upTo)
	}
	if handedOut != "" && l.opts.Progress != nil {
		l.opts.Progress.handedOut(s, handedOut)
	}
	return objs, last, finished
}

// maxWalkDepth stops the delimiter walk in very deep, narrow trees, where
// each level would cost a request for a single common prefix.
const maxWalkDepth = 16

// scheduler hands shards to listers and knows when the listing is over: no
// shard pending and none being listed.
type scheduler struct {
	mu      sync.Mutex
	cond    *sync.Cond
	ctx     context.Context
	pending []*shard
	active  int
	idle    int
	walks   int
	budget  int
}

func newScheduler(ctx context.Context, budget int) *scheduler {
	s := &scheduler{ctx: ctx, budget: budget}
	s.cond = sync.NewCond(&s.mu)
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cond.Broadcast()
	})
	return s
}

func (s *scheduler) push(sh *shard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, sh)
	s.cond.Signal()
}

// next blocks until a shard is available or the listing is over.
func (s *scheduler) next() (*shard, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pending) == 0 && s.active > 0 && s.ctx.Err() == nil {
		s.idle++
		s.cond.Wait()
		s.idle--
	}
	if len(s.pending) == 0 || s.ctx.Err() != nil {
		s.cond.Broadcast() // wake the other idle listers: we are done
		return nil, false
	}
	sh := s.pending[0]
	s.pending = slices.Delete(s.pending, 0, 1)
	s.active++
	return sh, true
}

func (s *scheduler) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 && len(s.pending) == 0 {
		s.cond.Broadcast()
	}
}

// hungry reports whether a lister is waiting with nothing to do.
func (s *scheduler) hungry() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idle > 0 && len(s.pending) == 0
}

// reserveWalks takes n prefixes from the walk's budget, or none if fewer
// are left.
func (s *scheduler) reserveWalks(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.walks+n > s.budget {
		return false
	}
	s.walks += n
	return true
}

// reserveWalk takes one prefix from the delimiter walk's budget.
func (s *scheduler) reserveWalk() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.walks >= s.budget {
		return false
	}
	s.walks++
	return true
}
