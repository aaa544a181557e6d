package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/s3clone/s3clone/internal/cli"
)

const topUsage = `usage: planner COMMAND [flags]

Commands:
  plan     list the source and enqueue batches of keys for workers
  status   show a run's progress: planned vs copied, skipped, failed; rate, ETA, queue depth
  run      plan and copy in this one process, with an in-memory queue
  verify   compare source and destination key by key; exit 0 only when they match
  cutover  the frozen window: plan the difference, wait for the fleet, exit 0 only when all of it was done
  follow   keep the destination seconds behind the source from S3's events, until the freeze
  redrive  move dead-lettered messages back to the work queue once their cause is fixed
  fleet    warm the worker fleet before the freeze (ECS), and release it after
  task     run one of these commands as an ECS task in the stack, and wait for its verdict

Run "planner COMMAND -h" for a command's flags.`

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, topUsage)
		return cli.Usagef("no command given: use plan, status, run, verify, redrive, cutover, follow, fleet or task")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "plan":
		return planCommand(ctx, rest, stdout)
	case "status":
		return statusCommand(ctx, rest, stdout)
	case "run":
		return runCommand(ctx, rest, stdout)
	case "verify":
		return verifyCommand(ctx, rest, stdout)
	case "redrive":
		return redriveCommand(ctx, rest, stdout)
	case "cutover":
		return cutoverCommand(ctx, rest, stdout)
	case "follow":
		return followCommand(ctx, rest, stdout)
	case "fleet":
		return fleetCommand(ctx, rest, stdout)
	case "task":
		return taskCommand(ctx, rest, stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, topUsage)
		return nil
	}
	fmt.Fprintln(os.Stderr, topUsage)
	return cli.Usagef("unknown command %q: use plan, status, run, verify, redrive, cutover, follow, fleet or task", cmd)
}
