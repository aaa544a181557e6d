package ledger

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Tally folds a run's records together: its run record, its sent records,
// and one entry per sequence number (of two entries for one number, the
// one that finished first, ties broken by key, so every tally of the same
// records agrees). Safe for concurrent use.
type Tally struct {
	mu      sync.Mutex
	run     *Run
	sent    map[int64]bool
	planned Totals
	entries map[int64]Summary
	// failures holds the failed keys of entries added whole (AddEntry), by
	// sequence number: a process that copies and tallies itself has them
	// at hand.
	failures map[int64][]Failure
	dups     int64
}

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{sent: map[int64]bool{}, entries: map[int64]Summary{}, failures: map[int64][]Failure{}}
}

// SetRun records the run record.
func (t *Tally) SetRun(r Run) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.run = &r
}

// AddSent records the numbers of one sent record and what they hold. Each
// record must be added once.
func (t *Tally) AddSent(s Sent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range s.Seqs {
		for n := r[0]; n <= r[1]; n++ {
			t.sent[n] = true
		}
	}
	t.planned.Add(s.Totals)
}

// AddSummary records an entry read from a listing. It reports whether the
// tally changed: false for a duplicate that lost to the entry already held.
func (t *Tally) AddSummary(s Summary) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addLocked(s)
}

func (t *Tally) addLocked(s Summary) bool {
	old, ok := t.entries[s.Seq]
	if ok {
		if old.Key == s.Key {
			return false
		}
		t.dups++
		if !earlier(s, old) {
			return false
		}
		delete(t.failures, s.Seq)
	}
	t.entries[s.Seq] = s
	return true
}

// earlier is the order that picks one entry of a sequence number.
func earlier(a, b Summary) bool {
	if !a.Finished.Equal(b.Finished) {
		return a.Finished.Before(b.Finished)
	}
	return a.Key < b.Key
}

// AddEntry records a whole entry, failed keys included; key names it (any
// string unique to it does in a process that keeps no ledger).
func (t *Tally) AddEntry(key string, e *Entry) bool {
	s := Summary{Key: key, Journal: e.Journal, Seq: e.Seq, Copied: e.Copied, Deleted: e.Deleted,
		Skipped: int64(len(e.Skipped)), Failed: int64(len(e.Failed)), Bytes: e.Bytes, Started: e.Started, Finished: e.Finished}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.addLocked(s) {
		return false
	}
	if len(e.Failed) > 0 {
		t.failures[e.Seq] = e.Failed
	}
	return true
}

// Has reports whether message seq has an entry.
func (t *Tally) Has(seq int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.entries[seq]
	return ok
}

// notDone returns the summaries of entries with failed or skipped keys, in
// sequence order.
func (t *Tally) notDone() []Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Summary
	for _, s := range t.entries {
		if s.Failed > 0 || s.Skipped > 0 {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Summary) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// withFailures returns the summaries of entries with failed keys, in
// sequence order.
func (t *Tally) withFailures() []Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Summary
	for _, s := range t.entries {
		if s.Failed > 0 {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Summary) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// Status is a run's progress.
type Status struct {
	// Now is the moment of the status (StatusAt's now).
	Now time.Time
	Run *Run // nil until the run record is read
	// Planned is what the plan sent so far: all of it once it ended.
	Planned Totals
	// Sent is how many sequence numbers were sent; Done how many of those
	// have an entry.
	Sent, Done int64
	// Unrecorded counts entries of numbers no sent record names: messages
	// a planner sent but died before recording (their keys were planned
	// again, so they do not hold up completion).
	Unrecorded int64
	// Duplicates counts entries of a message finished twice (counted once).
	Duplicates int64
	// Objects done, over every entry.
	Copied, Deleted, Skipped, Failed, Bytes int64
	// DoneObjects is the keys of the sent messages that are done: what
	// Planned.Objects counts down to.
	DoneObjects int64
	Workers     int
	// First and Last are the earliest start and the latest finish.
	First, Last time.Time
	// Rate is objects/s over the run so far, RecentRate over the last
	// RateWindow of entries, by RecentWorkers workers.
	Rate, RecentRate float64
	RecentWorkers    int
	// Complete: the plan ended having sent everything, and every message
	// it sent is done.
	Complete bool
	// Failures lists failed keys held whole (AddEntry), sorted, at most
	// MaxFailures of them. A Reader fills it in from the ledger.
	Failures []Failure
}

// Remaining is how many planned keys are not done yet.
func (s Status) Remaining() int64 { return s.Planned.Objects - s.DoneObjects }

// RateWindow is the window of Status.RecentRate.
const RateWindow = time.Minute

// MaxFailures bounds Status.Failures.
const MaxFailures = 100

// Status returns the run's progress now.
func (t *Tally) Status() Status { return t.StatusAt(time.Now()) }

// StatusAt returns the run's progress at now: the recent rate counts the
// entries S3 stored in the RateWindow before now (a fleet that stopped
// shows no recent rate a minute later).
func (t *Tally) StatusAt(now time.Time) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Status{Now: now, Planned: t.planned, Sent: int64(len(t.sent)), Duplicates: t.dups}
	if t.run != nil {
		r := *t.run
		s.Run = &r
	}
	workers := map[string]bool{}
	for seq, e := range t.entries {
		if t.sent[seq] {
			s.Done++
			s.DoneObjects += e.Objects()
		} else {
			s.Unrecorded++
		}
		s.Copied += e.Copied
		s.Deleted += e.Deleted
		s.Skipped += e.Skipped
		s.Failed += e.Failed
		s.Bytes += e.Bytes
		workers[e.Journal] = true
		if start := e.start(); s.First.IsZero() || start.Before(s.First) {
			s.First = start
		}
		if at := e.at(); at.After(s.Last) {
			s.Last = at
		}
	}
	s.Workers = len(workers)
	s.Complete = s.Run != nil && s.Run.Finished() && s.Done == s.Sent
	start := s.First
	if s.Run != nil && !s.Run.Started.IsZero() && s.Run.Started.Before(start) {
		start = s.Run.Started
	}
	if d := s.Last.Sub(start).Seconds(); d > 0 {
		s.Rate = float64(s.Copied+s.Deleted+s.Skipped+s.Failed) / d
	}
	s.RecentRate, s.RecentWorkers = t.recentRate(maxTime(now, s.Last))
	for _, seq := range sortedSeqs(t.failures) {
		for _, f := range t.failures[seq] {
			if len(s.Failures) < MaxFailures {
				s.Failures = append(s.Failures, f)
			}
		}
	}
	slices.SortFunc(s.Failures, func(a, b Failure) int { return cmp.Compare(a.Key, b.Key) })
	return s
}

// recentRate is objects/s among the entries stored in the RateWindow
// before end, and how many workers wrote them; the caller holds mu.
func (t *Tally) recentRate(end time.Time) (float64, int) {
	from := end.Add(-RateWindow)
	var n int64
	first := end
	workers := map[string]bool{}
	for _, e := range t.entries {
		if !e.at().After(from) {
			continue
		}
		n += e.Objects()
		workers[e.Journal] = true
		if start := maxTime(e.start(), from); start.Before(first) {
			first = start
		}
	}
	if d := end.Sub(first).Seconds(); d > 0 {
		return float64(n) / d, len(workers)
	}
	return 0, len(workers)
}

// at is when the entry was stored, by S3's clock when a listing said so.
func (s Summary) at() time.Time {
	if !s.Written.IsZero() {
		return s.Written
	}
	return s.Finished
}

// start is when its work began, on the clock of at.
func (s Summary) start() time.Time { return s.at().Add(-s.Finished.Sub(s.Started)) }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func sortedSeqs[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
