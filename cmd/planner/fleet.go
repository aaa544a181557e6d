package main

import (
	"context"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/fleet"
)

func fleetCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		o    fleet.Options
		led  config.Ledger
		conn config.Connection
	)
	f := cli.NewFlags("planner fleet", fleet.Usage, os.Stderr)
	o.Register(f)
	led.Register(f, "the hold on the fleet is recorded there, for status and the cutover (required)")
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	o.Validate(&p)
	led.Validate(&p, true)
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	_, awsCfg, err := conn.Open(ctx, 4)
	if err != nil {
		return err
	}
	store := led.Open(ctx, conn.AWS.Regions(awsCfg))
	if err := store.CheckBucket(ctx); err != nil {
		return config.LedgerError(err, store)
	}
	return o.Run(ctx, ecs.NewFromConfig(awsCfg), applicationautoscaling.NewFromConfig(awsCfg), store, stdout)
}
