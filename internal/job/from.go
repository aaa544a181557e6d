package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
)

// From is what a plan enqueues: everything (the default), the difference
// with the destination (--diff), or a reconciliation file (--from-file);
// of the source as it is, or as it was at a time (--as-of). Register
// defines its flags, Validate checks them; Source, once the job is
// connected, lists as they say. Not safe for concurrent use.
type From struct {
	// Diff enqueues only what differs in the destination; Delete also
	// deletes what the source does not have (with Diff or File).
	Diff   bool
	Delete bool
	// File is a reconciliation file to enqueue the keys of.
	File string
	// Checkpoint is where a full plan records its progress: a file, or
	// ledger:NAME.
	Checkpoint string
	// AsOf is --as-of as given; Validate (or ValidateAsOf) parses it into
	// At, zero for now.
	AsOf string
	At   time.Time
	// Counts is what a --diff plan found (Source).
	Counts plan.DiffCounts

	store     plan.CheckpointStore // where Checkpoint is kept, once the ledger is open
	progress  *listing.Progress    // set when a plain listing is checkpointed
	deletions int                  // deletions in the --from-file file
	lister    *listing.Lister
	pairs     *listing.Paired
}

// Register defines the flags that choose what a plan enqueues.
func (pf *From) Register(f *cli.Flags) {
	f.BoolVar(&pf.Diff, "diff", false, "enqueue only what is missing or different in the destination (see docs/design.md, \"What --diff copies\")")
	f.BoolVar(&pf.Delete, "delete", false, "with --diff or --from-file: also delete destination objects that are not in the source (never outside --dest)")
	f.StringVar(&pf.File, "from-file", "", "enqueue exactly the keys of a reconciliation file written by planner verify --out")
	f.StringVar(&pf.Checkpoint, "checkpoint", "", "record the plan's progress in this file, or in the ledger with ledger:NAME (a plan run as an ECS task); run the same command again to carry on an interrupted plan")
	f.StringVar(&pf.AsOf, "as-of", "", "clone the source as it was at this time, RFC 3339 (e.g. 2026-12-07T10:00:00Z): each key's newest version whose LastModified is not after it, copied by version id; nothing for a key deleted then or not yet written. "+
		"The source must be versioned. A multipart upload's LastModified is when it was initiated, so one initiated before TIME counts as there at TIME, with its final content, once completed (still in flight when the plan lists, it is missed). "+
		"Composes with --diff and --delete (the destination compared with the source at TIME); not with --from-file or --checkpoint (default: now, without versions)")
}

// Validate adds to p every combination of flags a plan refuses, and reads
// the --from-file file (of j's locations) through, counting its deletions.
func (pf *From) Validate(p *cli.Problems, j *Job) {
	if pf.Diff && pf.File != "" {
		p.Addf("--diff and --from-file are two ways to choose keys: use one")
	}
	if pf.Delete && !pf.Diff && pf.File == "" {
		p.Addf("--delete needs --diff or --from-file: only a comparison knows what the source no longer has")
	}
	if pf.Checkpoint != "" && (pf.Diff || pf.File != "") {
		p.Addf("--checkpoint goes with a full plan only: a --diff or --from-file plan is simply run again")
	}
	if name, ok := strings.CutPrefix(pf.Checkpoint, ledgerCheckpoint); ok {
		if err := ledger.CheckCheckpointName(name); err != nil {
			p.Addf("--checkpoint %s: %v", ledgerCheckpoint, err)
		}
	} else {
		cli.CheckFileDir(p, "checkpoint", pf.Checkpoint)
	}
	pf.ValidateAsOf(p, time.Now())
	if pf.File == "" || j.Src.Bucket == "" || j.Dst.Bucket == "" {
		return
	}
	f, err := os.Open(pf.File)
	if err != nil {
		p.Addf("--from-file: %v", err)
		return
	}
	defer f.Close()
	if err := plan.ReadRecords(f, j.Src, j.Dst, func(r plan.Record) error {
		if r.Problem == plan.Extra || (r.Problem == plan.Failed && r.Source == nil) {
			pf.deletions++
		}
		return nil
	}); err != nil {
		p.Addf("--from-file %s: %v", pf.File, err)
	}
}

// ValidateAsOf parses AsOf into At, and refuses what cannot go with it:
// a time after now, --from-file, --checkpoint.
func (pf *From) ValidateAsOf(p *cli.Problems, now time.Time) {
	if pf.AsOf == "" {
		return
	}
	at, err := time.Parse(time.RFC3339, pf.AsOf)
	switch {
	case err != nil:
		p.Addf("--as-of %q: an RFC 3339 time, such as 2026-12-07T10:00:00Z or 2026-12-07T11:00:00+01:00", pf.AsOf)
		return
	case at.After(now):
		p.Addf("--as-of %s is in the future (this machine's clock says %s): a plan can only clone what the source already was", pf.AsOf, now.UTC().Format(time.RFC3339))
	}
	if pf.File != "" {
		p.Addf("--as-of with --from-file: a reconciliation file names keys as they are now, not versions of a time; use --as-of with --diff instead")
	}
	if pf.Checkpoint != "" {
		p.Addf("--as-of with --checkpoint: a checkpoint does not record the time, so a resumed plan could mix two; run the --as-of plan again, or with --diff")
	}
	pf.At = at
}

// CheckAsOf checks, with --as-of, that the source keeps its history and the
// time is past (connect j first). What cannot be is a cli.UsageError.
func (pf *From) CheckAsOf(ctx context.Context, j *Job) error {
	if pf.At.IsZero() {
		return nil
	}
	err := plan.CheckAsOf(ctx, j.SrcAPI, j.Src.Bucket, pf.At, time.Now())
	switch {
	case errors.Is(err, plan.ErrNeverVersioned):
		return cli.Usagef("--as-of: %v (enable versioning now and a later plan can go back to times after that)", err)
	case errors.Is(err, plan.ErrFutureTime):
		return cli.Usagef("--as-of: %v", err)
	case err != nil:
		return denied(err, "s3:GetBucketVersioning", bucketARN(j.Src.Bucket))
	}
	return nil
}

// SrcLister is what the source is listed through: the bucket as it is, or
// (--as-of) as it was.
func (pf *From) SrcLister(j *Job) listing.API {
	if pf.At.IsZero() {
		return j.SrcAPI
	}
	return listing.NewAsOf(j.SrcAPI, pf.At)
}

// Source builds the plan's source of keys, listing each bucket in its
// region (connect j first).
func (pf *From) Source(j *Job, log zerolog.Logger) plan.Source {
	opts := listing.Options{Listers: j.Listers}
	switch {
	case pf.File != "":
		return plan.FileSource(pf.File, j.Src, j.Dst, pf.Delete)
	case pf.Diff:
		pf.pairs = j.PairedFrom(pf.SrcLister(j), opts)
		return plan.DiffSource(pf.pairs, j.Comparer(), &pf.Counts, pf.Delete)
	}
	opts.Progress = pf.progress
	pf.lister = listing.New(pf.SrcLister(j), j.Src.Bucket, j.Src.Prefix, opts, log)
	return plan.ListSource(pf.lister)
}

// Describe says how the keys were found, for the plan summary: the
// listing's (or the diff's) figures over elapsed.
func (pf *From) Describe(elapsed time.Duration) string {
	how := pf.describeFrom(elapsed)
	if !pf.At.IsZero() {
		how = fmt.Sprintf("as of     %s (each key's version then)\n%s", pf.At.UTC().Format(time.RFC3339Nano), how)
	}
	return how
}

func (pf *From) describeFrom(elapsed time.Duration) string {
	switch {
	case pf.lister != nil:
		st := &pf.lister.Stats
		return fmt.Sprintf("listing   %.2fs, %d requests over %d shards (%d key-range splits)",
			elapsed.Seconds(), st.Requests.Load(), st.Shards.Load(), st.Splits.Load())
	case pf.pairs != nil:
		st, c := pf.pairs.Stats(), &pf.Counts
		how := fmt.Sprintf("diff      %.2fs, %d requests over %d shards: %d compared, %d matching, %d missing, %d different, %d extra",
			elapsed.Seconds(), st.Requests, st.Shards, c.Compared.Load(), c.Matching.Load(), c.Missing.Load(), c.Different.Load(), c.Extra.Load())
		if n := c.Unknown.Load(); n > 0 {
			how += fmt.Sprintf("\nunknown   %d keys could not be inspected (HeadObject refused): enqueued as copies; the first:", n)
			for _, u := range c.Unknowns() {
				how += "\n          " + u
			}
		}
		if n := c.Vanished.Load(); n > 0 {
			how += fmt.Sprintf("\nvanished  %d keys deleted from the source while the diff looked at them (their destination copies count as extra)", n)
		}
		return how
	}
	how := fmt.Sprintf("from      %s, %.2fs", pf.File, elapsed.Seconds())
	if pf.deletions > 0 && !pf.Delete {
		how += fmt.Sprintf("\nskipped   %d deletions in the file (add --delete to enqueue them)", pf.deletions)
	}
	return how
}

// listRequests is how many ListObjectsV2 the plan's listing made.
func (pf *From) listRequests() int64 {
	switch {
	case pf.lister != nil:
		return pf.lister.Stats.Requests.Load()
	case pf.pairs != nil:
		return pf.pairs.Stats().Requests
	}
	return 0
}

// ledgerCheckpoint starts a --checkpoint kept in the ledger:
// ledger:NAME is checkpoints/NAME.json there.
const ledgerCheckpoint = "ledger:"

// checkpointStore is where --checkpoint keeps the plan's progress: the
// file, or the ledger's object.
func (pf *From) checkpointStore(store *ledger.Store) plan.CheckpointStore {
	if name, ok := strings.CutPrefix(pf.Checkpoint, ledgerCheckpoint); ok {
		return store.Checkpoint(name)
	}
	return plan.CheckpointFile(pf.Checkpoint)
}

// mode is the plan's mode for the run record.
func (pf *From) mode() string {
	switch {
	case pf.Diff:
		return ledger.ModeDiff
	case pf.File != "":
		return ledger.ModeFromFile
	}
	return ledger.ModeFull
}
