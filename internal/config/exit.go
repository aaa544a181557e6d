package config

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Exit codes of both binaries.
const (
	ExitOK      = 0 // done; every object copied or skipped
	ExitFailed  = 1 // the run finished, but some objects failed; or verify found differences
	ExitUsage   = 2 // bad usage or configuration: nothing was done
	ExitRuntime = 3 // stopped by an error on the way (network, permissions, interruption)
)

// ErrObjectsFailed is returned by a run that finished with failed objects.
var ErrObjectsFailed = errors.New("some objects could not be copied")

// ErrMismatch is returned by a verification that found differences.
var ErrMismatch = errors.New("the destination does not match the source")

// ExitCode maps a command's error to its exit code and prints it to w.
func ExitCode(err error, w io.Writer) int {
	var usage *UsageError
	switch {
	case err == nil, errors.Is(err, ErrHelp):
		return ExitOK
	case errors.As(err, &usage):
		fmt.Fprintf(w, "error: %v\n(run with -h for every option)\n", err)
		return ExitUsage
	case errors.Is(err, ErrObjectsFailed), errors.Is(err, ErrMismatch):
		fmt.Fprintf(w, "error: %v\n", err)
		return ExitFailed
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(w, "error: interrupted")
		return ExitRuntime
	default:
		fmt.Fprintf(w, "error: %v\n", err)
		return ExitRuntime
	}
}
