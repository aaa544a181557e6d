package worker

import (
	"context"

	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/report"
)

// Sender sends messages: *queue.SQS or *queue.Memory.
type Sender interface {
	Send(ctx context.Context, msgs []queue.Outgoing) error
}

// QueueReporter sends one report message per result to a report queue.
type QueueReporter struct{ Queue Sender }

// Report sends results; nil means every one was accepted by the queue.
func (r QueueReporter) Report(ctx context.Context, results []report.Result) error {
	msgs := make([]queue.Outgoing, 0, len(results))
	for _, res := range results {
		body, err := report.Encode(report.Envelope{Kind: report.KindBatch, Batches: []report.Result{res}})
		if err != nil {
			return err
		}
		msgs = append(msgs, queue.Outgoing{Body: body, Run: res.Run, Kind: report.KindBatch})
	}
	return r.Queue.Send(ctx, msgs)
}

// TallyReporter folds results straight into a tally, for a pipeline that
// runs in one process.
type TallyReporter struct{ Tally *report.Tally }

// Report adds results to the tally; it never fails.
func (r TallyReporter) Report(_ context.Context, results []report.Result) error {
	for _, res := range results {
		r.Tally.AddResult(res)
	}
	return nil
}
