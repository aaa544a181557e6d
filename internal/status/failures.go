package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// failedReader reads a run's failed entries: *ledger.Reader.
type failedReader interface {
	Failed(ctx context.Context, limit int) ([]*ledger.Entry, error)
}

var _ failedReader = (*ledger.Reader)(nil)

// listFailures prints every failed key of the run, or writes them to out
// as a reconciliation file (only once all were read: never half-written).
func listFailures(ctx context.Context, r failedReader, out string, asJSON bool, stdout io.Writer) error {
	entries, err := r.Failed(ctx, 0)
	if err != nil {
		return err
	}
	rec, err := plan.NewRecordFile(out)
	if err != nil {
		return cli.Usagef("--out %s: %v", out, err)
	}
	defer rec.Discard()
	n := 0
	enc := json.NewEncoder(stdout)
	for _, e := range entries {
		for _, f := range e.Failed {
			n++
			switch {
			case out != "":
				if err := rec.Encode(e.Record(f)); err != nil {
					return err
				}
			case asJSON:
				if err := enc.Encode(f); err != nil {
					return err
				}
			default:
				fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", f.Key, f.Reason, f.Code, f.Detail)
			}
		}
	}
	if err := rec.Commit(); err != nil {
		return err
	}
	if out != "" {
		fmt.Fprintf(stdout, "written   %s (%d failed keys: planner plan --from-file %s)\n", out, n, out)
	}
	return nil
}
