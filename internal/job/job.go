// Package job is what the planner's commands that copy share (plan, run,
// verify, cutover, follow): a Job names what to copy where and holds the
// clients of each bucket's region; a From says how a plan finds its keys
// (the whole source, the difference with the destination, a reconciliation
// file, the source as of a time, a checkpointed listing). It also sends a
// plan to a fleet's work queue, recording it in the ledger, after a
// preflight that proves on a sample key that the fleet may copy.
package job

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/ownership"
	"github.com/s3clone/s3clone/internal/plan"
)

// Job is what plan, run, verify, cutover and follow share: what to copy
// where, and how to list it. Its flags are defined by Register (and
// RegisterLock); Validate parses them; Connect takes the clients. A Job is
// not safe for concurrent changes; once connected, its methods may be
// called concurrently.
type Job struct {
	// RawSource and RawDest are --source and --dest as given; Validate
	// parses them into Src and Dst.
	RawSource, RawDest string
	// SrcRegion and DstRegion are the buckets' regions from the flags: ""
	// finds them (Connect).
	SrcRegion, DstRegion string
	Src, Dst             plan.Location
	// Listers is how many ListObjectsV2 calls are in flight at once
	// (default 64); BatchKeys the most keys per work message (default 100).
	Listers   int
	BatchKeys int
	// SrcAPI and DstAPI are clients of each bucket's region (Connect).
	SrcAPI, DstAPI *s3.Client
	// Write is how copies are written (the commands that plan); SkipLock
	// copies from an Object Lock source into a destination without it.
	Write    config.Copy
	SkipLock bool
	// Copy is the run's copy options: Write's, and what the buckets'
	// settings say the copies must carry (Inspect).
	Copy plan.Copy
	// AsOf, set for a plan as of a time, finds the preflight's sample's
	// version then, and the version a second look at a pair reads
	// (Comparer).
	AsOf *listing.AsOf
	// owners is the book every S3 client follows (Connect).
	owners *ownership.Book
}

// RegisterLock defines --skip-object-lock, for the commands that plan.
func (j *Job) RegisterLock(f *cli.Flags) {
	f.BoolVar(&j.SkipLock, "skip-object-lock", false, "copy from a source with Object Lock into a destination without it: the copies keep no retention or legal hold (without this the plan refuses)")
}

// Inspect decides the run's copy options (Copy): the write flags, and what
// the buckets' settings say the copies must carry that S3 does not copy by
// itself (plan.Inspect). Connect first. A setting the plan cannot honour
// is a cli.UsageError.
func (j *Job) Inspect(ctx context.Context, log zerolog.Logger) error {
	c, notes, err := plan.Inspect(ctx, j.SrcAPI, j.DstAPI, j.Src, j.Dst, j.SkipLock)
	for _, n := range notes {
		log.Warn().Msg(n)
	}
	var se *plan.SettingError
	switch {
	case errors.Is(err, plan.ErrNoLockAtDest):
		return cli.Usagef("%v: create the destination bucket with Object Lock enabled, or pass --skip-object-lock to copy without them", err)
	case errors.As(err, &se):
		return denied(se.Err, se.Action, bucketARN(se.Bucket))
	case err != nil:
		return err
	}
	w := j.Write.Options()
	c.StorageClass, c.SSEKMSKeyID, c.ACL = w.StorageClass, w.SSEKMSKeyID, w.ACL
	j.Copy = c
	return nil
}

// Register defines the flags that name the buckets and how to list them.
func (j *Job) Register(f *cli.Flags) {
	f.StringVar(&j.RawSource, "source", "", "what to copy: s3://BUCKET or s3://BUCKET/PREFIX (required)")
	f.StringVar(&j.RawDest, "dest", "", "where to copy it: s3://BUCKET or s3://BUCKET/PREFIX; the source prefix is replaced by this one (required)")
	f.StringVar(&j.SrcRegion, "source-region", "", "the source bucket's region (default: asked of S3, HeadBucket)")
	f.StringVar(&j.DstRegion, "dest-region", "", "the destination bucket's region (default: asked of S3, HeadBucket)")
	f.BoolVar(&j.Src.RequesterPays, "request-payer", false, "the source bucket is Requester Pays: this account pays for reading it (every request to it says so)")
	f.StringVar(&j.Src.Owner, "source-owner", "", "the account ID that must own the source bucket: every request says so, and S3 refuses it if another account does (default: no check)")
	f.StringVar(&j.Dst.Owner, "dest-owner", "", "the account ID that must own the destination bucket, as --source-owner")
	f.IntVar(&j.Listers, "listers", 64, "ListObjectsV2 calls in flight at once")
	f.IntVar(&j.BatchKeys, "batch-keys", 100, "most keys per work message (messages also stay under 240KiB)")
}

// Validate parses --source and --dest into Src and Dst (keeping the
// flags' owners and payer) and adds to p every flag that is wrong.
func (j *Job) Validate(p *cli.Problems) {
	for flag, owner := range map[string]string{"source-owner": j.Src.Owner, "dest-owner": j.Dst.Owner} {
		if owner != "" && !accountID.MatchString(owner) {
			p.Addf("--%s %q: an AWS account ID is 12 digits", flag, owner)
		}
	}
	src, dst := j.Src, j.Dst // the flags' owner and payer
	var err error
	if j.RawSource == "" {
		p.Addf("--source is required: s3://BUCKET[/PREFIX] to copy from")
	} else if j.Src, err = plan.ParseLocation(j.RawSource); err != nil {
		p.Addf("--source: %v", err)
	}
	if j.RawDest == "" {
		p.Addf("--dest is required: s3://BUCKET[/PREFIX] to copy to")
	} else if j.Dst, err = plan.ParseLocation(j.RawDest); err != nil {
		p.Addf("--dest: %v", err)
	}
	j.Src.Owner, j.Src.RequesterPays, j.Dst.Owner = src.Owner, src.RequesterPays, dst.Owner
	if j.Src.Bucket != "" && j.Dst.Bucket != "" {
		if err := plan.CheckPair(j.Src, j.Dst); err != nil {
			p.Addf("%v", err)
		}
	}
	if j.Listers < 1 || j.Listers > 1000 {
		p.Addf("--listers %d: use 1 to 1000", j.Listers)
	}
	if j.BatchKeys < 1 || j.BatchKeys > 10000 {
		p.Addf("--batch-keys %d: use 1 to 10000", j.BatchKeys)
	}
}

// accountID is the shape of an AWS account ID.
var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// Connect finds each bucket's region (unless a flag gave it), takes a
// client of it, and fails with a UsageError when either bucket does not
// exist or cannot be read. Every request from then on says who must own
// each bucket and who pays for it.
func (j *Job) Connect(ctx context.Context, regions *config.Regions) error {
	j.owners = regions.Owners()
	j.owners.SetPair(j.Src.Bucket, ownership.Bucket{Owner: j.Src.Owner, RequesterPays: j.Src.RequesterPays},
		j.Dst.Bucket, ownership.Bucket{Owner: j.Dst.Owner, RequesterPays: j.Dst.RequesterPays})
	for _, b := range []struct {
		flag string
		loc  *plan.Location
		hint string
		api  **s3.Client
	}{{"source", &j.Src, j.SrcRegion, &j.SrcAPI}, {"dest", &j.Dst, j.DstRegion, &j.DstAPI}} {
		client, region, err := regions.For(ctx, b.loc.Bucket, b.hint)
		if err != nil {
			return config.CheckBucketError(err, b.flag, b.loc.Bucket)
		}
		if err := config.CheckBucket(ctx, client, b.flag, b.loc.Bucket); err != nil {
			return err
		}
		b.loc.Region, *b.api = region, client
	}
	return nil
}

// NewSummary starts a plan: a fresh run id, the locations, the start time.
func (j *Job) NewSummary() *plan.Summary {
	now := time.Now()
	return &plan.Summary{Run: plan.NewRunID(now), Source: j.Src, Dest: j.Dst, Copy: j.Copy, Started: now}
}

// Paired lists the source and the destination side by side.
func (j *Job) Paired(opts listing.Options) *listing.Paired {
	return j.PairedFrom(j.SrcAPI, opts)
}

// PairedFrom lists the source through src and the destination side by side.
func (j *Job) PairedFrom(src listing.API, opts listing.Options) *listing.Paired {
	return listing.NewPaired(
		listing.Side{API: src, Bucket: j.Src.Bucket, Prefix: j.Src.Prefix},
		listing.Side{API: j.DstAPI, Bucket: j.Dst.Bucket, Prefix: j.Dst.Prefix}, opts)
}

// Comparer compares a source object with its copy, each in its region;
// with the source as of a time (AsOf), a second look at a pair (Recheck)
// reads the source's version then.
func (j *Job) Comparer() *plan.Comparer {
	c := &plan.Comparer{Src: j.SrcAPI, Dst: j.DstAPI, SrcBucket: j.Src.Bucket, DstBucket: j.Dst.Bucket, Redirects: j.Copy.Redirects}
	if j.AsOf != nil { // not a nil *AsOf in the interface
		c.AsOf = j.AsOf
	}
	return c
}

// Enqueue runs the plan, sending its batches with send; sent may be nil.
func (j *Job) Enqueue(ctx context.Context, src plan.Source, sum *plan.Summary, send plan.SendFunc, sent plan.SentFunc, log zerolog.Logger) error {
	log.Info().Str("run", sum.Run).Str("source", j.Src.String()).Str("dest", j.Dst.String()).Msg("planning")
	return plan.Enqueue(ctx, src, sum, plan.Options{MaxKeys: j.BatchKeys}, send, sent)
}

// RunRecord is the ledger's record of the run sum starts, planned as from
// says, sending to queueURL ("" for none), with the options opts.
func (j *Job) RunRecord(sum *plan.Summary, from *From, queueURL string, opts map[string]string) ledger.Run {
	host, _ := os.Hostname() // "" is fine: the record says where it ran only when it can
	return ledger.Run{
		ID: sum.Run, Source: j.Src, Dest: j.Dst, Queue: queueURL, Mode: from.mode(), Delete: from.Delete, Copy: j.Copy,
		Options: opts, Version: cli.Version(), Host: host, Started: sum.Started.UTC(),
	}
}

// DestKey and SourceKey map a key to the other side: the source prefix is
// replaced by the destination's.
func (j *Job) DestKey(srcKey string) string {
	return j.Dst.Prefix + strings.TrimPrefix(srcKey, j.Src.Prefix)
}

// SourceKey maps a destination key to its source key (see DestKey).
func (j *Job) SourceKey(dstKey string) string {
	return j.Src.Prefix + strings.TrimPrefix(dstKey, j.Dst.Prefix)
}

// FromRun takes the source and destination of a run in the ledger (the
// latest when runID is ""), with the default listers. A ledger without
// the run is a cli.UsageError.
func (j *Job) FromRun(ctx context.Context, store *ledger.Store, runID string) error {
	var err error
	if runID == "" {
		if runID, err = store.Latest(ctx); errors.Is(err, ledger.ErrNotFound) {
			return cli.Usagef("--ledger %s holds no run to verify: give --source and --dest", store)
		} else if err != nil {
			return config.LedgerError(err, store)
		}
	}
	run, err := store.Run(ctx, runID)
	if errors.Is(err, ledger.ErrNotFound) {
		return cli.Usagef("--run-id %s: no such run in %s", runID, store)
	} else if err != nil {
		return config.LedgerError(err, store)
	}
	j.Src, j.Dst = run.Source, run.Dest
	return nil
}
