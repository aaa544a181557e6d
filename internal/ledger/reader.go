package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

// Runs returns the ids of every run in the ledger, oldest first.
func (s *Store) Runs(ctx context.Context) ([]string, error) {
	folders, err := s.folders(ctx, s.runsPrefix())
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(folders))
	for _, f := range folders {
		ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(f, s.runsPrefix()), "/"))
	}
	slices.Sort(ids)
	return ids, nil
}

// Latest returns the id of the run that started last; the error wraps
// ErrNotFound when the ledger holds no run.
func (s *Store) Latest(ctx context.Context) (string, error) {
	ids, err := s.Runs(ctx)
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("no run in %s: %w", s, ErrNotFound)
	}
	return ids[len(ids)-1], nil
}

// Run reads a run record; the error wraps ErrNotFound when there is none.
func (s *Store) Run(ctx context.Context, id string) (*Run, error) {
	if err := CheckRunID(id); err != nil {
		return nil, err
	}
	var r Run
	if err := s.get(ctx, s.runKey(id), &r); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("no run %s in %s: %w", id, s, ErrNotFound)
		}
		return nil, err
	}
	return &r, nil
}

// Reader follows one run: each Refresh reads only what was written since
// the last (the run record until the plan has finished, the sent records
// not read yet, and each journal's entries from the first one it has not
// read), so a watch costs what is new, not the run's history. Not safe for
// concurrent use.
//
// A worker writes several entries at once, so a journal's entry n+1 may be
// listed before entry n. Each journal therefore has a low-water mark: every
// entry up to it was read, and the next refresh lists from the one after
// it. A number that never appears (its write failed and the message was
// redone under another) is given up on after GapSettle.
type Reader struct {
	store *Store
	run   string
	tally *Tally
	// Parallel is how many requests a refresh keeps in flight. Default 32.
	Parallel int
	// Ignored counts objects under the run's folders that are not records
	// of this layout (left alone).
	Ignored int64

	// GapSettle is how long a missing entry number holds a journal's
	// low-water mark. Default 5m (an entry write takes at most 30s).
	GapSettle time.Duration
	// Now is the reader's clock (for tests). Default time.Now.
	Now func() time.Time

	mu       sync.Mutex
	finished bool
	// sentSettled: the sent records were listed after the run record said
	// the plan had finished. A planner writes them all before that record,
	// so there are no more to read.
	sentSettled bool
	sentRead    map[string]bool
	journals    map[string]*journalState // by journal prefix
	failures    map[string][]Failure     // entry key → its failed keys, once read
}

// journalState is how far a reader has read one journal.
type journalState struct {
	low   int64          // every entry numbered up to low has been read
	above map[int64]bool // entry numbers read beyond low
	gap   time.Time      // when entry low+1 was first found missing
}

// Follow returns a Reader of run.
func (s *Store) Follow(run string) *Reader {
	return &Reader{store: s, run: run, tally: NewTally(), Parallel: 32, GapSettle: 5 * time.Minute, Now: time.Now,
		sentRead: map[string]bool{}, journals: map[string]*journalState{}, failures: map[string][]Failure{}}
}

// saw records that entry number n of a journal was read.
func (j *journalState) saw(n int64) {
	if n > j.low {
		j.above[n] = true
	}
}

// settle moves the low-water mark over every number read in a row, and
// over a missing one that has been missing for longer than settle.
func (j *journalState) settle(now time.Time, settle time.Duration) {
	for {
		for j.above[j.low+1] {
			delete(j.above, j.low+1)
			j.low++
		}
		if len(j.above) == 0 {
			j.gap = time.Time{}
			return
		}
		if j.gap.IsZero() {
			j.gap = now
		}
		if now.Sub(j.gap) < settle {
			return
		}
		j.low++ // given up on: the next number read, or the next gap, is what counts
		j.gap = time.Time{}
	}
}

// after is the StartAfter key that lists a journal from its first unread
// entry on: entry low+1's key without its summary.
func (j *journalState) after(prefix string) string {
	n := j.low + 1
	return fmt.Sprintf("%s%05d/%010d", prefix, n/1000, n)
}

// Tally is what the reader has read so far.
func (r *Reader) Tally() *Tally { return r.tally }

// EntriesOnly makes the reader read the run's entries alone, not its sent
// records: for a reader that asks which messages are done (Tally.Has) of a
// run that never ends (planner follow's), whose sent records, one a second,
// would be listed again at every Refresh.
func (r *Reader) EntriesOnly() { r.sentSettled = true }

// Refresh reads what is new. The first error ends it; what was read before
// it stays in the tally, and the next Refresh reads the rest. The run
// record is read again until the plan has finished: a plan that stopped can
// be resumed, and a running one rewrites it as a sign of life.
func (r *Reader) Refresh(ctx context.Context) error {
	if !r.finished {
		run, err := r.store.Run(ctx, r.run)
		if err != nil {
			return err
		}
		r.tally.SetRun(*run)
		r.finished = run.Finished()
	}
	g, gctx := errgroup.WithContext(ctx)
	if !r.sentSettled {
		g.Go(func() error { return r.readSent(gctx) })
	}
	g.Go(func() error { return r.readDone(gctx) })
	if err := g.Wait(); err != nil {
		return err
	}
	r.sentSettled = r.sentSettled || r.finished
	return nil
}

func (r *Reader) readSent(ctx context.Context) error {
	var fresh []string
	prefix := r.store.sentPrefix(r.run)
	err := r.store.list(ctx, prefix, "", "", func(page *s3.ListObjectsV2Output) bool {
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); !r.sentRead[k] {
				fresh = append(fresh, k)
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(r.parallel())
	for _, key := range fresh {
		g.Go(func() error {
			var s Sent
			if err := r.store.get(ctx, key, &s); err != nil {
				return err
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.sentRead[key] {
				r.sentRead[key] = true
				r.tally.AddSent(s)
			}
			return nil
		})
	}
	return g.Wait()
}

// readDone lists every journal's new entries: a known journal from its
// low-water mark on, a new one folder by folder, all folders at once. A
// journal's state changes only when all its listings succeeded.
func (r *Reader) readDone(ctx context.Context) error {
	done := r.store.donePrefix(r.run)
	journals, err := r.store.folders(ctx, done)
	if err != nil {
		return err
	}
	var fresh []string
	known := map[string]string{} // journal prefix → StartAfter
	r.mu.Lock()
	for _, j := range journals {
		if st, ok := r.journals[j]; ok {
			known[j] = st.after(j)
		} else {
			fresh = append(fresh, j)
		}
	}
	r.mu.Unlock()
	folders := map[string][]string{} // new journal → its folders
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.parallel())
	for _, j := range fresh {
		g.Go(func() error {
			f, err := r.store.folders(gctx, j)
			mu.Lock()
			folders[j] = f
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	read := map[string][]int64{} // journal prefix → entry numbers read
	list := func(ctx context.Context, journal, prefix, after string) error {
		nums, err := r.readEntries(ctx, prefix, after)
		mu.Lock()
		read[journal] = append(read[journal], nums...)
		mu.Unlock()
		return err
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(r.parallel())
	for j, fs := range folders {
		for _, f := range fs {
			g.Go(func() error { return list(gctx, j, f, "") })
		}
	}
	for j, after := range known {
		g.Go(func() error { return list(gctx, j, j, after) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for j, nums := range read {
		st := r.journals[j]
		if st == nil {
			st = &journalState{above: map[int64]bool{}}
			r.journals[j] = st
		}
		for _, n := range nums {
			st.saw(n)
		}
	}
	for _, st := range r.journals {
		st.settle(now, r.GapSettle)
	}
	return nil
}

// readEntries lists the entries under prefix after the key after, adding
// them to the tally; it returns their numbers in their journal.
func (r *Reader) readEntries(ctx context.Context, prefix, after string) ([]int64, error) {
	done := r.store.donePrefix(r.run)
	var nums []int64
	err := r.store.list(ctx, prefix, after, "", func(page *s3.ListObjectsV2Output) bool {
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			journal, rest, ok := strings.Cut(strings.TrimPrefix(key, done), "/")
			_, name, ok2 := strings.Cut(rest, "/")
			s := Summary{Key: key, Journal: journal, Written: aws.ToTime(o.LastModified)}
			if !ok || !ok2 || parseEntryName(name, &s) != nil {
				r.mu.Lock()
				r.Ignored++
				r.mu.Unlock()
				continue
			}
			r.tally.AddSummary(s)
			nums = append(nums, s.N)
		}
		return true
	})
	return nums, err
}

func (r *Reader) parallel() int {
	if r.Parallel <= 0 {
		return 32
	}
	return r.Parallel
}

// withFailures returns the summaries of the earliest messages with failed
// keys, until they hold at least limit failures (0: all of them).
func (r *Reader) withFailures(limit int) []Summary {
	var want []Summary
	n := int64(0)
	for _, s := range r.tally.withFailures() {
		if limit > 0 && n >= int64(limit) {
			break
		}
		want = append(want, s)
		n += s.Failed
	}
	return want
}

// entries reads the entries sums name, at once, calling got with each.
func (r *Reader) entries(ctx context.Context, sums []Summary, got func(i int, e *Entry)) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(r.parallel())
	for i, s := range sums {
		g.Go(func() error {
			e, err := r.store.Entry(ctx, s.Key)
			if err != nil {
				return err
			}
			got(i, e)
			return nil
		})
	}
	return g.Wait()
}

// Failed reads the entries that hold failed keys, in sequence order, until
// they hold at least limit failures (0: all of them).
func (r *Reader) Failed(ctx context.Context, limit int) ([]*Entry, error) {
	want := r.withFailures(limit)
	out := make([]*Entry, len(want))
	if err := r.entries(ctx, want, func(i int, e *Entry) { out[i] = e }); err != nil {
		return nil, err
	}
	return out, nil
}

// NotDone reads every entry that holds keys not copied or deleted as
// planned: failed keys, and skipped ones (their source vanished), in
// sequence order.
func (r *Reader) NotDone(ctx context.Context) ([]*Entry, error) {
	want := r.tally.notDone()
	out := make([]*Entry, len(want))
	if err := r.entries(ctx, want, func(i int, e *Entry) { out[i] = e }); err != nil {
		return nil, err
	}
	return out, nil
}

// Failures returns the first limit failed keys of the run (those of the
// earliest messages, sorted by key), reading only entries it has not read
// before.
func (r *Reader) Failures(ctx context.Context, limit int) ([]Failure, error) {
	if limit <= 0 {
		return nil, nil
	}
	want := r.withFailures(limit)
	var missing []Summary
	r.mu.Lock()
	for _, s := range want {
		if _, ok := r.failures[s.Key]; !ok {
			missing = append(missing, s)
		}
	}
	r.mu.Unlock()
	err := r.entries(ctx, missing, func(i int, e *Entry) {
		r.mu.Lock()
		r.failures[missing[i].Key] = e.Failed
		r.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	var out []Failure
	r.mu.Lock()
	for _, s := range want {
		out = append(out, r.failures[s.Key]...)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Failure) int { return cmp.Compare(a.Key, b.Key) })
	return out[:min(len(out), limit)], nil
}
