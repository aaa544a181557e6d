package ledger

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// RunLog records one planner session's run: the run record when the plan
// starts and ends, and in between every sequence number the queue accepted,
// written in groups (each write carries everything accepted since the last)
// so recording keeps up with any sending rate. Safe for concurrent use.
type RunLog struct {
	store   *Store
	session string
	// Linger is how long accepted numbers may wait for more before they are
	// written; a group is written sooner once it holds flushSeqs. Default
	// 1s: a plan writes at most one sent record a second.
	Linger time.Duration
	// OnError hears of a sent record that could not be written: the plan
	// must stop, since the ledger could no longer tell when it is done.
	OnError func(error)

	mu       sync.Mutex
	run      Run
	recorded Totals // in the sent records this session wrote
	pending  []pendingSent
	n        int // sent records written
	err      error
	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

type pendingSent struct {
	seqs   []int64
	totals Totals
	then   func()
}

// flushSeqs is how many pending sequence numbers make a group worth writing
// at once.
const flushSeqs = 2000

// BeginRun writes the run record and starts recording sent numbers. A
// resumed plan gives in r.Planned what its earlier sessions sent. The error
// wraps ErrNoBucket or ErrDenied when the ledger cannot be written: check
// it before sending anything.
func (s *Store) BeginRun(ctx context.Context, r Run) (*RunLog, error) {
	if err := CheckRunID(r.ID); err != nil {
		return nil, err
	}
	r.Layout = Layout
	if err := s.put(ctx, s.runKey(r.ID), &r); err != nil {
		return nil, err
	}
	l := &RunLog{store: s, session: time.Now().UTC().Format("20060102T150405.000Z") + "-" + randomHex(3),
		Linger: time.Second, run: r,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.flusher()
	return l, nil
}

// Run is the run record as last written (or to be written at End).
func (l *RunLog) Run() Run {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.run
}

// Sent records sequence numbers the queue accepted, with what their
// messages hold; then, when not nil, is called once they are durable in the
// ledger (never, if writing them fails). It does not wait.
func (l *RunLog) Sent(seqs []int64, t Totals, then func()) {
	l.mu.Lock()
	l.pending = append(l.pending, pendingSent{seqs: seqs, totals: t, then: then})
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (l *RunLog) flusher() {
	defer close(l.done)
	beat := time.NewTicker(Heartbeat)
	defer beat.Stop()
	var linger <-chan time.Time // set while a group waits for more
	for {
		select {
		case <-l.kick:
			if l.pendingSeqs() >= flushSeqs {
				linger = nil
				l.flush()
			} else if linger == nil {
				linger = time.After(l.Linger)
			}
		case <-linger:
			linger = nil
			l.flush()
		case <-beat.C:
			l.alive()
		case <-l.stop:
			l.flush()
			return
		}
	}
}

// alive rewrites the run record with the time, a sign of life a reader
// tells a running plan from a dead planner's by. A failure is not fatal:
// the next beat tries again.
func (l *RunLog) alive() {
	l.mu.Lock()
	l.run.Alive = time.Now().UTC()
	r := l.run
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = l.store.put(ctx, l.store.runKey(r.ID), &r) // best effort: see above
}

func (l *RunLog) pendingSeqs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.pending {
		n += len(p.seqs)
	}
	return n
}

// flush writes everything pending as one sent record.
func (l *RunLog) flush() {
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	if len(batch) == 0 || l.err != nil {
		l.mu.Unlock()
		return
	}
	l.n++
	n := l.n
	l.mu.Unlock()
	rec := Sent{Layout: Layout, Run: l.run.ID, Session: l.session, At: time.Now().UTC()}
	var seqs []int64
	for _, p := range batch {
		seqs = append(seqs, p.seqs...)
		rec.Totals.Add(p.totals)
	}
	rec.Seqs = Ranges(seqs)
	// The write outlives a canceled plan: what was sent must be recorded.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := fmt.Sprintf("%s%s-%08d.json", l.store.sentPrefix(l.run.ID), l.session, n)
	if err := l.store.put(ctx, key, &rec); err != nil {
		l.mu.Lock()
		l.err = fmt.Errorf("record sent messages in the ledger: %w", err)
		l.mu.Unlock()
		if l.OnError != nil {
			l.OnError(err)
		}
		return
	}
	l.mu.Lock()
	l.recorded.Add(rec.Totals)
	l.mu.Unlock()
	for _, p := range batch {
		if p.then != nil {
			p.then()
		}
	}
}

// End writes what is still pending, then the run record with the plan's
// end and what it sent: stopped (nil for a plan that sent everything) says
// why it ended early; lastSeq is the last sequence number given out. It
// returns the first error of any ledger write, End's own included.
func (l *RunLog) End(ctx context.Context, lastSeq int64, stopped error) error {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	l.run.Ended = time.Now().UTC()
	l.run.Planned.Add(l.recorded)
	l.run.LastSeq = lastSeq
	if stopped != nil {
		l.run.Stopped = stopped.Error()
	} else if l.err != nil {
		l.run.Stopped = l.err.Error()
	}
	r, err := l.run, l.err
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if perr := l.store.put(ctx, l.store.runKey(r.ID), &r); perr != nil && err == nil {
		err = perr
	}
	return err
}
