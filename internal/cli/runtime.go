package cli

import (
	"os"
	"runtime/debug"
)

// CopyGCPercent is the garbage collector's target for processes that copy
// (workers and planner run), unless GOGC is set. Profiling a clone of 5,000
// small objects put about a fifth of the client's CPU in the collector, most
// of it scanning the deep SDK middleware stacks of hundreds of goroutines
// with copies in flight; the live heap is small (tens of MiB at 256 copies in
// flight), so collecting a fifth as often costs little memory (about 110
// MiB instead of 55) and saves about 19% of the CPU per copy
// (docs/performance.md).
const CopyGCPercent = 400

// TuneGCForCopying applies CopyGCPercent unless the operator chose a GOGC.
func TuneGCForCopying() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(CopyGCPercent)
	}
}
