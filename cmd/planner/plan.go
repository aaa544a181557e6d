package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/ownership"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// source is what plan, run and verify share: what to copy where, and how
// to list it.
type source struct {
	rawSource, rawDest   string
	srcRegion, dstRegion string // from the flags: "" finds them
	src, dst             plan.Location
	listers              int
	batchKeys            int
	// srcAPI and dstAPI are clients of each bucket's region (connect).
	srcAPI, dstAPI *s3.Client
	// write is how copies are written (the commands that plan); skipLock
	// copies from an Object Lock source into a destination without it.
	write    config.Copy
	skipLock bool
	// copy is the run's copy options: write's, and what the buckets'
	// settings say the copies must carry (inspect).
	copy plan.Copy
	// owners is the book every S3 client follows (connect).
	owners *ownership.Book
	// asOf, set for a plan as of a time, finds the preflight's sample's
	// version then.
	asOf *listing.AsOf
}

// registerLock defines --skip-object-lock, for the commands that plan.
func (s *source) registerLock(f *cli.Flags) {
	f.BoolVar(&s.skipLock, "skip-object-lock", false, "copy from a source with Object Lock into a destination without it: the copies keep no retention or legal hold (without this the plan refuses)")
}

// inspect decides the run's copy options: the write flags, and what the
// buckets' settings say the copies must carry that S3 does not copy by
// itself (plan.Inspect). Connect first.
func (s *source) inspect(ctx context.Context, log zerolog.Logger) error {
	c, notes, err := plan.Inspect(ctx, s.srcAPI, s.dstAPI, s.src, s.dst, s.skipLock)
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
	w := s.write.Options()
	c.StorageClass, c.SSEKMSKeyID, c.ACL = w.StorageClass, w.SSEKMSKeyID, w.ACL
	s.copy = c
	return nil
}

func (s *source) register(f *cli.Flags) {
	f.StringVar(&s.rawSource, "source", "", "what to copy: s3://BUCKET or s3://BUCKET/PREFIX (required)")
	f.StringVar(&s.rawDest, "dest", "", "where to copy it: s3://BUCKET or s3://BUCKET/PREFIX; the source prefix is replaced by this one (required)")
	f.StringVar(&s.srcRegion, "source-region", "", "the source bucket's region (default: asked of S3, HeadBucket)")
	f.StringVar(&s.dstRegion, "dest-region", "", "the destination bucket's region (default: asked of S3, HeadBucket)")
	f.BoolVar(&s.src.RequesterPays, "request-payer", false, "the source bucket is Requester Pays: this account pays for reading it (every request to it says so)")
	f.StringVar(&s.src.Owner, "source-owner", "", "the account ID that must own the source bucket: every request says so, and S3 refuses it if another account does (default: no check)")
	f.StringVar(&s.dst.Owner, "dest-owner", "", "the account ID that must own the destination bucket, as --source-owner")
	f.IntVar(&s.listers, "listers", 64, "ListObjectsV2 calls in flight at once")
	f.IntVar(&s.batchKeys, "batch-keys", 100, "most keys per work message (messages also stay under 240KiB)")
}

func (s *source) validate(p *cli.Problems) {
	for flag, owner := range map[string]string{"source-owner": s.src.Owner, "dest-owner": s.dst.Owner} {
		if owner != "" && !accountID.MatchString(owner) {
			p.Addf("--%s %q: an AWS account ID is 12 digits", flag, owner)
		}
	}
	src, dst := s.src, s.dst // the flags' owner and payer
	var err error
	if s.rawSource == "" {
		p.Addf("--source is required: s3://BUCKET[/PREFIX] to copy from")
	} else if s.src, err = plan.ParseLocation(s.rawSource); err != nil {
		p.Addf("--source: %v", err)
	}
	if s.rawDest == "" {
		p.Addf("--dest is required: s3://BUCKET[/PREFIX] to copy to")
	} else if s.dst, err = plan.ParseLocation(s.rawDest); err != nil {
		p.Addf("--dest: %v", err)
	}
	s.src.Owner, s.src.RequesterPays, s.dst.Owner = src.Owner, src.RequesterPays, dst.Owner
	if s.src.Bucket != "" && s.dst.Bucket != "" {
		if err := plan.CheckPair(s.src, s.dst); err != nil {
			p.Addf("%v", err)
		}
	}
	if s.listers < 1 || s.listers > 1000 {
		p.Addf("--listers %d: use 1 to 1000", s.listers)
	}
	if s.batchKeys < 1 || s.batchKeys > 10000 {
		p.Addf("--batch-keys %d: use 1 to 10000", s.batchKeys)
	}
}

// accountID is the shape of an AWS account ID.
var accountID = regexp.MustCompile(`^[0-9]{12}$`)

// connect finds each bucket's region (unless a flag gave it), takes a
// client of it, and fails with a UsageError when either bucket does not
// exist or cannot be read. Every request from then on says who must own
// each bucket and who pays for it.
func (s *source) connect(ctx context.Context, regions *config.Regions) error {
	s.owners = regions.Owners()
	s.owners.SetPair(s.src.Bucket, ownership.Bucket{Owner: s.src.Owner, RequesterPays: s.src.RequesterPays},
		s.dst.Bucket, ownership.Bucket{Owner: s.dst.Owner, RequesterPays: s.dst.RequesterPays})
	for _, b := range []struct {
		flag string
		loc  *plan.Location
		hint string
		api  **s3.Client
	}{{"source", &s.src, s.srcRegion, &s.srcAPI}, {"dest", &s.dst, s.dstRegion, &s.dstAPI}} {
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

// newSummary starts a plan: a fresh run id, the locations, the start time.
func (s *source) newSummary() *plan.Summary {
	now := time.Now()
	return &plan.Summary{Run: plan.NewRunID(now), Source: s.src, Dest: s.dst, Copy: s.copy, Started: now}
}

// planFrom is what a plan enqueues: everything (the default), the
// difference with the destination (--diff), or a reconciliation file.
type planFrom struct {
	diff       bool
	mirror     bool
	fromFile   string
	checkpoint string
	store      plan.CheckpointStore // where checkpoint is kept, once the ledger is open
	progress   *listing.Progress    // set when a plain listing is checkpointed
	counts     plan.DiffCounts
	deletions  int // deletions in the --from-file file
	lister     *listing.Lister
	paired     *listing.Paired
	// asOf (--as-of) lists the source as it stood at at (zero: as it is).
	asOf string
	at   time.Time
}

func (pf *planFrom) register(f *cli.Flags) {
	f.BoolVar(&pf.diff, "diff", false, "enqueue only what is missing or different in the destination (see docs/design.md, \"What --diff copies\")")
	f.BoolVar(&pf.mirror, "delete", false, "with --diff or --from-file: also delete destination objects that are not in the source (never outside --dest)")
	f.StringVar(&pf.fromFile, "from-file", "", "enqueue exactly the keys of a reconciliation file written by planner verify --out")
	f.StringVar(&pf.checkpoint, "checkpoint", "", "record the plan's progress in this file, or in the ledger with ledger:NAME (a plan run as an ECS task); run the same command again to carry on an interrupted plan")
	f.StringVar(&pf.asOf, "as-of", "", "clone the source as it was at this time, RFC 3339 (e.g. 2026-12-07T10:00:00Z): each key's newest version whose LastModified is not after it, copied by version id; nothing for a key deleted then or not yet written. "+
		"The source must be versioned. A multipart upload's LastModified is when it was initiated, so one initiated before TIME counts as there at TIME, with its final content, once completed (still in flight when the plan lists, it is missed). "+
		"Composes with --diff and --delete (the destination compared with the source at TIME); not with --from-file or --checkpoint (default: now, without versions)")
}

func (pf *planFrom) validate(p *cli.Problems, s *source) {
	if pf.diff && pf.fromFile != "" {
		p.Addf("--diff and --from-file are two ways to choose keys: use one")
	}
	if pf.mirror && !pf.diff && pf.fromFile == "" {
		p.Addf("--delete needs --diff or --from-file: only a comparison knows what the source no longer has")
	}
	if pf.checkpoint != "" && (pf.diff || pf.fromFile != "") {
		p.Addf("--checkpoint goes with a full plan only: a --diff or --from-file plan is simply run again")
	}
	if name, ok := strings.CutPrefix(pf.checkpoint, ledgerCheckpoint); ok {
		if err := ledger.CheckCheckpointName(name); err != nil {
			p.Addf("--checkpoint %s: %v", ledgerCheckpoint, err)
		}
	} else {
		cli.CheckFileDir(p, "checkpoint", pf.checkpoint)
	}
	pf.validateAsOf(p, time.Now())
	if pf.fromFile == "" || s.src.Bucket == "" || s.dst.Bucket == "" {
		return
	}
	f, err := os.Open(pf.fromFile)
	if err != nil {
		p.Addf("--from-file: %v", err)
		return
	}
	defer f.Close()
	if err := plan.ReadRecords(f, s.src, s.dst, func(r plan.Record) error {
		if r.Problem == plan.Extra || (r.Problem == plan.Failed && r.Source == nil) {
			pf.deletions++
		}
		return nil
	}); err != nil {
		p.Addf("--from-file %s: %v", pf.fromFile, err)
	}
}

// validateAsOf parses --as-of and refuses what cannot go with it.
func (pf *planFrom) validateAsOf(p *cli.Problems, now time.Time) {
	if pf.asOf == "" {
		return
	}
	at, err := time.Parse(time.RFC3339, pf.asOf)
	switch {
	case err != nil:
		p.Addf("--as-of %q: an RFC 3339 time, such as 2026-12-07T10:00:00Z or 2026-12-07T11:00:00+01:00", pf.asOf)
		return
	case at.After(now):
		p.Addf("--as-of %s is in the future (this machine's clock says %s): a plan can only clone what the source already was", pf.asOf, now.UTC().Format(time.RFC3339))
	}
	if pf.fromFile != "" {
		p.Addf("--as-of with --from-file: a reconciliation file names keys as they are now, not versions of a time; use --as-of with --diff instead")
	}
	if pf.checkpoint != "" {
		p.Addf("--as-of with --checkpoint: a checkpoint does not record the time, so a resumed plan could mix two; run the --as-of plan again, or with --diff")
	}
	pf.at = at
}

// checkAsOf checks, with --as-of, that the source keeps its history and the
// time is past (connect first).
func (pf *planFrom) checkAsOf(ctx context.Context, s *source) error {
	if pf.at.IsZero() {
		return nil
	}
	err := plan.CheckAsOf(ctx, s.srcAPI, s.src.Bucket, pf.at, time.Now())
	switch {
	case errors.Is(err, plan.ErrNeverVersioned):
		return cli.Usagef("--as-of: %v (enable versioning now and a later plan can go back to times after that)", err)
	case errors.Is(err, plan.ErrFutureTime):
		return cli.Usagef("--as-of: %v", err)
	case err != nil:
		return denied(err, "s3:GetBucketVersioning", bucketARN(s.src.Bucket))
	}
	return nil
}

// srcLister is what the source is listed through: the bucket as it is, or
// (--as-of) as it was.
func (pf *planFrom) srcLister(s *source) listing.API {
	if pf.at.IsZero() {
		return s.srcAPI
	}
	return listing.NewAsOf(s.srcAPI, pf.at)
}

// source builds the plan's source of keys, listing each bucket in its
// region (connect first).
func (pf *planFrom) source(s *source, log zerolog.Logger) plan.Source {
	opts := listing.Options{Listers: s.listers}
	switch {
	case pf.fromFile != "":
		return plan.FileSource(pf.fromFile, s.src, s.dst, pf.mirror)
	case pf.diff:
		pf.paired = s.pairedFrom(pf.srcLister(s), opts)
		return plan.DiffSource(pf.paired, s.comparer(), &pf.counts, pf.mirror)
	}
	opts.Progress = pf.progress
	pf.lister = listing.New(pf.srcLister(s), s.src.Bucket, s.src.Prefix, opts, log)
	return plan.ListSource(pf.lister)
}

// paired lists the source and the destination side by side.
func (s *source) paired(opts listing.Options) *listing.Paired {
	return s.pairedFrom(s.srcAPI, opts)
}

// pairedFrom lists the source through src and the destination side by side.
func (s *source) pairedFrom(src listing.API, opts listing.Options) *listing.Paired {
	return listing.NewPaired(
		listing.Side{API: src, Bucket: s.src.Bucket, Prefix: s.src.Prefix},
		listing.Side{API: s.dstAPI, Bucket: s.dst.Bucket, Prefix: s.dst.Prefix}, opts)
}

// comparer compares a source object with its copy, each in its region;
// with the source as of a time (asOf), a second look at a pair (Recheck)
// reads the source's version then.
func (s *source) comparer() *plan.Comparer {
	c := &plan.Comparer{Src: s.srcAPI, Dst: s.dstAPI, SrcBucket: s.src.Bucket, DstBucket: s.dst.Bucket, Redirects: s.copy.Redirects}
	if s.asOf != nil { // not a nil *AsOf in the interface
		c.AsOf = s.asOf
	}
	return c
}

// describe says how the keys were found, for the plan summary.
func (pf *planFrom) describe(elapsed time.Duration) string {
	how := pf.describeFrom(elapsed)
	if !pf.at.IsZero() {
		how = fmt.Sprintf("as of     %s (each key's version then)\n%s", pf.at.UTC().Format(time.RFC3339Nano), how)
	}
	return how
}

func (pf *planFrom) describeFrom(elapsed time.Duration) string {
	switch {
	case pf.lister != nil:
		st := &pf.lister.Stats
		return fmt.Sprintf("listing   %.2fs, %d requests over %d shards (%d key-range splits)",
			elapsed.Seconds(), st.Requests.Load(), st.Shards.Load(), st.Splits.Load())
	case pf.paired != nil:
		st, c := pf.paired.Stats(), &pf.counts
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
	how := fmt.Sprintf("from      %s, %.2fs", pf.fromFile, elapsed.Seconds())
	if pf.deletions > 0 && !pf.mirror {
		how += fmt.Sprintf("\nskipped   %d deletions in the file (add --delete to enqueue them)", pf.deletions)
	}
	return how
}

// newEstimate counts what a run writing as c will cost, its workers
// copying with the default multipart settings.
func newEstimate(c plan.Copy) *plan.Estimate {
	return &plan.Estimate{Copy: c, Threshold: copier.MaxCopyObjectSize, Now: time.Now(), Parts: func(size int64) int64 {
		part := copier.PartSize(size, copier.DefaultPartSize)
		return (size + part - 1) / part
	}}
}

// listRequests is how many ListObjectsV2 the plan's listing made.
func (pf *planFrom) listRequests() int64 {
	switch {
	case pf.lister != nil:
		return pf.lister.Stats.Requests.Load()
	case pf.paired != nil:
		return pf.paired.Stats().Requests
	}
	return 0
}

// enqueue runs the plan, sending its batches with send; sent may be nil.
func (s *source) enqueue(ctx context.Context, src plan.Source, sum *plan.Summary, send plan.SendFunc, sent plan.SentFunc, log zerolog.Logger) error {
	log.Info().Str("run", sum.Run).Str("source", s.src.String()).Str("dest", s.dst.String()).Msg("planning")
	return plan.Enqueue(ctx, src, sum, plan.Options{MaxKeys: s.batchKeys}, send, sent)
}

// ledgerCheckpoint starts a --checkpoint kept in the ledger:
// ledger:NAME is checkpoints/NAME.json there.
const ledgerCheckpoint = "ledger:"

// checkpointStore is where --checkpoint keeps the plan's progress: the
// file, or the ledger's object.
func (pf *planFrom) checkpointStore(store *ledger.Store) plan.CheckpointStore {
	if name, ok := strings.CutPrefix(pf.checkpoint, ledgerCheckpoint); ok {
		return store.Checkpoint(name)
	}
	return plan.CheckpointFile(pf.checkpoint)
}

// resumable reads a checkpoint and checks it belongs to this plan.
func resumable(cp plan.CheckpointStore, s *source, queueURL string) (*plan.CheckpointState, error) {
	prior, err := plan.ReadCheckpoint(cp)
	if err != nil {
		return nil, cli.Usagef("--checkpoint: %v", err)
	}
	sameBucket := func(a, b plan.Location) bool { return a.Bucket == b.Bucket && a.Prefix == b.Prefix }
	if prior != nil && (!sameBucket(prior.Source, s.src) || !sameBucket(prior.Dest, s.dst) || prior.Queue != queueURL) {
		return nil, cli.Usagef("--checkpoint %s records the plan %s -> %s on %s, not this one: use another checkpoint", cp, prior.Source, prior.Dest, prior.Queue)
	}
	return prior, nil
}

// mode is the plan's mode for the run record.
func (pf *planFrom) mode() string {
	switch {
	case pf.diff:
		return ledger.ModeDiff
	case pf.fromFile != "":
		return ledger.ModeFromFile
	}
	return ledger.ModeFull
}

// runRecord is the ledger's record of the run sum starts.
func (s *source) runRecord(sum *plan.Summary, from *planFrom, queueURL string, opts map[string]string) ledger.Run {
	host, _ := os.Hostname() // "" is fine: the record says where it ran only when it can
	return ledger.Run{
		ID: sum.Run, Source: s.src, Dest: s.dst, Queue: queueURL, Mode: from.mode(), Delete: from.mirror, Copy: s.copy,
		Options: opts, Version: cli.Version(), Host: host, Started: sum.Started.UTC(),
	}
}

// summaryTotals is what the plan counted as enqueued.
func summaryTotals(sum *plan.Summary) ledger.Totals {
	return ledger.Totals{Messages: sum.Messages.Load(), Objects: sum.Objects.Load(), Bytes: sum.Bytes.Load(), Deletes: sum.Deletes.Load()}
}

// sentGroup is what a group of accepted messages holds, for the ledger.
func sentGroup(batch []plan.Body) ([]int64, ledger.Totals) {
	seqs := make([]int64, len(batch))
	var t ledger.Totals
	for i, b := range batch {
		seqs[i] = b.Seq
		t.Messages++
		t.Objects += b.Objects
		t.Bytes += b.Bytes
		if b.Delete {
			t.Deletes += b.Objects
		}
	}
	return seqs, t
}

// sendPlan runs the plan into the work queue and ends the run's record.
// Each group of messages the queue accepts is recorded in the ledger;
// accepted, if not nil, hears of it at once (its error stops the plan), and
// recorded, if not nil, once the ledger holds it. A failed ledger write
// stops the plan too.
func sendPlan(ctx context.Context, s *source, from *planFrom, sum *plan.Summary, work *queue.SQS, runLog *ledger.RunLog,
	accepted func([]plan.Body) error, recorded func([]plan.Body), log zerolog.Logger) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	runLog.OnError = func(err error) { stop(fmt.Errorf("the ledger: %w", err)) }
	sent := func(batch []plan.Body) {
		if accepted != nil {
			if err := accepted(batch); err != nil {
				stop(err)
			}
		}
		seqs, t := sentGroup(batch)
		var then func()
		if recorded != nil {
			then = func() { recorded(batch) }
		}
		runLog.Sent(seqs, t, then)
	}
	err := s.enqueue(ctx, from.source(s, log), sum, sendTo(work, sum.Run), sent, log)
	if endErr := runLog.End(ctx, sum.Seq.Load(), err); endErr != nil && err == nil {
		err = endErr
	}
	return err
}

// sendTo sends a plan's message bodies to the work queue.
func sendTo(work *queue.SQS, run string) plan.SendFunc {
	return func(ctx context.Context, bodies [][]byte) error {
		msgs := make([]queue.Outgoing, len(bodies))
		for i, b := range bodies {
			msgs[i] = queue.Outgoing{Body: b, Run: run, Kind: "batch"}
		}
		return work.Send(ctx, msgs)
	}
}

func printPlan(w io.Writer, sum *plan.Summary, how string, dryRun bool) {
	verb := "enqueued"
	if dryRun {
		verb = "would enqueue (dry run)"
	}
	p := summaryTotals(sum)
	fmt.Fprintf(w, "run       %s\n", sum.Run)
	fmt.Fprintf(w, "source    %s\n", sum.Source)
	fmt.Fprintf(w, "dest      %s\n", sum.Dest)
	fmt.Fprintf(w, "%s %d objects, %s (%d bytes), in %d messages\n", verb, p.Objects-p.Deletes, cli.FormatSize(p.Bytes), p.Bytes, p.Messages)
	if p.Deletes > 0 {
		fmt.Fprintf(w, "deletes   %d destination objects not in the source\n", p.Deletes)
	}
	fmt.Fprintln(w, how)
}

const planUsage = `usage: planner plan --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] --queue-url URL --ledger s3://BUCKET/PREFIX/
                    [--diff [--delete] | --from-file FILE] [--checkpoint FILE] [--as-of TIME] [--dry-run]

Lists the source with many listers at once and sends its keys, in batches,
to the work queue while the listing goes on. With --diff, lists the
destination alongside and sends only what is missing or different there.
With --as-of TIME, lists a versioned source as it was at TIME (from its
versions) and copies those versions, by version id: a clone of the bucket
as of a database snapshot's time, with no freeze. TIME is compared with
each version's LastModified, which for a multipart upload is when it was
initiated, not completed (S3 user guide, "Working with object metadata"):
an upload in flight at TIME counts as there at TIME, with its final
content, once completed; one still in flight when the plan lists is
missed. Choose a TIME uploads in flight then have since finished.
Before sending anything it checks, on a sample key, every permission the
copy needs, and that it can write the run's record in the ledger. Records
the run and every message it sends in the ledger, where planner status
compares them with what the workers did.`

func planCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		s        source
		from     planFrom
		queueURL string
		led      config.Ledger
		dryRun   bool
		profile  string
		conn     config.Connection
	)
	f := cli.NewFlags("planner plan", planUsage, os.Stderr)
	s.register(f)
	s.write.Register(f)
	s.registerLock(f)
	from.register(f)
	f.StringVar(&queueURL, "queue-url", "", "URL of the work queue (required unless --dry-run)")
	led.Register(f, "the run and what it sent are recorded there (required unless --dry-run)")
	f.BoolVar(&dryRun, "dry-run", false, "list and count without sending or recording anything")
	f.StringVar(&profile, "cpu-profile", "", "write a pprof CPU profile of the plan to this file")
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	s.validate(&p)
	s.write.Validate(&p)
	from.validate(&p, &s)
	if queueURL == "" && !dryRun {
		p.Addf("--queue-url is required (or --dry-run to only count)")
	}
	if dryRun && from.checkpoint != "" {
		p.Addf("--checkpoint with --dry-run: a dry run sends nothing to record")
	}
	config.CheckQueueURL(&p, "queue-url", queueURL)
	led.Validate(&p, !dryRun)
	led.CheckApart(&p, "source", s.src)
	led.CheckApart(&p, "dest", s.dst)
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	stopProfile, err := cli.StartCPUProfile(profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	log, awsCfg, err := conn.Open(ctx, s.listers*2+plan.Deciders+plan.Senders)
	if err != nil {
		return err
	}
	regions := conn.AWS.Regions(awsCfg)
	if err := s.connect(ctx, regions); err != nil {
		return err
	}
	if err := from.checkAsOf(ctx, &s); err != nil {
		return err
	}
	if err := s.inspect(ctx, log); err != nil {
		return err
	}
	sum := s.newSummary()
	var store *ledger.Store // a dry run records nothing (and takes no --checkpoint)
	if !dryRun {
		store = led.Open(ctx, regions)
	}
	var prior *plan.CheckpointState
	if from.checkpoint != "" {
		from.store = from.checkpointStore(store)
		if prior, err = resumable(from.store, &s, queueURL); err != nil {
			return err
		}
		if prior != nil && prior.Complete {
			fmt.Fprintf(stdout, "run       %s\nplan already complete (checkpoint %s): nothing to do\n", prior.Run, from.store)
			return nil
		}
		from.progress = listing.NewProgress()
		if prior != nil {
			prior.Resume(sum)
			from.progress = listing.ResumeProgress(prior.Shards)
			log.Info().Str("run", sum.Run).Int64("sent", prior.Sent.Messages).Int("shards", len(prior.Shards)).Msg("resuming an interrupted plan")
		}
	}
	if dryRun {
		sum.Estimate = newEstimate(sum.Copy)
		err := s.enqueue(ctx, from.source(&s, log), sum, func(context.Context, [][]byte) error { return nil }, nil, log)
		printPlan(stdout, sum, from.describe(sum.Finished.Sub(sum.Started)), true)
		sum.Estimate.Print(stdout, from.listRequests())
		return err
	}

	opts := map[string]string{"listers": fmt.Sprint(s.listers), "batch_keys": fmt.Sprint(s.batchKeys)}
	if !from.at.IsZero() {
		opts["as_of"] = from.at.UTC().Format(time.RFC3339Nano)
	}
	rec := s.runRecord(sum, &from, queueURL, opts)
	if prior != nil {
		rec.Planned = ledger.Totals{Messages: prior.Sent.Messages, Objects: prior.Sent.Objects, Bytes: prior.Sent.Bytes}
	}
	if !from.at.IsZero() {
		s.asOf = listing.NewAsOf(s.srcAPI, from.at)
	}
	work, _, runLog, err := beginPlan(ctx, &s, sum, rec, queue.NewSQS(conn.AWS.SQS(awsCfg), queueURL), store, log)
	if err != nil {
		return err
	}
	return runPlan(ctx, stdout, &s, &from, sum, prior, work, runLog, log)
}

// beginPlan checks the work queue and the ledger, records the run, and
// checks on a sample key that the fleet may copy: what every plan that
// sends to a fleet does before sending.
func beginPlan(ctx context.Context, s *source, sum *plan.Summary, rec ledger.Run, work *queue.SQS, store *ledger.Store, log zerolog.Logger) (*queue.SQS, *ledger.Store, *ledger.RunLog, error) {
	if err := config.CheckQueue(ctx, work, "queue-url"); err != nil {
		return nil, nil, nil, err
	}
	if err := store.CheckBucket(ctx); err != nil {
		return nil, nil, nil, config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
	}
	runLog, err := store.BeginRun(ctx, rec)
	if err != nil {
		return nil, nil, nil, config.LedgerError(err, store, "s3:PutObject on "+config.LedgerARN(store, "runs/*"))
	}
	if err := preflight(ctx, s, work, sum, rec.Delete, log); err != nil {
		endEarly(ctx, runLog, fmt.Errorf("preflight: %w", err), log)
		return nil, nil, nil, err
	}
	return work, store, runLog, nil
}

// runPlan sends the plan's batches to the work queue, recording each group
// the queue accepts in the ledger before the checkpoint (if any) counts it
// as sent, and ends the run's record.
func runPlan(ctx context.Context, stdout io.Writer, s *source, from *planFrom, sum *plan.Summary, prior *plan.CheckpointState,
	work *queue.SQS, runLog *ledger.RunLog, log zerolog.Logger) error {
	var cp *plan.Checkpoint
	var recorded func([]plan.Body)
	if from.progress != nil {
		cp = plan.NewCheckpoint(from.store, sum, work.URL(), from.progress, prior)
		sum.Reserve = cp.Reserve
		recorded = cp.Sent
	}
	err := sendPlan(ctx, s, from, sum, work, runLog, nil, recorded, log)
	if cp != nil {
		if cpErr := cp.Finish(err == nil); cpErr != nil && err == nil {
			err = cpErr
		}
	}
	printPlan(stdout, sum, from.describe(sum.Finished.Sub(sum.Started)), false)
	if err != nil {
		return fmt.Errorf("plan %s stopped after %d messages: %w", sum.Run, sum.Messages.Load(), err)
	}
	if n := from.counts.Unknown.Load(); n > 0 {
		return fmt.Errorf("%w: the diff could not inspect %d keys (listed above; enqueued as copies)", cli.ErrMismatch, n)
	}
	return nil
}

// versionSample copies a preflight sample's version at the plan's time,
// as the workers' copies will be (a copy of the current object would leave
// in the destination a key the source may not have had then, and prove
// s3:GetObject where the workers need s3:GetObjectVersion); a sample key
// that held nothing then proves nothing, and the next is tried.
type versionSample struct {
	copies sampleCopier
	asOf   *listing.AsOf
}

func (v versionSample) Copy(ctx context.Context, src copier.Source, dst copier.Target) error {
	then, ok, err := v.asOf.VersionAt(ctx, src.Bucket, src.Key)
	if err != nil {
		return denied(err, "s3:ListBucketVersions", bucketARN(src.Bucket))
	}
	if !ok {
		return fmt.Errorf("%s held nothing at the plan's time", src.Key)
	}
	src.Size, src.ETag, src.StorageClass, src.VersionID = then.Size, then.ETag, then.StorageClass, then.VersionID
	return v.copies.Copy(ctx, src, dst)
}
