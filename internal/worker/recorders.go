package worker

import (
	"context"
	"strconv"

	"github.com/s3clone/s3clone/internal/ledger"
)

var _ Recorder = (*ledger.Journal)(nil)

// TallyRecorder folds entries straight into a tally, for a pipeline that
// runs in one process, and then hands them to Next, if any (the ledger,
// when the run also keeps one).
type TallyRecorder struct {
	Tally *ledger.Tally
	Next  Recorder
}

// Record records e with Next, then adds it to the tally.
func (r TallyRecorder) Record(ctx context.Context, e *ledger.Entry) error {
	if r.Next != nil {
		if err := r.Next.Record(ctx, e); err != nil {
			return err
		}
	}
	r.Tally.AddEntry(e.Journal+"/"+strconv.FormatInt(e.Seq, 10)+"/"+e.Finished.String(), e)
	return nil
}
