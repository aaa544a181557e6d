package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/s3clone/s3clone/test/testbed"
)

// progressLine is the progress line as drawn: a carriage return, an erase,
// then the counts.
var progressLine = regexp.MustCompile(`\r\x1b\[K(\d[\d,]*)/([\d,]+)\+? objects`)

// TestRunShowsProgressOnATerminal runs planner run as a person would, on a
// real pseudo-terminal, through a proxy that makes the copies take seconds:
// one progress line is redrawn in place, counting up to every object; log
// lines never land inside it; the last counts stay above the summary. The
// same run in a pipe, or with --log-format json on the terminal, has no
// escape sequences and every stderr line is a JSON log record.
func TestRunShowsProgressOnATerminal(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src := env.Bucket(t)
	var objs []testbed.Object
	for i := range 300 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("img/2026/%03d.jpg", i), Body: []byte(strings.Repeat("x", 100+i))})
	}
	env.Put(t, src, objs)
	slow := env.Slow(t, 40*time.Millisecond)
	// 300 copies 4 at a time, 40ms each: about 3s, six redraws or more.
	args := func(dst string, more ...string) []string {
		return append([]string{"run", "--source", "s3://" + src, "--dest", "s3://" + dst, "--concurrency", "4", "--batch-keys", "10"}, more...)
	}

	t.Run("terminal", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(bin, "planner"), args(env.Bucket(t))...)
		cmd.Env = env.EnvironFor(slow.URL)
		screen, code := onTerminal(t, cmd)
		if code != 0 {
			t.Fatalf("exit %d:\n%q", code, screen)
		}
		draws := progressLine.FindAllStringSubmatch(screen, -1)
		if len(draws) < 3 {
			t.Fatalf("%d progress draws, want several:\n%q", len(draws), screen)
		}
		last := draws[len(draws)-1]
		if last[1] != "300" || last[2] != "300" {
			t.Errorf("last progress draw %q, want 300/300", last[0])
		}
		// Each log line starts at the left edge: at the start of the
		// output, after a newline, or after the line was erased.
		logLines := regexp.MustCompile(`(?:\x1b\[\d+m)?\d\d:\d\d:\d\d\D`).FindAllStringIndex(screen, -1)
		if len(logLines) < 2 {
			t.Errorf("%d log lines on the terminal, want some:\n%q", len(logLines), screen)
		}
		for _, m := range logLines {
			if before := screen[:m[0]]; before != "" && !strings.HasSuffix(before, "\n") && !strings.HasSuffix(before, "\r\x1b[K") {
				t.Errorf("a log line drawn inside the progress line: %q", screen[max(0, m[0]-80):m[1]])
			}
		}
		// The last counts stay, ended by a newline, above the summary.
		tail := screen[strings.LastIndex(screen, "\r\x1b[K"):]
		if !strings.Contains(tail, "300/300 objects 100%") || !strings.Contains(tail, "done  0 failed\r\n") ||
			!strings.Contains(tail, "copied") || !strings.Contains(tail, "elapsed") {
			t.Errorf("the end of the screen is %q: want the last progress line, then the summary", tail)
		}
		if !strings.Contains(screen, "s3clone starting") || !strings.Contains(screen, "version=") {
			t.Errorf("no first log line with the version:\n%q", screen)
		}
	})

	machine := func(t *testing.T, stderr string) {
		t.Helper()
		// (A terminal writes each "\n" as "\r\n"; no other "\r" may come.)
		if strings.Contains(stderr, "\x1b") || strings.Contains(strings.ReplaceAll(stderr, "\r\n", "\n"), "\r") {
			t.Errorf("escape sequences in machine-readable output:\n%q", stderr)
		}
		var first map[string]any
		for i, line := range strings.Split(strings.TrimSpace(strings.ReplaceAll(stderr, "\r\n", "\n")), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("stderr line %q is not a JSON log record: %v", line, err)
			}
			if i == 0 {
				first = rec
			}
		}
		if first["message"] != "s3clone starting" || first["version"] == nil || first["command"] != "planner run" {
			t.Errorf("first log record %v: want s3clone starting, with the version and the command", first)
		}
	}
	t.Run("pipe", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(bin, "planner"), args(env.Bucket(t))...)
		cmd.Env = env.EnvironFor(slow.URL)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v:\n%s", err, stderr.String())
		}
		machine(t, stderr.String())
		if !strings.Contains(stdout.String(), "copied") {
			t.Errorf("no summary on stdout:\n%s", stdout.String())
		}
	})
	t.Run("json on a terminal", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(bin, "planner"), args(env.Bucket(t), "--log-format", "json")...)
		cmd.Env = env.EnvironFor(slow.URL)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout // the summary apart; the logs on the terminal
		screen, code := onTerminal(t, cmd)
		if code != 0 {
			t.Fatalf("exit %d:\n%q", code, screen)
		}
		machine(t, screen)
	})
}

// onTerminal runs cmd with a pseudo-terminal for every stream it has not
// got, and returns what it wrote there (as a terminal shows it: "\n"
// becomes "\r\n") and its exit code.
func onTerminal(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	if cmd.Stdin == nil {
		cmd.Stdin = tty
	}
	if cmd.Stdout == nil {
		cmd.Stdout = tty
	}
	cmd.Stderr = tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		tty.Close()
		t.Fatal(err)
	}
	tty.Close() // the child holds it now; reads end at its exit
	var screen bytes.Buffer
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(&screen, ptmx)
		read <- err
	}()
	waitErr := cmd.Wait()
	select {
	case err := <-read:
		// Linux ends a pty's reads with EIO once the last writer closed.
		if err != nil && !errors.Is(err, syscall.EIO) {
			t.Fatalf("reading the terminal: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal stayed open 10s after the process ended")
	}
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(waitErr, &ee) {
		code = ee.ExitCode()
	} else if waitErr != nil {
		t.Fatal(waitErr)
	}
	return screen.String(), code
}
