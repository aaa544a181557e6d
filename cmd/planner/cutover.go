package main

import (
	"context"
	"io"
	"os"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/cutover"
)

func cutoverCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o cutover.Options
	f := cli.NewFlags("planner cutover", cutover.Usage, os.Stderr)
	o.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return cutover.Run(ctx, &o, stdout)
}
