package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/status"
)

func statusCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		o    status.Options
		led  config.Ledger
		conn config.Connection
	)
	f := cli.NewFlags("planner status", status.Usage, os.Stderr)
	led.Register(f, "the runs to read (required)")
	o.Register(f)
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	led.Validate(&p, true)
	config.CheckQueueURL(&p, "queue-url", o.QueueURL)
	o.Validate(&p)
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	log, awsCfg, err := conn.Open(ctx, 64)
	if err != nil {
		return err
	}
	store := led.Open(ctx, conn.AWS.Regions(awsCfg))
	c := status.Clients{Ledger: store, SQS: conn.AWS.SQS(awsCfg), Log: log}
	if o.ScaleECS != "" {
		c.ECS, c.AutoScaling = ecs.NewFromConfig(awsCfg), applicationautoscaling.NewFromConfig(awsCfg)
	}
	err = status.Run(ctx, o, c, stdout)
	if le := (*status.LedgerError)(nil); errors.As(err, &le) {
		return config.LedgerError(le.Err, store)
	}
	return err
}
