package main

import (
	"context"
	"io"
	"os"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/verify"
)

func verifyCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o verify.Options
	f := cli.NewFlags("planner verify", verify.Usage, os.Stderr)
	o.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return verify.Run(ctx, &o, stdout)
}
