package main

import (
	"context"
	"io"
	"os"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/job"
)

func planCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o job.PlanOptions
	f := cli.NewFlags("planner plan", job.PlanUsage, os.Stderr)
	o.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return job.Plan(ctx, &o, stdout)
}
