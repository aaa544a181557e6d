package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
)

const verifyUsage = `usage: planner verify --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] [--out FILE]
       planner verify --ledger s3://BUCKET/PREFIX/ [--run-id ID] [--out FILE]

Compares source and destination key by key (the rule of plan --diff) and
prints how many keys match, are missing, different, or extra. --out writes
one JSON line per key that does not match, which plan --from-file enqueues.
With --ledger and no --source or --dest, verifies the source and
destination of a run in the ledger (the latest, unless --run-id says
otherwise); it only reads the ledger. Exits 0 only when the destination
matches the source, 1 when it does not.`

func verifyCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		s      source
		out    string
		asJSON bool
		led    config.Ledger
		runID  string
		conn   config.Connection
	)
	f := cli.NewFlags("planner verify", verifyUsage, os.Stderr)
	s.register(f)
	f.StringVar(&out, "out", "", "write the keys that do not match to this file, one JSON object a line (for plan --from-file)")
	f.BoolVar(&asJSON, "json", false, "print the counts as JSON")
	led.Register(f, "without --source and --dest: verify a run recorded there")
	f.StringVar(&runID, "run-id", "", "with --ledger: the run to verify (default: the latest)")
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	led.Validate(&p, false)
	fromLedger := led.Set() && s.rawSource == "" && s.rawDest == ""
	if !fromLedger {
		s.validate(&p)
	}
	if runID != "" && !fromLedger {
		p.Addf("--run-id goes with --ledger and no --source or --dest: it picks the run whose copy to verify")
	}
	cli.CheckFileDir(&p, "out", out)
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	log, awsCfg, err := conn.Open(ctx, s.listers*2+plan.Deciders)
	if err != nil {
		return err
	}
	regions := conn.AWS.Regions(awsCfg)
	if fromLedger {
		if err := s.fromRun(ctx, led.Open(ctx, regions), runID); err != nil {
			return err
		}
		s.srcRegion, s.dstRegion = s.src.Region, s.dst.Region // as the planner found them
	}
	if err := s.connect(ctx, regions); err != nil {
		return err
	}
	s.skipLock = true // verify compares website redirects, not locks
	if err := s.inspect(ctx, log); err != nil {
		return err
	}
	rec, err := plan.NewRecordFile(out)
	if err != nil {
		return cli.Usagef("--out %s: %v", out, err)
	}
	defer rec.Discard()

	started := time.Now()
	var counts plan.DiffCounts
	if err := plan.Diff(ctx, s.paired(listing.Options{Listers: s.listers}), s.comparer(), &counts, rec.Write); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := rec.Commit(); err != nil {
		return err
	}
	v := verifyView{
		Source: s.src.String(), Dest: s.dst.String(), Seconds: time.Since(started).Seconds(),
		Compared: counts.Compared.Load(), Matching: counts.Matching.Load(), Missing: counts.Missing.Load(),
		Different: counts.Different.Load(), Extra: counts.Extra.Load(), Unknown: counts.Unknown.Load(), Vanished: counts.Vanished.Load(), Out: out,
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(v); err != nil {
			return err
		}
	} else {
		v.print(stdout)
	}
	if bad := v.Missing + v.Different + v.Extra; bad > 0 {
		return fmt.Errorf("%w: %d of %d keys", cli.ErrMismatch, bad, v.Compared)
	}
	if v.Unknown > 0 {
		return fmt.Errorf("%w: %d of %d keys could not be inspected (see --out, or run with --out FILE)", cli.ErrMismatch, v.Unknown, v.Compared)
	}
	return nil
}

// fromRun takes the source and destination of a run in the ledger (the
// latest when runID is ""), with the default listers.
func (s *source) fromRun(ctx context.Context, store *ledger.Store, runID string) error {
	var err error
	if runID == "" {
		if runID, err = store.Latest(ctx); errors.Is(err, ledger.ErrNotFound) {
			return cli.Usagef("--ledger %s holds no run to verify: give --source and --dest", store)
		} else if err != nil {
			return config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
		}
	}
	run, err := store.Run(ctx, runID)
	if errors.Is(err, ledger.ErrNotFound) {
		return cli.Usagef("--run-id %s: no such run in %s", runID, store)
	} else if err != nil {
		return config.LedgerError(err, store, "s3:GetObject on "+config.LedgerARN(store, "runs/*"))
	}
	s.src, s.dst = run.Source, run.Dest
	return nil
}

type verifyView struct {
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

func (v verifyView) print(w io.Writer) {
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
