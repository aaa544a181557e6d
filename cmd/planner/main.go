// Command planner enumerates a source bucket into batches of keys on a work
// queue (plan), reports a run's progress (status), or runs the whole clone
// in one process (run).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/s3clone/s3clone/internal/cli"
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("planner", cli.Version(), runtime.Version())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	os.Exit(cli.ExitCode(err, os.Stderr))
}
