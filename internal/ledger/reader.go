package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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
// the last (the run record until the plan ends, the sent records not read
// yet, and each journal's entries after the last one read), so a watch
// costs what is new, not the run's history. Not safe for concurrent use.
type Reader struct {
	store *Store
	run   string
	tally *Tally
	// Parallel is how many requests a refresh keeps in flight. Default 32.
	Parallel int
	// Ignored counts objects under the run's folders that are not records
	// of this layout (left alone).
	Ignored int64

	mu       sync.Mutex
	ended    bool
	sentRead map[string]bool
	journals map[string]string    // journal prefix → the last key read
	failures map[string][]Failure // entry key → its failed keys, once read
}

// Follow returns a Reader of run.
func (s *Store) Follow(run string) *Reader {
	return &Reader{store: s, run: run, tally: NewTally(), Parallel: 32,
		sentRead: map[string]bool{}, journals: map[string]string{}, failures: map[string][]Failure{}}
}

// Tally is what the reader has read so far.
func (r *Reader) Tally() *Tally { return r.tally }

// Refresh reads what is new. The first error ends it; what was read before
// it stays in the tally, and the next Refresh reads the rest.
func (r *Reader) Refresh(ctx context.Context) error {
	if !r.ended {
		run, err := r.store.Run(ctx, r.run)
		if err != nil {
			return err
		}
		r.tally.SetRun(*run)
		r.ended = !run.Ended.IsZero()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.readSent(gctx) })
	g.Go(func() error { return r.readDone(gctx) })
	return g.Wait()
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

// readDone lists every journal's new entries: a journal already read from
// its last key on, a new one folder by folder, all folders at once.
func (r *Reader) readDone(ctx context.Context) error {
	journals, err := r.store.folders(ctx, r.store.donePrefix(r.run))
	if err != nil {
		return err
	}
	var fresh []string
	known := map[string]string{} // journal prefix → the last key read
	r.mu.Lock()
	for _, j := range journals {
		if after, ok := r.journals[j]; ok {
			known[j] = after
		} else {
			fresh = append(fresh, j)
		}
	}
	r.mu.Unlock()
	// A new journal's folders, then every folder and every known journal.
	var folders []string
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.parallel())
	for _, j := range fresh {
		g.Go(func() error {
			f, err := r.store.folders(gctx, j)
			r.mu.Lock()
			folders = append(folders, f...)
			r.mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(r.parallel())
	for _, prefix := range folders {
		g.Go(func() error { return r.readEntries(gctx, prefix, "") })
	}
	for j, after := range known {
		g.Go(func() error { return r.readEntries(gctx, j, after) })
	}
	return g.Wait()
}

// readEntries lists the entries under prefix after the key after, adding
// them to the tally and moving their journal's last key on.
func (r *Reader) readEntries(ctx context.Context, prefix, after string) error {
	done := r.store.donePrefix(r.run)
	return r.store.list(ctx, prefix, after, "", func(page *s3.ListObjectsV2Output) bool {
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			journal, rest, ok := strings.Cut(strings.TrimPrefix(key, done), "/")
			_, name, ok2 := strings.Cut(rest, "/")
			s := Summary{Key: key, Journal: journal}
			if !ok || !ok2 || parseEntryName(name, &s) != nil {
				r.mu.Lock()
				r.Ignored++
				r.mu.Unlock()
				continue
			}
			r.tally.AddSummary(s)
			jp := done + journal + "/"
			r.mu.Lock()
			if key > r.journals[jp] {
				r.journals[jp] = key
			}
			r.mu.Unlock()
		}
		return true
	})
}

func (r *Reader) parallel() int {
	if r.Parallel <= 0 {
		return 32
	}
	return r.Parallel
}

// Failed reads the entries that hold failed keys, in sequence order, until
// they hold at least limit failures (0: all of them). Entries already read
// are not read again.
func (r *Reader) Failed(ctx context.Context, limit int) ([]*Entry, error) {
	var want []Summary
	n := 0
	for _, s := range r.tally.withFailures() {
		if limit > 0 && n >= limit {
			break
		}
		want = append(want, s)
		n += int(s.Failed)
	}
	out := make([]*Entry, len(want))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(r.parallel())
	for i, s := range want {
		g.Go(func() error {
			e, err := r.store.Entry(ctx, s.Key)
			if err != nil {
				return err
			}
			out[i] = e
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// Failures returns the first limit failed keys of the run (those of the
// earliest messages, sorted by key), reading only entries it has not read
// before.
func (r *Reader) Failures(ctx context.Context, limit int) ([]Failure, error) {
	var want, missing []Summary
	n := int64(0)
	for _, s := range r.tally.withFailures() {
		if n >= int64(limit) {
			break
		}
		want = append(want, s)
		n += s.Failed
		r.mu.Lock()
		_, ok := r.failures[s.Key]
		r.mu.Unlock()
		if !ok {
			missing = append(missing, s)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.parallel())
	for _, s := range missing {
		g.Go(func() error {
			e, err := r.store.Entry(gctx, s.Key)
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.failures[s.Key] = e.Failed
			r.mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
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
