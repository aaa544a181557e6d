package report

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Tally folds plans and results together, keeping the first result of each
// (run, sequence) pair: a work message that SQS delivered twice and two
// workers both reported is counted once. Safe for concurrent use.
type Tally struct {
	mu      sync.Mutex
	plans   map[string]Plan
	results map[string]map[int64]Result
}

// NewTally returns an empty Tally.
func NewTally() *Tally {
	return &Tally{plans: map[string]Plan{}, results: map[string]map[int64]Result{}}
}

// AddPlan records a plan summary; a later summary of the same run (from a
// re-run of the planner) replaces an earlier one.
func (t *Tally) AddPlan(p Plan) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.plans[p.Run]; ok && old.Finished.After(p.Finished) {
		return
	}
	t.plans[p.Run] = p
}

// AddResult records r and reports whether it was new; a duplicate of an
// already counted message is ignored.
func (t *Tally) AddResult(r Result) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	byseq := t.results[r.Run]
	if byseq == nil {
		byseq = map[int64]Result{}
		t.results[r.Run] = byseq
	}
	if _, dup := byseq[r.Seq]; dup {
		return false
	}
	byseq[r.Seq] = r
	return true
}

// Add records everything in an envelope.
func (t *Tally) Add(e Envelope) {
	for _, p := range e.Plans {
		t.AddPlan(p)
	}
	for _, r := range e.Batches {
		t.AddResult(r)
	}
}

// Runs returns the ids of every run the tally has seen, oldest first (run
// ids sort by time).
func (t *Tally) Runs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	for r := range t.plans {
		seen[r] = true
	}
	for r := range t.results {
		seen[r] = true
	}
	runs := make([]string, 0, len(seen))
	for r := range seen {
		runs = append(runs, r)
	}
	slices.Sort(runs)
	return runs
}

// Status is one run's progress.
type Status struct {
	Run     string
	Plan    *Plan // nil until the planner's summary arrives
	Done    int64 // work messages reported
	Copied  int64
	Deleted int64
	Skipped int64
	Failed  int64
	Bytes   int64 // copied bytes
	// Failures lists failed keys, at most MaxFailures of them.
	Failures []Failure
	Workers  int
	// First and Last are the earliest start and the latest finish reported.
	First, Last time.Time
	// RecentRate is objects/s over the last RateWindow of reports, Rate over
	// the whole run.
	Rate, RecentRate float64
	// RecentWorkers is how many workers reported in the last RateWindow.
	RecentWorkers int
}

// RateWindow is the window of RecentRate.
const RateWindow = time.Minute

// MaxFailures bounds Status.Failures.
const MaxFailures = 100

// Status returns the progress of run.
func (t *Tally) Status(run string) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Status{Run: run}
	if p, ok := t.plans[run]; ok {
		s.Plan = &p
	}
	workers := map[string]bool{}
	for _, r := range t.results[run] {
		s.Done++
		s.Copied += r.Copied
		s.Deleted += r.Deleted
		s.Skipped += int64(len(r.Skipped))
		s.Failed += int64(len(r.Failed))
		s.Bytes += r.Bytes
		for _, f := range r.Failed {
			if len(s.Failures) < MaxFailures {
				s.Failures = append(s.Failures, f)
			}
		}
		workers[r.Worker] = true
		if s.First.IsZero() || r.Started.Before(s.First) {
			s.First = r.Started
		}
		s.Last = maxTime(s.Last, r.Finished)
	}
	s.Workers = len(workers)
	slices.SortFunc(s.Failures, func(a, b Failure) int { return cmp.Compare(a.Key, b.Key) })
	start := s.First
	if s.Plan != nil && !s.Plan.Started.IsZero() {
		start = s.Plan.Started
	}
	if d := s.Last.Sub(start).Seconds(); d > 0 {
		s.Rate = float64(s.Copied+s.Deleted+s.Skipped+s.Failed) / d
	}
	s.RecentRate, s.RecentWorkers = t.recentRate(run, s.Last)
	return s
}

// Objects is how many of the message's keys the result accounts for.
func (r Result) Objects() int64 { return r.Copied + r.Deleted + int64(len(r.Skipped)+len(r.Failed)) }

// recentRate is objects/s among the results finished in the RateWindow
// before last, and how many workers reported them; the caller holds mu.
func (t *Tally) recentRate(run string, last time.Time) (float64, int) {
	if last.IsZero() {
		return 0, 0
	}
	from := last.Add(-RateWindow)
	var n int64
	first := last
	workers := map[string]bool{}
	for _, r := range t.results[run] {
		if r.Finished.After(from) {
			n += r.Objects()
			workers[r.Worker] = true
			if r.Started.Before(first) {
				first = maxTime(r.Started, from)
			}
		}
	}
	if d := last.Sub(first).Seconds(); d > 0 {
		return float64(n) / d, len(workers)
	}
	return 0, len(workers)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Bundles returns everything in the tally as bundle envelopes, each under
// maxBytes when encoded, for writing back to the report queue.
func (t *Tally) Bundles(maxBytes int) []Envelope {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Envelope
	cur := Envelope{Kind: KindBundle}
	size := 64
	flush := func() {
		if len(cur.Plans)+len(cur.Batches) > 0 {
			out = append(out, cur)
		}
		cur, size = Envelope{Kind: KindBundle}, 64
	}
	for _, run := range sortedKeys(t.plans) {
		cur.Plans = append(cur.Plans, t.plans[run])
		size += 512
	}
	for _, run := range sortedKeys(t.results) {
		byseq := t.results[run]
		for _, seq := range sortedKeys(byseq) {
			r := byseq[seq]
			n := resultSize(r)
			if size+n > maxBytes {
				flush()
			}
			cur.Batches = append(cur.Batches, r)
			size += n
		}
	}
	flush()
	return out
}

// resultSize bounds r's encoded size.
func resultSize(r Result) int {
	n := 256 + len(r.Run) + len(r.Worker)
	for _, f := range slices.Concat(r.Failed, r.Skipped) {
		n += 64 + 6*(len(f.Key)+len(f.Detail)) + len(f.Reason) + len(f.Code)
	}
	return n
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
