package status

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/queue"
)

// ReadDepth reads the work queue's depth and its dead-letter queue's; a
// failure is shown, not fatal.
func ReadDepth(ctx context.Context, client queue.API, url string, log zerolog.Logger) *Depth {
	d := &Depth{URL: url}
	work, err := queue.NewSQS(client, url).Depth(ctx)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	d.Visible, d.InFlight = work.Visible, work.InFlight
	if work.DeadLetterARN == "" {
		return d
	}
	dlq, err := queue.FromARN(ctx, client, work.DeadLetterARN)
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the dead-letter queue")
		return d
	}
	dd, err := dlq.Depth(ctx)
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the dead-letter queue")
		return d
	}
	n := dd.Visible + dd.InFlight
	d.DeadLettered = &n
	return d
}
