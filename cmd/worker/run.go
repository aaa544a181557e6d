package main

import (
	"context"
	"os"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/drain"
)

func run(ctx context.Context, args []string) error {
	var o drain.Options
	f := cli.NewFlags("worker", drain.Usage, os.Stderr)
	o.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return drain.Run(ctx, &o)
}
