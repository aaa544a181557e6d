package main

import (
	"io"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/internal/cli/clitest"
)

// TestFlagsDoc: docs/flags.md shows each planner command's -h text as it is.
func TestFlagsDoc(t *testing.T) {
	for _, cmd := range []string{"plan", "status", "run", "verify", "cutover", "follow", "redrive", "fleet", "task"} {
		help := clitest.Help(t, func() error { return run(t.Context(), []string{cmd, "-h"}, io.Discard) })
		if !strings.HasPrefix(help, "usage: planner "+cmd) {
			t.Fatalf("planner %s -h printed %q", cmd, help)
		}
		clitest.Section(t, "../../docs/flags.md", "planner "+cmd, help)
	}
}
