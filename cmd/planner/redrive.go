package main

import (
	"context"
	"io"
	"os"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/redrive"
)

func redriveCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		o    redrive.Options
		conn config.Connection
	)
	f := cli.NewFlags("planner redrive", redrive.Usage, os.Stderr)
	o.Register(f)
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p cli.Problems
	o.Validate(&p)
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	log, awsCfg, err := conn.Open(ctx, 8)
	if err != nil {
		return err
	}
	var store *ledger.Store
	if o.Ledger.Set() {
		store = o.Ledger.Open(ctx, conn.AWS.Regions(awsCfg))
	}
	return o.Run(ctx, conn.AWS.SQS(awsCfg), store, stdout, log)
}
