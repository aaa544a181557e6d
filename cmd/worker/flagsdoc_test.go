package main

import (
	"testing"

	"github.com/s3clone/s3clone/internal/cli/clitest"
)

// TestFlagsDoc: docs/flags.md shows the worker's -h text as it is.
func TestFlagsDoc(t *testing.T) {
	help := clitest.Help(t, func() error { return run(t.Context(), []string{"-h"}) })
	if len(help) < 200 {
		t.Fatalf("worker -h printed %q", help)
	}
	clitest.Section(t, "../../docs/flags.md", "worker", help)
}
