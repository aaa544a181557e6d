package ledger

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// worker is a worker's record, workers/JOURNAL.json.
type worker struct {
	Layout  int       `json:"layout"`
	Journal string    `json:"journal"`
	Worker  string    `json:"worker"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started"`
}

// Journal is where one worker process records the messages it finished.
// Safe for concurrent use.
type Journal struct {
	store  *Store
	name   string
	worker string
	mu     sync.Mutex
	next   map[string]int64 // per run: the number of the last entry
}

// OpenJournal starts a journal for a worker process, writing its worker
// record: the check that this worker may write to the ledger. The error
// wraps ErrNoBucket or ErrDenied when it may not.
func (s *Store) OpenJournal(ctx context.Context, workerID, version string) (*Journal, error) {
	j := &Journal{store: s, name: journalName(workerID), worker: workerID, next: map[string]int64{}}
	rec := worker{Layout: Layout, Journal: j.name, Worker: workerID, Version: version, Started: time.Now().UTC()}
	if err := s.put(ctx, s.workerKey(j.name), &rec); err != nil {
		return nil, err
	}
	return j, nil
}

// Name is the journal's name in entry keys.
func (j *Journal) Name() string { return j.name }

// Record writes e as an entry of its run. It fills in e's layout, worker
// and journal. A nil error means the entry is durable: its message may be
// deleted.
func (j *Journal) Record(ctx context.Context, e *Entry) error {
	if err := CheckRunID(e.Run); err != nil {
		return fmt.Errorf("record message %d: %w", e.Seq, err)
	}
	e.Layout, e.Worker, e.Journal = Layout, j.worker, j.name
	j.mu.Lock()
	j.next[e.Run]++
	n := j.next[e.Run]
	j.mu.Unlock()
	return j.store.put(ctx, j.store.entryKey(e.Run, j.name, n, e), e)
}

// entryKey is the key of entry number n of a journal in a run.
func (s *Store) entryKey(run, journal string, n int64, e *Entry) string {
	return fmt.Sprintf("%s%s/%05d/%s", s.donePrefix(run), journal, n/1000, entryName(n, e))
}

// Entry reads the entry at key (a Summary's Key).
func (s *Store) Entry(ctx context.Context, key string) (*Entry, error) {
	var e Entry
	if err := s.get(ctx, key, &e); err != nil {
		return nil, err
	}
	return &e, nil
}
