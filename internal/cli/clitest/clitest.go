// Package clitest helps the commands' tests: it keeps docs/flags.md the -h
// text of each command (generated, never copied by hand), and checks the
// usage errors their options give.
package clitest

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/s3clone/s3clone/internal/cli"
)

// UpdateEnv, set to 1, makes Section rewrite the doc instead of failing.
const UpdateEnv = "S3CLONE_UPDATE_DOCS"

var stderrMu sync.Mutex

// Help returns what fn, a command run with -h, prints to standard error
// (where the commands print their usage).
func Help(t testing.TB, fn func() error) string {
	t.Helper()
	stderrMu.Lock()
	defer stderrMu.Unlock()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, r); close(done) }()
	ferr := fn()
	os.Stderr = saved
	w.Close()
	<-done
	r.Close()
	if ferr != nil && !errors.Is(ferr, flag.ErrHelp) {
		t.Fatalf("-h: %v", ferr)
	}
	return out.String()
}

// Section checks that the doc at path holds text between the lines
// "<!-- BEGIN name -->" and "<!-- END name -->", in a text block; with
// $S3CLONE_UPDATE_DOCS=1 it writes it there instead.
func Section(t testing.TB, path, name, text string) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- BEGIN "+name+" -->\n", "<!-- END "+name+" -->"
	i, j := bytes.Index(doc, []byte(begin)), bytes.Index(doc, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s has no section %q: add the lines %q and %q where it goes", path, name, strings.TrimSpace(begin), end)
	}
	want := begin + "```text\n" + strings.TrimRight(text, "\n") + "\n```\n"
	if string(doc[i:j]) == want {
		return
	}
	if os.Getenv(UpdateEnv) != "1" {
		t.Fatalf("%s: the section %q is not the -h text of today: run %s=1 go test ./cmd/... to write it", path, name, UpdateEnv)
	}
	updated := append(append(append([]byte{}, doc[:i]...), want...), doc[j:]...)
	if err := os.WriteFile(path, updated, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Usage checks err against what a command's flags should say: nil when
// want is empty, else a usage error (exit 2) saying each of want.
func Usage(t testing.TB, args []string, err error, want ...string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Errorf("%q: %v, want valid", args, err)
		}
		return
	}
	if code := cli.ExitCode(err, io.Discard); code != cli.ExitUsage {
		t.Errorf("%q: %v exits %d, want %d (usage)", args, err, code, cli.ExitUsage)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q: %v\nwant it to say %q", args, err, w)
		}
	}
}
