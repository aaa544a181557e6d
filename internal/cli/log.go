package cli

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// Logging is the log flags shared by both binaries.
type Logging struct {
	Level  string
	Format string
	// Through, if set, is where log lines go instead of straight to the
	// file: a progress line that keeps them above it.
	Through io.Writer

	command string // what the first log line names
}

// Register defines --log-level and --log-format.
func (l *Logging) Register(f *Flags) {
	l.command = f.Name()
	f.StringVar(&l.Level, "log-level", "info", "log level: debug, info, warn or error (debug logs every object)")
	f.StringVar(&l.Format, "log-format", "auto", "log format: json, console, or auto (console on a terminal, else json)")
}

// Validate adds a problem for an unknown level or format.
func (l *Logging) Validate(p *Problems) {
	if _, err := zerolog.ParseLevel(l.Level); err != nil || l.Level == "" {
		p.Addf("--log-level %q: use debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "auto", "json", "console":
	default:
		p.Addf("--log-format %q: use json, console or auto", l.Format)
	}
}

// Logger returns a logger writing to w (normally stderr).
func (l *Logging) Logger(w *os.File) zerolog.Logger {
	level, err := zerolog.ParseLevel(l.Level)
	if err != nil || l.Level == "" {
		level = zerolog.InfoLevel
	}
	// Durations read as durations, "idle=3.1s", in text and JSON alike
	// (Go's time.ParseDuration reads them back).
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	var out io.Writer = w
	if l.Through != nil {
		out = l.Through
	}
	if l.Console(w) {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// Console says whether logs to w are for a person: --log-format console,
// or auto on a terminal.
func (l *Logging) Console(w io.Writer) bool {
	return l.Format == "console" || (l.Format == "auto" && IsTerminal(w))
}

// IsTerminal says whether w is a terminal (a person reads it).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// StartCPUProfile writes a pprof CPU profile to path until stop is called;
// with an empty path it does nothing.
func StartCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, Usagef("--cpu-profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// Command is the command the flags were registered for (what the first log
// line names).
func (l *Logging) Command() string { return l.command }
