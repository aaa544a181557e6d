package cli

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

// ErrNotReady is returned when the fleet did not reach the size asked for
// in time (planner fleet).
var ErrNotReady = errors.New("the fleet is not ready")

// CodeError ends a command with a given exit code: planner task passes
// on the exit code of the command it ran in ECS.
type CodeError struct {
	Code int
	Err  error
}

func (e *CodeError) Error() string { return e.Err.Error() }
func (e *CodeError) Unwrap() error { return e.Err }

// ExitCode maps a command's error to its exit code and prints it to w.
func ExitCode(err error, w io.Writer) int {
	var usage *UsageError
	var coded *CodeError
	switch {
	case err == nil, errors.Is(err, ErrHelp):
		return ExitOK
	case errors.As(err, &coded):
		fmt.Fprintf(w, "error: %v\n", err)
		return coded.Code
	case errors.As(err, &usage):
		fmt.Fprintf(w, "error: %v\n(run with -h for every option)\n", err)
		return ExitUsage
	case errors.Is(err, ErrObjectsFailed), errors.Is(err, ErrMismatch), errors.Is(err, ErrNotReady):
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
