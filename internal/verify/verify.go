// Package verify compares a source and its destination key by key (the
// rule of plan --diff) and says how many keys match, are missing,
// different or extra: planner verify.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
)

// Usage is planner verify's usage text.
const Usage = `usage: planner verify --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] [--out FILE]
       planner verify --ledger s3://BUCKET/PREFIX/ [--run-id ID] [--out FILE]

Compares source and destination key by key (the rule of plan --diff) and
prints how many keys match, are missing, different, or extra. --out writes
one JSON line per key that does not match, which plan --from-file enqueues.
With --ledger and no --source or --dest, verifies the source and
destination of a run in the ledger (the latest, unless --run-id says
otherwise); it only reads the ledger. Exits 0 only when the destination
matches the source, 1 when it does not.`

// Options is planner verify's configuration.
type Options struct {
	// Job names the buckets; without them, Ledger and RunID name a run
	// whose buckets to verify.
	Job job.Job
	// Out, if set, is a file for the keys that do not match, one JSON
	// record a line (for plan --from-file).
	Out string
	// JSON prints the counts as JSON.
	JSON   bool
	Ledger config.Ledger
	RunID  string
	Conn   config.Connection
}

// Register defines planner verify's flags.
func (o *Options) Register(f *cli.Flags) {
	o.Job.Register(f)
	f.StringVar(&o.Out, "out", "", "write the keys that do not match to this file, one JSON object a line (for plan --from-file)")
	f.BoolVar(&o.JSON, "json", false, "print the counts as JSON")
	o.Ledger.Register(f, "without --source and --dest: verify a run recorded there")
	f.StringVar(&o.RunID, "run-id", "", "with --ledger: the run to verify (default: the latest)")
	o.Conn.Register(f)
}

// fromLedger reports a verify of a run in the ledger: --ledger, and no
// --source or --dest.
func (o *Options) fromLedger() bool {
	return o.Ledger.Set() && o.Job.RawSource == "" && o.Job.RawDest == ""
}

// Validate returns every problem with the flags as one cli.UsageError
// (nil when there is none), having parsed them.
func (o *Options) Validate() error {
	var p cli.Problems
	o.Ledger.Validate(&p, false)
	fromLedger := o.fromLedger()
	if !fromLedger {
		o.Job.Validate(&p)
	}
	if o.RunID != "" && !fromLedger {
		p.Addf("--run-id goes with --ledger and no --source or --dest: it picks the run whose copy to verify")
	}
	cli.CheckFileDir(&p, "out", o.Out)
	o.Conn.Validate(&p)
	return p.Err()
}

// Run compares the buckets o names and prints the counts to stdout (as
// JSON with o.JSON), writing the keys that do not match to o.Out. Validate
// o first. It returns an error wrapping cli.ErrMismatch when the
// destination does not match, or some keys could not be inspected.
func Run(ctx context.Context, o *Options, stdout io.Writer) error {
	s := &o.Job
	log, awsCfg, err := o.Conn.Open(ctx, s.Listers*2+plan.Deciders)
	if err != nil {
		return err
	}
	regions := o.Conn.AWS.Regions(awsCfg)
	if o.fromLedger() {
		if err := s.FromRun(ctx, o.Ledger.Open(ctx, regions), o.RunID); err != nil {
			return err
		}
		s.SrcRegion, s.DstRegion = s.Src.Region, s.Dst.Region // as the planner found them
	}
	if err := s.Connect(ctx, regions); err != nil {
		return err
	}
	s.SkipLock = true // verify compares website redirects, not locks
	if err := s.Inspect(ctx, log); err != nil {
		return err
	}
	rec, err := plan.NewRecordFile(o.Out)
	if err != nil {
		return cli.Usagef("--out %s: %v", o.Out, err)
	}
	defer rec.Discard()

	started := time.Now()
	var counts plan.DiffCounts
	if err := plan.Diff(ctx, s.Paired(listing.Options{Listers: s.Listers}), s.Comparer(), &counts, rec.Write); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := rec.Commit(); err != nil {
		return err
	}
	v := newView(s.Src, s.Dst, time.Since(started), &counts, o.Out)
	if o.JSON {
		if err := json.NewEncoder(stdout).Encode(v); err != nil {
			return err
		}
	} else {
		v.print(stdout)
	}
	return v.verdict()
}

// view is what verify prints (and --json encodes).
type view struct {
	Source    string  `json:"source"`
	Dest      string  `json:"dest"`
	Seconds   float64 `json:"seconds"`
	Compared  int64   `json:"compared"`
	Matching  int64   `json:"matching"`
	Missing   int64   `json:"missing"`
	Different int64   `json:"different"`
	Extra     int64   `json:"extra"`
	Unknown   int64   `json:"unknown"`            // could not be inspected
	Vanished  int64   `json:"vanished,omitempty"` // deleted while verified
	Out       string  `json:"out,omitempty"`
}

// newView is the view of a comparison of src with dst that took elapsed,
// counted in counts, its records written to out.
func newView(src, dst plan.Location, elapsed time.Duration, counts *plan.DiffCounts, out string) view {
	return view{
		Source: src.String(), Dest: dst.String(), Seconds: elapsed.Seconds(),
		Compared: counts.Compared.Load(), Matching: counts.Matching.Load(), Missing: counts.Missing.Load(),
		Different: counts.Different.Load(), Extra: counts.Extra.Load(), Unknown: counts.Unknown.Load(), Vanished: counts.Vanished.Load(), Out: out,
	}
}

// verdict is nil when the destination matches the source, an error
// wrapping cli.ErrMismatch when it does not.
func (v view) verdict() error {
	if bad := v.Missing + v.Different + v.Extra; bad > 0 {
		return fmt.Errorf("%w: %d of %d keys", cli.ErrMismatch, bad, v.Compared)
	}
	if v.Unknown > 0 {
		return fmt.Errorf("%w: %d of %d keys could not be inspected (see --out, or run with --out FILE)", cli.ErrMismatch, v.Unknown, v.Compared)
	}
	return nil
}

func (v view) print(w io.Writer) {
	fmt.Fprintf(w, "verified  %s -> %s in %.2fs\n", v.Source, v.Dest, v.Seconds)
	fmt.Fprintf(w, "matching  %d\nmissing   %d\ndifferent %d\nextra     %d\n", v.Matching, v.Missing, v.Different, v.Extra)
	if v.Unknown > 0 {
		fmt.Fprintf(w, "unknown   %d (could not be inspected: HeadObject refused; see the reasons in --out)\n", v.Unknown)
	}
	if v.Vanished > 0 {
		fmt.Fprintf(w, "vanished  %d (deleted from the source while being verified: counted extra)\n", v.Vanished)
	}
	if v.Out != "" {
		fmt.Fprintf(w, "written   %s (%d keys to fix: planner plan --from-file %s)\n", v.Out, v.Missing+v.Different+v.Extra+v.Unknown, v.Out)
	}
}
