package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/queue"
)

const redriveUsage = `usage: planner redrive --dlq-url URL --queue-url URL [--max N]

Moves dead-lettered messages back to the work queue after the cause is
fixed (a permission granted, a bucket created). Each message is sent to the
work queue before it is deleted from the dead-letter queue, so none is lost;
a crash in between leaves a duplicate, which the workers redo and status
counts once.`

func redriveCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		dlqURL, queueURL string
		limit            int
		conn             config.Connection
	)
	f := config.NewFlags("planner redrive", redriveUsage, os.Stderr)
	f.StringVar(&dlqURL, "dlq-url", "", "URL of the dead-letter queue to empty (required)")
	f.StringVar(&queueURL, "queue-url", "", "URL of the work queue to move the messages to (required)")
	f.IntVar(&limit, "max", 0, "move at most this many messages (0: all)")
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p config.Problems
	if dlqURL == "" {
		p.Addf("--dlq-url is required: the dead-letter queue to move messages from")
	}
	if queueURL == "" {
		p.Addf("--queue-url is required: the work queue to move them to")
	}
	if dlqURL != "" && dlqURL == queueURL {
		p.Addf("--dlq-url and --queue-url are the same queue")
	}
	config.CheckQueueURL(&p, "dlq-url", dlqURL)
	config.CheckQueueURL(&p, "queue-url", queueURL)
	if limit < 0 {
		p.Addf("--max %d: must not be negative", limit)
	}
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	log, awsCfg, err := conn.Open(ctx, 8)
	if err != nil {
		return err
	}
	client := conn.AWS.SQS(awsCfg)
	dlq, work := queue.NewSQS(client, dlqURL), queue.NewSQS(client, queueURL)
	for _, q := range []struct {
		q    *queue.SQS
		flag string
	}{{dlq, "dlq-url"}, {work, "queue-url"}} {
		if err := config.CheckQueue(ctx, q.q, q.flag); err != nil {
			return err
		}
	}
	moved, err := queue.Move(ctx, dlq, work, limit, time.Second)
	fmt.Fprintf(stdout, "moved %d messages from %s to %s\n", moved, dlqURL, queueURL)
	if err != nil {
		log.Error().Err(err).Msg("redrive stopped")
		return fmt.Errorf("redrive stopped after %d messages: %w", moved, err)
	}
	return nil
}
