// Package config parses the command lines of the planner and the worker:
// flags with environment-variable twins, sizes such as 64MiB, validation
// that names every problem at once, the AWS clients and the logger.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every flag's environment variable: --queue-url is
// S3CLONE_QUEUE_URL.
const EnvPrefix = "S3CLONE_"

// UsageError is bad usage or configuration; the binaries exit 2 on it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Flags is a flag set whose flags also read S3CLONE_* environment variables;
// a flag on the command line wins over its variable.
type Flags struct {
	*flag.FlagSet
	usage string
	out   io.Writer
	// Command is set by a command that takes another command after "--"
	// (planner task): the arguments after it are Args, not an error.
	Command bool
}

// NewFlags returns an empty flag set for a command; usage is printed above
// the flag list on -h.
func NewFlags(name, usage string, out io.Writer) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse errors come back as one line; the full usage is for -h only.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &Flags{FlagSet: fs, usage: usage, out: out}
}

// PrintUsage writes the command's usage and every flag to its output.
func (f *Flags) PrintUsage() {
	fmt.Fprintf(f.out, "%s\n\nFlags (each also read from the environment variable shown):\n", strings.TrimSpace(f.usage))
	f.SetOutput(f.out)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
}

// EnvName is the environment variable twin of a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func help(name, usage string) string {
	return fmt.Sprintf("%s [$%s]", usage, EnvName(name))
}

// StringVar, IntVar, BoolVar, Float64Var, DurationVar and SizeVar define flags whose help
// names their environment variable.
func (f *Flags) StringVar(p *string, name, value, usage string) {
	f.FlagSet.StringVar(p, name, value, help(name, usage))
}

func (f *Flags) IntVar(p *int, name string, value int, usage string) {
	f.FlagSet.IntVar(p, name, value, help(name, usage))
}

func (f *Flags) BoolVar(p *bool, name string, value bool, usage string) {
	f.FlagSet.BoolVar(p, name, value, help(name, usage))
}

func (f *Flags) Float64Var(p *float64, name string, value float64, usage string) {
	f.FlagSet.Float64Var(p, name, value, help(name, usage))
}

func (f *Flags) DurationVar(p *time.Duration, name string, value time.Duration, usage string) {
	f.FlagSet.DurationVar(p, name, value, help(name, usage))
}

func (f *Flags) SizeVar(p *Size, name string, value Size, usage string) {
	*p = value
	f.FlagSet.Var(p, name, help(name, usage+"; units are binary: 8MB, 8M and 8MiB are all 8 MiB, as in the aws CLI"))
}

// dashDash reports whether the last n of args follow a "--".
func dashDash(args []string, n int) bool {
	i := len(args) - n - 1
	return i >= 0 && args[i] == "--"
}

// ErrHelp is returned by Parse when -h or --help was asked for.
var ErrHelp = flag.ErrHelp

// Parse reads args, then the environment for every flag not given on the
// command line. Errors are *UsageError, or ErrHelp.
func (f *Flags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.PrintUsage()
			return ErrHelp
		}
		return &UsageError{Err: err}
	}
	if f.NArg() > 0 && !(f.Command && dashDash(args, f.NArg())) {
		return Usagef("unexpected argument %q: every option is a --flag (see -h)", f.Arg(0))
	}
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var errs []error
	f.VisitAll(func(fl *flag.Flag) {
		if set[fl.Name] {
			return
		}
		v, ok := os.LookupEnv(EnvName(fl.Name))
		if !ok {
			return
		}
		if err := fl.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("$%s=%q: %v", EnvName(fl.Name), v, err))
		}
	})
	if len(errs) > 0 {
		return &UsageError{Err: errors.Join(errs...)}
	}
	return nil
}

// Size is a number of bytes, written as 1048576, 1MiB, 64MiB, 5GiB or 100MB.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	// As the aws CLI reads multipart_chunksize and multipart_threshold:
	// 8MB is 8 MiB, which is also what S3's part limits are written in.
	{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"tb", 1 << 40},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseSize parses a size such as 8MiB, 5GiB, 8MB or 1024. Units are
// binary, whether written MiB, MB or M (the aws CLI's sense).
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || t == "" {
		return 0, fmt.Errorf("%q is not a size: write bytes or a number with a unit, such as 8MiB, 5GiB or 8MB (binary units: 8MB is 8 MiB, as in the aws CLI)", s)
	}
	v := n * float64(mult)
	if v > float64(1<<62) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(v), nil
}

func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

func (s *Size) String() string {
	if s == nil {
		return "0"
	}
	return FormatSize(int64(*s))
}

// FormatSize writes n bytes in the largest binary unit that divides it, or
// with two decimals in the largest unit below it.
func FormatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for i < len(units)-1 && n >= 1<<(10*(i+1)) {
		i++
	}
	if i == 0 {
		return strconv.FormatInt(n, 10) + "B"
	}
	div := int64(1) << (10 * i)
	if n%div == 0 {
		return strconv.FormatInt(n/div, 10) + units[i]
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 2, 64) + units[i]
}

// Problems collects configuration problems to report all at once.
type Problems []string

// Addf records a problem.
func (p *Problems) Addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Err is nil without problems, else a *UsageError listing them.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return &UsageError{Err: errors.New(strings.Join(p, "\n"))}
}

// CheckFileDir adds a problem when the file a flag names could not be
// written: its directory does not exist. An empty path is no file.
func CheckFileDir(p *Problems, flag, path string) {
	if path == "" {
		return
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		p.Addf("--%s %s: its directory does not exist", flag, path)
	}
}
