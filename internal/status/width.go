package status

import (
	"io"
	"os"

	"golang.org/x/term"
)

// terminalWidth is w's width in columns when w is a terminal, else 0.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}
