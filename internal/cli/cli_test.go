package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	good := map[string]Size{"1024": 1024, "8MiB": 8 << 20, "8mib": 8 << 20, "5GiB": 5 << 30, "100MB": 100 << 20, "8mb": 8 << 20, "1KB": 1024, "1.5KiB": 1536, "64M": 64 << 20, "0": 0, "10B": 10}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "ten", "5XB", "1e30GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted it", in)
		}
	}
	if s := FormatSize(5 << 30); s != "5GiB" {
		t.Errorf("FormatSize(5GiB) = %s", s)
	}
}

func TestEnvironmentTwins(t *testing.T) {
	t.Setenv("S3CLONE_CONCURRENCY", "7")
	t.Setenv("S3CLONE_PART_SIZE", "8MiB")
	t.Setenv("S3CLONE_IDLE_EXIT", "5s")
	var (
		concurrency int
		partSize    Size
		idleExit    time.Duration
	)
	f := NewFlags("t", "usage", io.Discard)
	f.IntVar(&concurrency, "concurrency", 1, "")
	f.SizeVar(&partSize, "part-size", 1<<20, "")
	f.DurationVar(&idleExit, "idle-exit", 0, "")
	if err := f.Parse([]string{"--concurrency", "9"}); err != nil {
		t.Fatal(err)
	}
	if concurrency != 9 {
		t.Errorf("the flag should win over $S3CLONE_CONCURRENCY: got %d", concurrency)
	}
	if partSize != 8<<20 || idleExit != 5*time.Second {
		t.Errorf("environment not read: part size %d, idle exit %s", partSize, idleExit)
	}
}

func TestBadEnvironmentIsAUsageError(t *testing.T) {
	t.Setenv("S3CLONE_PART_SIZE", "lots")
	var partSize Size
	f := NewFlags("t", "usage", io.Discard)
	f.SizeVar(&partSize, "part-size", 1<<20, "")
	err := f.Parse(nil)
	var u *UsageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "S3CLONE_PART_SIZE") {
		t.Fatalf("got %v, want a usage error naming the variable", err)
	}
	if code := ExitCode(err, io.Discard); code != ExitUsage {
		t.Fatalf("exit code %d, want %d", code, ExitUsage)
	}
}

// TestExitCodes: each kind of error ends with its exit code; planner task
// passes on the exit code of the command it ran in ECS, wrapped or not.
func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{Usagef("bad"), ExitUsage},
		{fmt.Errorf("run: %w", ErrObjectsFailed), ExitFailed},
		{fmt.Errorf("fleet: %w", ErrNotReady), ExitFailed},
		{&CodeError{Code: 2, Err: errors.New("the task's planner exited 2")}, 2},
		{fmt.Errorf("task: %w", &CodeError{Code: 1, Err: ErrMismatch}), 1},
		{errors.New("network"), ExitRuntime},
	} {
		if got := ExitCode(c.err, io.Discard); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestFlagsTakeACommandAfterDashDash: planner task takes the command to
// run after "--"; without "--", and for every other command, an argument
// that is not a flag is refused.
func TestFlagsTakeACommandAfterDashDash(t *testing.T) {
	for _, c := range []struct {
		command bool
		args    []string
		want    []string // nil: refused
	}{
		{true, []string{"--stack", "s", "--", "cutover", "--workers", "8"}, []string{"cutover", "--workers", "8"}},
		{true, []string{"--stack", "s", "cutover"}, nil},
		{false, []string{"--stack", "s", "--", "cutover"}, nil},
	} {
		f := NewFlags("t", "", io.Discard)
		f.Command = c.command
		f.String("stack", "", "")
		err := f.Parse(c.args)
		switch {
		case c.want == nil && err == nil:
			t.Errorf("Parse(%q) with Command %v took %q", c.args, c.command, f.Args())
		case c.want != nil && (err != nil || strings.Join(f.Args(), " ") != strings.Join(c.want, " ")):
			t.Errorf("Parse(%q) = %v, args %q; want %q", c.args, err, f.Args(), c.want)
		}
	}
}

// TestLogDurationsReadAsDurations: idle=3.1s, not 3100 (milliseconds).
func TestLogDurationsReadAsDurations(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := (&Logging{Level: "info", Format: "json"}).Logger(f)
	log.Info().Dur("idle", 3100*time.Millisecond).Msg("x")
	b, err := os.ReadFile(f.Name())
	if err != nil || !strings.Contains(string(b), `"idle":"3.1s"`) {
		t.Fatalf("log line %s (%v), want \"idle\":\"3.1s\"", b, err)
	}
}
