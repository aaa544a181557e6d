package main

import (
	"context"
	"io"
	"os"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/local"
)

func runCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o local.Options
	f := cli.NewFlags("planner run", local.Usage, os.Stderr)
	o.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return local.Run(ctx, &o, stdout)
}
