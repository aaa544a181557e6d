package main

import (
	"context"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/fleet"
)

func taskCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		o    fleet.TaskOptions
		conn config.Connection
	)
	f := cli.NewFlags("planner task", fleet.TaskUsage, os.Stderr)
	o.Register(f)
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	o.Command = f.Args()
	var p cli.Problems
	o.Validate(&p)
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	_, awsCfg, err := conn.Open(ctx, 4)
	if err != nil {
		return err
	}
	return o.Run(ctx, cloudformation.NewFromConfig(awsCfg), ecs.NewFromConfig(awsCfg), cloudwatchlogs.NewFromConfig(awsCfg), stdout)
}
