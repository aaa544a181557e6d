// Command worker drains an s3clone work queue, copying each batch of keys
// server-side and recording every finished message in the run ledger.
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
		fmt.Println("worker", cli.Version(), runtime.Version())
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	os.Exit(cli.ExitCode(err, os.Stderr))
}
