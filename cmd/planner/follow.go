package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

func followCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		o    follow.Options
		s    job.Job
		led  config.Ledger
		conn config.Connection
	)
	f := cli.NewFlags("planner follow", follow.Usage, os.Stderr)
	s.Register(f)
	s.Write.Register(f)
	s.RegisterLock(f)
	o.Register(f)
	led.Register(f, "the follow's run, its progress and the cutovers' marks are recorded there (required)")
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	if o.Unsubscribe {
		var err error
		if s.Src, err = plan.ParseLocation(s.RawSource); err != nil {
			p.Addf("--source: %v", err)
		}
		led.Validate(&p, false)
	} else {
		s.Validate(&p)
		s.Write.Validate(&p)
		led.Validate(&p, true)
		led.CheckApart(&p, "source", s.Src)
		led.CheckApart(&p, "dest", s.Dst)
		config.CheckQueueURL(&p, "queue-url", o.QueueURL)
	}
	config.CheckQueueURL(&p, "changes-url", o.ChangesURL)
	o.Validate(&p)
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}

	log, awsCfg, err := conn.Open(ctx, 16)
	if err != nil {
		return err
	}
	regions := conn.AWS.Regions(awsCfg)
	sqsAPI := conn.AWS.SQS(awsCfg)
	changes := queue.NewSQS(sqsAPI, o.ChangesURL)
	if err := config.CheckQueue(ctx, changes, "changes-url"); err != nil {
		return err
	}
	c := follow.Clients{Changes: changes, Denied: job.IsDenied, Log: log}
	if o.Unsubscribe {
		if c.SourceAPI, _, err = regions.For(ctx, s.Src.Bucket, s.SrcRegion); err != nil {
			return config.CheckBucketError(err, "source", s.Src.Bucket)
		}
		c.Source = s.Src
	} else {
		if err := s.Connect(ctx, regions); err != nil {
			return err
		}
		if err := s.Inspect(ctx, log); err != nil {
			return err
		}
		work := queue.NewSQS(sqsAPI, o.QueueURL)
		if err := config.CheckQueue(ctx, work, "queue-url"); err != nil {
			return err
		}
		c.Source, c.Dest, c.SourceAPI, c.Copy, c.BatchKeys, c.Work = s.Src, s.Dst, s.SrcAPI, s.Copy, s.BatchKeys, work
		c.Paired, c.Comparer = s.Paired(listing.Options{Listers: s.Listers}), s.Comparer()
	}
	if led.Set() && (!o.Unsubscribe || o.Via == follow.ViaEventBridge) { // --unsubscribe reads it only for EventBridge
		c.Ledger = led.Open(ctx, regions)
	}
	err = follow.Run(ctx, &o, c, stdout)
	if le := (*follow.LedgerError)(nil); errors.As(err, &le) {
		return config.LedgerError(le.Err, c.Ledger)
	}
	return err
}
