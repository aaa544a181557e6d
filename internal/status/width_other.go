//go:build !unix

package status

import "io"

// terminalWidth is 0 (unknown) where the width cannot be asked for.
func terminalWidth(io.Writer) int { return 0 }
