// Package worker drains work messages from a queue and copies their keys
// with a fixed pool of copiers, keeping each message hidden while it is
// worked on, recording each finished message in the ledger, and deleting it
// only once its entry is durable.
package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/ownership"
	"github.com/s3clone/s3clone/internal/pace"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// Source is the queue the worker drains: *queue.SQS or *queue.Memory.
type Source interface {
	Receive(ctx context.Context, n int, wait, visibility time.Duration) ([]queue.Message, error)
	Delete(ctx context.Context, msgs []queue.Message) error
	ChangeVisibility(ctx context.Context, msgs []queue.Message, d time.Duration) error
}

// Recorder records the entry of one finished message. A nil error means it
// is durable: the message may then be deleted. Implementations must be safe
// for concurrent use: the worker records the messages it finished together
// at once.
type Recorder interface {
	Record(ctx context.Context, e *ledger.Entry) error
}

// Copier copies one object, or deletes many: *copier.Regional (or, in one
// region, *copier.Copier).
type Copier interface {
	Copy(ctx context.Context, src copier.Source, dst copier.Target) error
	Delete(ctx context.Context, dst copier.Target, objs []copier.Doomed) ([]copier.KeyError, error)
	// Current reads what a source key holds now (a sync's first step).
	Current(ctx context.Context, src copier.Source) (copier.Source, error)
}

// Config tunes a Worker. Zero values take the defaults.
type Config struct {
	// ID names the worker in ledger entries. Default hostname-pid.
	ID string
	// Write is how this worker was told to write copies: used for messages
	// that carry no copy options (planners before schema version 4). A
	// message's own options (its run's) win; where this is set and they
	// differ, the worker says so, once per run.
	Write plan.Copy
	// Concurrency is how many copies are in flight. Default 256.
	Concurrency int
	// Visibility is how long a received message stays hidden; it is extended
	// every Visibility/2 while worked on. Default 60s.
	Visibility time.Duration
	// Wait is the long-poll wait of each receive, at most 20s. A stopping
	// worker lets its last poll finish (see receive), so this also bounds
	// how long a stop takes beyond Grace. Default 10s.
	Wait time.Duration
	// IdleExit stops the worker after this long with nothing received and
	// nothing in flight; 0 runs until the context ends.
	IdleExit time.Duration
	// Grace is how long in-flight copies may run on after the context ends
	// before they are cut short and their messages released. Default 25s.
	Grace time.Duration
	// Progress is how often a progress line is logged. Default 15s.
	Progress time.Duration
	// Limiter bounds the copies in flight. Default: Concurrency slots.
	Limiter *Limiter
	// Pace, when set, spaces the writes to each destination prefix: a key
	// waits for its prefix's rate before it takes a copy slot, so keys of
	// a prefix S3 throttles wait without holding up keys of others.
	Pace *pace.Pacer
	// Hold is how many keys a worker holds at once, waiting for their
	// prefix's rate or copying. Default: 4×Concurrency with Pace, else
	// Concurrency.
	Hold int
	// Observer hears how long each copy took and why keys were not done,
	// for metrics. Default: nobody.
	Observer Observer
	// Owners, when set, learns from each message who must own its buckets
	// and who pays for them, for every request the copies make (the
	// copier's clients follow it). Default: nobody learns.
	Owners *ownership.Book
	// RetryBackoff is how long a message with a transient failure stays
	// hidden, times the number of times it was received (at most 5m).
	// Default 10s.
	RetryBackoff time.Duration
}

// Observer hears about copies as they finish. Implementations must be safe
// for concurrent use and quick: they run on the copying goroutines.
type Observer interface {
	// CopyTook is called after every copy attempt, successful or not.
	CopyTook(d time.Duration)
	// KeyFailed is called for every key not done: skipped, failed for
	// good, or handed back to be tried again (not for a stop cutting it short).
	KeyFailed(reason copier.Reason)
}

type noObserver struct{}

func (noObserver) CopyTook(time.Duration)  {}
func (noObserver) KeyFailed(copier.Reason) {}

// Defaults a stop's length depends on (the deploy template's StopTimeout
// is held to them).
const (
	DefaultGrace = 25 * time.Second // Config.Grace
	DefaultWait  = 10 * time.Second // Config.Wait
)

// DefaultID is id, or when empty the default worker id: hostname-pid.
func DefaultID(id string) string {
	if id != "" {
		return id
	}
	host, _ := os.Hostname() // "" is fine: the pid still tells workers apart
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func (c Config) withDefaults() Config {
	c.ID = DefaultID(c.ID)
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.Visibility <= 0 {
		c.Visibility = 60 * time.Second
	}
	if c.Wait <= 0 {
		c.Wait = DefaultWait
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.Progress <= 0 {
		c.Progress = 15 * time.Second
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 10 * time.Second
	}
	if c.Limiter == nil {
		c.Limiter = NewLimiter(c.Concurrency)
	}
	if c.Hold <= 0 {
		c.Hold = c.Concurrency
		if c.Pace != nil {
			c.Hold = 4 * c.Concurrency
		}
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	return c
}

// Stats counts what a worker did. Safe for concurrent use.
type Stats struct {
	Messages   atomic.Int64 // messages finished and recorded
	Copied     atomic.Int64
	Deleted    atomic.Int64
	Skipped    atomic.Int64
	Failed     atomic.Int64
	Bytes      atomic.Int64
	Retried    atomic.Int64 // messages handed back to be tried again
	Malformed  atomic.Int64 // messages that were not s3clone batches
	InFlight   atomic.Int64 // keys received and not yet finished
	LedgerErrs atomic.Int64 // entries that could not be recorded (their messages are redone)
}

// Worker drains one queue.
type Worker struct {
	cfg   Config
	src   Source
	rec   Recorder
	cp    Copier
	log   zerolog.Logger
	Stats Stats

	access *access // tells a key refused alone from refused work

	freed    chan struct{}  // a key finished: there may be room to receive
	finished chan *job      // messages whose every key is done (or cut short)
	late     sync.WaitGroup // receives still under way after stopping
	mu       sync.Mutex
	// held is every message received and not yet deleted or handed back:
	// the heartbeat keeps each hidden, from the receive on. By job, not by
	// message id: SQS may deliver one message twice to the same worker.
	held map[*job]struct{}
	avg  float64 // running mean of keys per message; 0 = unknown
	// warned holds the runs whose copy options this worker said differ
	// from its own.
	warned map[string]struct{}
	// vis orders visibility changes: a message is handed back or deleted
	// only while no extension of it is under way, so an extension can
	// never hide a message again after it was released.
	vis sync.Mutex
}

// New returns a Worker that records finished messages with rec.
func New(cfg Config, src Source, rec Recorder, cp Copier, log zerolog.Logger) *Worker {
	cfg = cfg.withDefaults()
	return &Worker{
		cfg: cfg, src: src, rec: rec, cp: cp,
		log:    log.With().Str("worker", cfg.ID).Logger(),
		freed:  make(chan struct{}, 1),
		held:   map[*job]struct{}{},
		access: newAccess(),
	}
}

// ID is the worker's name in ledger entries.
func (w *Worker) ID() string { return w.cfg.ID }

// job is one received message being worked on.
type job struct {
	msg       queue.Message
	batch     *plan.Batch
	remaining atomic.Int64

	write copier.Write // how its copies are written

	mu       sync.Mutex
	result   ledger.Entry
	retry    bool // a key failed in a way worth another try
	canceled bool // a key was cut short by shutdown
	// refused are the keys S3 refused, whose refusals are settled as
	// their own or the message's when it is complete.
	refused []refusal
}

type task struct {
	job *job
	i   int
}

// Run receives and copies until ctx ends, the queue is drained (in-memory
// queues), or IdleExit passes with nothing to do. When ctx ends it stops
// receiving, lets in-flight copies finish for up to Grace, then cuts the rest
// short and hands their messages back to the queue. It returns nil on any of
// these ends; messages that could not be finished are never deleted.
func (w *Worker) Run(ctx context.Context) error {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	// Finishing (reports, deletes, releases) outlives both contexts.
	finishCtx := context.WithoutCancel(ctx)

	tasks := make(chan task)
	w.finished = make(chan *job, w.cfg.Hold)
	var pool sync.WaitGroup
	for range w.cfg.Hold {
		pool.Go(func() {
			for t := range tasks {
				w.copyKey(workCtx, t)
				w.keysDone(t.job, 1)
			}
		})
	}
	var finisher sync.WaitGroup
	finisher.Go(func() { w.finishLoop(finishCtx, w.finished) })
	stopBeat := make(chan struct{})
	var beat sync.WaitGroup
	beat.Go(func() { w.heartbeat(finishCtx, stopBeat) })

	w.log.Info().Int("concurrency", w.cfg.Concurrency).Msg("worker started")
	w.receiveLoop(ctx, tasks)
	w.drain(ctx, cancelWork)
	close(tasks)
	pool.Wait()
	close(w.finished)
	finisher.Wait()
	w.late.Wait()
	close(stopBeat)
	beat.Wait()
	w.logProgress("worker stopped")
	return nil
}

// receiveLoop receives while there is room, and hands every key of every
// message to the pool. It returns when it should stop receiving.
func (w *Worker) receiveLoop(ctx context.Context, tasks chan<- task) {
	lastMsg := time.Now()
	failures := 0
	for ctx.Err() == nil {
		free := w.cfg.Hold - int(w.Stats.InFlight.Load())
		if w.cfg.Pace != nil {
			// No more than the prefixes' rates let go within pace.Lead:
			// the rest of the work stays on the queue for workers with room.
			free = min(free, w.cfg.Pace.Room())
		}
		if free <= 0 {
			select {
			case <-w.freed:
			case <-ctx.Done():
			}
			continue
		}
		wait := w.cfg.Wait
		if w.cfg.IdleExit > 0 {
			wait = min(wait, max(w.cfg.IdleExit-time.Since(lastMsg), time.Second))
		}
		msgs, stopped, err := w.receive(ctx, w.fetchCount(free), wait)
		if stopped {
			return
		}
		switch {
		case errors.Is(err, queue.ErrDrained):
			w.log.Info().Msg("queue drained")
			return
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			failures++
			w.log.Warn().Err(err).Int("attempt", failures).Msg("receive failed; retrying")
			sleep(ctx, min(time.Duration(failures)*time.Second, 30*time.Second))
			continue
		}
		failures = 0
		if len(msgs) == 0 {
			if w.cfg.IdleExit > 0 && time.Since(lastMsg) >= w.cfg.IdleExit && w.Stats.InFlight.Load() == 0 {
				w.log.Info().Dur("idle", time.Since(lastMsg).Round(100*time.Millisecond)).Msg("nothing received; exiting")
				return
			}
			continue
		}
		lastMsg = time.Now()
		for _, j := range w.hold(msgs) {
			w.dispatch(ctx, j, tasks)
		}
	}
}

// receive asks for up to n messages. The request itself is never canceled:
// a long poll abandoned mid-wait can still take messages on the server, which
// would then stay hidden for a whole visibility timeout with no one working
// on them. So when ctx ends first, receive returns stopped and whatever the
// request still brings back is handed back to the queue at once.
func (w *Worker) receive(ctx context.Context, n int, wait time.Duration) (msgs []queue.Message, stopped bool, err error) {
	type result struct {
		msgs []queue.Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := w.src.Receive(context.WithoutCancel(ctx), n, wait, w.cfg.Visibility)
		done <- result{msgs, err}
	}()
	select {
	case r := <-done:
		return r.msgs, false, r.err
	case <-ctx.Done():
		w.late.Go(func() {
			if r := <-done; len(r.msgs) > 0 {
				w.log.Info().Int("messages", len(r.msgs)).Msg("releasing messages received while stopping")
				w.setVisibility(context.WithoutCancel(ctx), r.msgs, 0)
			}
		})
		return nil, true, nil
	}
}

// fetchCount is how many messages fit in free copy slots: never more than
// ten (SQS's limit), one while the size of messages is still unknown.
func (w *Worker) fetchCount(free int) int {
	w.mu.Lock()
	avg := w.avg
	w.mu.Unlock()
	if avg <= 0 {
		return 1
	}
	return min(max(int(float64(free)/avg), 1), 10)
}

// hold decodes received messages into jobs and holds them: from here on
// the heartbeat keeps them hidden until they are deleted or handed back.
// A message that is not an s3clone batch is left alone: it comes back
// after its visibility timeout and, after the queue's receive limit, moves
// to the dead-letter queue.
func (w *Worker) hold(msgs []queue.Message) []*job {
	jobs := make([]*job, 0, len(msgs))
	for _, m := range msgs {
		batch, err := plan.Decode(m.Body)
		if err != nil {
			w.Stats.Malformed.Add(1)
			w.log.Error().Err(err).Str("message", m.ID).Int("receives", m.Receives).Msg("malformed message left for the dead-letter queue")
			continue
		}
		j := &job{msg: m, batch: batch}
		if batch.Op == plan.OpCopy || batch.Op == plan.OpSync {
			j.write = w.writeFor(batch) // a probe or a deletion writes nothing
		}
		if o := w.cfg.Owners; o != nil {
			o.SetPair(batch.Source.Bucket, ownership.Bucket{Owner: batch.Source.Owner, RequesterPays: batch.Source.RequesterPays},
				batch.Dest.Bucket, ownership.Bucket{Owner: batch.Dest.Owner, RequesterPays: batch.Dest.RequesterPays})
		}
		j.result = ledger.Entry{Run: batch.Run, Seq: batch.Seq, Op: batch.Op, Source: batch.Source, Dest: batch.Dest,
			Worker: w.cfg.ID, Started: time.Now()}
		n := len(batch.Entries)
		switch batch.Op {
		case plan.OpProbe:
			n = 0 // nothing to do: deleted unrecorded
		case plan.OpDelete:
			n = 1 // one DeleteObjects call for the whole batch
		}
		j.remaining.Store(int64(n))
		w.Stats.InFlight.Add(int64(n))
		jobs = append(jobs, j)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range jobs {
		w.held[j] = struct{}{}
		n := float64(j.remaining.Load())
		if w.avg == 0 {
			w.avg = n
		} else {
			w.avg = 0.8*w.avg + 0.2*n
		}
	}
	return jobs
}

// dispatch hands each of j's keys to the pool as a copier frees up. When
// ctx ends first, the keys not handed over are cut short: once those under
// way finish, the message goes back to the queue at once.
func (w *Worker) dispatch(ctx context.Context, j *job, tasks chan<- task) {
	n := int(j.remaining.Load())
	if n == 0 {
		w.complete(context.Background(), []*job{j})
		return
	}
	for i := range n {
		t := task{job: j, i: i}
		if j.batch.Op == plan.OpDelete {
			t.i = wholeBatch
		}
		select {
		case tasks <- t:
			continue
		case <-ctx.Done():
		}
		j.mu.Lock()
		j.canceled = true
		j.mu.Unlock()
		w.keysDone(j, n-i)
		return
	}
}

// writeFor is how the copies of b are written: its run's options, or for
// a batch that carries none this worker's own. A worker told to write
// otherwise than a run says so, once per run.
func (w *Worker) writeFor(b *plan.Batch) copier.Write {
	opts, carried := b.Options()
	if !carried {
		return WriteOf(w.cfg.Write)
	}
	mine := w.cfg.Write
	if mine.IsZero() || (mine.StorageClass == opts.StorageClass && mine.SSEKMSKeyID == opts.SSEKMSKeyID && mine.ACL == opts.ACL) {
		return WriteOf(opts)
	}
	w.mu.Lock()
	_, said := w.warned[b.Run]
	if w.warned == nil {
		w.warned = map[string]struct{}{}
	}
	w.warned[b.Run] = struct{}{}
	w.mu.Unlock()
	if !said {
		w.log.Warn().Str("run", b.Run).
			Str("run_acl", opts.ACL).Str("worker_acl", mine.ACL).
			Str("run_sse_kms_key_id", opts.SSEKMSKeyID).Str("worker_sse_kms_key_id", mine.SSEKMSKeyID).
			Str("run_storage_class", opts.StorageClass).Str("worker_storage_class", mine.StorageClass).
			Msg("this worker's copy options differ from its run's: copying as the run says (the planner's --acl, --sse-kms-key-id and --storage-class, checked by its preflight)")
	}
	return WriteOf(opts)
}

// WriteOf is how the copier writes copies under a run's options.
func WriteOf(c plan.Copy) copier.Write {
	w := copier.Write{
		StorageClass: types.StorageClass(c.StorageClass), SSEKMSKeyID: c.SSEKMSKeyID, ACL: types.ObjectCannedACL(c.ACL),
		Redirects: c.Redirects, Lock: c.Lock,
	}
	if f := c.LockFloor; f != nil {
		w.LockFloor = &copier.Retention{Mode: types.ObjectLockRetentionMode(f.Mode), Years: f.Years, Days: f.Days}
	}
	return w
}

// keysDone counts n of j's keys done, finished or cut short: the last of
// them sends the job on to be settled.
func (w *Worker) keysDone(j *job, n int) {
	w.Stats.InFlight.Add(-int64(n))
	if j.remaining.Add(-int64(n)) == 0 {
		w.finished <- j
	}
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// wholeBatch is the task index of a task that does a whole batch at once.
const wholeBatch = -1

// drain waits for in-flight keys to finish: without limit when the worker
// stops on its own, for at most Grace when ctx ended, then cuts them short.
func (w *Worker) drain(ctx context.Context, cancelWork context.CancelFunc) {
	var deadline <-chan time.Time
	if ctx.Err() != nil {
		w.log.Info().Int64("keys_in_flight", w.Stats.InFlight.Load()).Dur("grace", w.cfg.Grace).Msg("stopping: finishing in-flight copies")
		t := time.NewTimer(w.cfg.Grace)
		defer t.Stop()
		deadline = t.C
	}
	for w.Stats.InFlight.Load() > 0 {
		select {
		case <-w.freed:
		case <-deadline:
			w.log.Warn().Int64("keys_in_flight", w.Stats.InFlight.Load()).Msg("grace period over: cutting copies short and releasing their messages")
			cancelWork()
			return
		}
	}
}

func (w *Worker) copyKey(ctx context.Context, t task) {
	j := t.job
	b := j.batch
	if w.cfg.Pace != nil && len(b.Entries) > 0 {
		first := b.Entries[max(t.i, 0)].Key
		if t.i != wholeBatch {
			first = plan.DestKey(b.Source, b.Dest, first)
		}
		paced, err := w.cfg.Pace.Ahead(ctx, b.Dest.Bucket, first)
		if err != nil {
			j.mu.Lock()
			j.canceled = true // only a stopping worker waits in vain
			j.mu.Unlock()
			return
		}
		ctx = paced
	}
	if err := w.cfg.Limiter.Acquire(ctx); err != nil {
		j.mu.Lock()
		j.canceled = true // only a stopping worker waits in vain
		j.mu.Unlock()
		return
	}
	defer w.cfg.Limiter.Release()
	if t.i == wholeBatch {
		w.deleteBatch(ctx, j)
		return
	}
	if b.Op == plan.OpSync {
		w.syncKey(ctx, j, t.i)
		return
	}
	e := b.Entries[t.i]
	src := copier.Source{Bucket: b.Source.Bucket, Region: b.Source.Region, Key: e.Key, Size: e.Size, ETag: e.ETag, StorageClass: e.StorageClass, VersionID: e.VersionID}
	dst := copier.Target{Bucket: b.Dest.Bucket, Region: b.Dest.Region, Key: plan.DestKey(b.Source, b.Dest, e.Key), Write: j.write}
	start := time.Now()
	err := w.cp.Copy(ctx, src, dst)
	took := time.Since(start)
	w.cfg.Observer.CopyTook(took)
	if err == nil && w.movedDuring(ctx, src, took) {
		// A sync of the newer state may have finished before this copy of
		// the listed one: the key is made what the source holds now.
		w.access.succeeded(b.Run, src, dst, start)
		w.syncKey(ctx, j, t.i)
		return
	}
	if err == nil {
		w.access.succeeded(b.Run, src, dst, start)
		j.mu.Lock()
		j.result.Copied++
		j.result.Bytes += e.Size
		j.mu.Unlock()
		w.Stats.Copied.Add(1)
		w.Stats.Bytes.Add(e.Size)
		w.log.Debug().Str("key", e.Key).Int64("bytes", e.Size).Msg("object copied")
		return
	}
	ce := copier.Classify(err)
	f := ledger.Failure{Key: e.Key, Size: e.Size, ETag: e.ETag, Class: e.StorageClass}
	if ownRefusal(ce) {
		// The key's failure or the message's: settled with the message.
		j.mu.Lock()
		j.refused = append(j.refused, refusal{f: f, ce: ce, src: src, dst: dst, began: start})
		j.mu.Unlock()
		return
	}
	w.fail(j, f, ce, ce.Blocked())
}

// settleRefusals decides, once every key of j is done, whether each key S3
// refused was refused alone (its failure: another key of the message was
// copied in this attempt, or a copy between the same buckets for the run
// began after the refusal and succeeded) or with all the work between the
// buckets (the message is blocked).
func (w *Worker) settleRefusals(j *job) {
	j.mu.Lock()
	refused, copied, canceled := j.refused, j.result.Copied > 0, j.canceled
	j.refused = nil
	j.mu.Unlock()
	if canceled {
		return // handed back whole
	}
	for _, r := range refused {
		own := copied || w.access.copiedSince(j.batch.Run, r.src, r.dst, r.began)
		w.fail(j, r.f, r.ce, !own)
	}
}

// deleteBatch deletes every key of a delete batch, each only while it is
// the object the diff listed (its ETag), refusing any key outside the
// destination prefix: a mirror never deletes what it was not given.
func (w *Worker) deleteBatch(ctx context.Context, j *job) {
	b := j.batch
	objs := make([]copier.Doomed, 0, len(b.Entries))
	listed := map[string]plan.Entry{}
	for _, e := range b.Entries {
		if !strings.HasPrefix(e.Key, b.Dest.Prefix) {
			w.fail(j, ledger.Failure{Key: e.Key}, &copier.Error{Reason: copier.ReasonRejected, Err: fmt.Errorf("key %q is outside the destination prefix %q: not deleted", e.Key, b.Dest.Prefix)}, false)
			continue
		}
		objs = append(objs, copier.Doomed{Key: e.Key, ETag: e.ETag})
		listed[e.Key] = e
	}
	failure := func(key string) ledger.Failure {
		e := listed[key]
		return ledger.Failure{Key: key, Size: e.Size, ETag: e.ETag, Class: e.StorageClass}
	}
	failed, err := w.cp.Delete(ctx, copier.Target{Bucket: b.Dest.Bucket, Region: b.Dest.Region}, objs)
	if err != nil {
		ce := copier.Classify(err)
		for _, o := range objs {
			w.fail(j, failure(o.Key), ce, ce.Blocked())
		}
		return
	}
	deleted := len(objs) - len(failed)
	j.mu.Lock()
	j.result.Deleted += int64(deleted)
	j.mu.Unlock()
	w.Stats.Deleted.Add(int64(deleted))
	for _, f := range failed {
		// A key refused while others of the same call were deleted is
		// refused alone: its failure, not the message's.
		w.fail(j, failure(f.Key), f.Err, f.Err.Blocked() && !(ownRefusal(f.Err) && deleted > 0))
	}
}

// fail records a key that was not done: skipped, failed for good, or to be
// tried again with its message (blocked: the cause blocks all of its work,
// not this key alone). f names the key as the batch listed it.
func (w *Worker) fail(j *job, f ledger.Failure, ce *copier.Error, blocked bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	key := f.Key
	f.Reason, f.Code, f.Detail = string(ce.Reason), ce.Code, truncate(ce.Err.Error(), 300)
	if hint := failHint(j.batch, f, ce); hint != "" {
		f.Detail = hint + " (" + f.Detail + ")"
	}
	if ce.Reason != copier.ReasonCanceled {
		w.cfg.Observer.KeyFailed(ce.Reason)
	}
	switch {
	case ce.Reason == copier.ReasonVanished:
		j.result.Skipped = append(j.result.Skipped, f)
		w.log.Info().Str("key", key).Msg("source object vanished since it was listed; skipped")
	case blocked:
		// Not the object's fault: the message waits, and after the queue's
		// receive limit moves to the dead-letter queue for a redrive once
		// the operator has fixed the cause.
		j.retry = true
		w.log.Error().Str("key", key).Str("code", f.Code).Str("fix", blockedHint(j.batch, key, ce)).Err(ce.Err).
			Msg("blocked: the message goes back to the queue and, if this persists, to its dead-letter queue")
	case ce.Permanent():
		j.result.Failed = append(j.result.Failed, f)
		w.log.Warn().Str("key", key).Str("reason", f.Reason).Str("code", f.Code).Err(ce.Err).Msg("failed")
	case ce.Reason == copier.ReasonCanceled:
		j.canceled = true
	case ce.Reason == copier.ReasonCredentials:
		j.retry = true
		w.log.Warn().Str("key", key).Str("code", f.Code).Err(ce.Err).
			Msg("credentials refused as out of date even after a refresh: the message will be tried again; a worker with static keys needs credentials that renew (an IAM role)")
	default:
		j.retry = true
		w.log.Warn().Str("key", key).Err(ce.Err).Msg("failed for now; the message will be tried again")
	}
}

// failHint says what an operator can do about a key that failed for good,
// "" when there is nothing to say beyond the error.
func failHint(b *plan.Batch, f ledger.Failure, ce *copier.Error) string {
	switch ce.Reason {
	case copier.ReasonArchived:
		// An INTELLIGENT_TIERING archive tier is restored without Days (the
		// object moves back to the frequent tier); GLACIER and DEEP_ARCHIVE
		// restore a temporary copy for Days.
		request := `{"Days":7,"GlacierJobParameters":{"Tier":"Bulk"}}`
		if f.Class == "INTELLIGENT_TIERING" {
			request = `{}`
		}
		return fmt.Sprintf("archived: restore it, then enqueue the failures again (planner status --failures --out F; planner plan --from-file F): "+
			"aws s3api restore-object --bucket %s --key %s --restore-request '%s'", shellQuote(b.Source.Bucket), shellQuote(f.Key), request)
	case copier.ReasonNeedsKey:
		return "encrypted with a customer-provided key (SSE-C): a copy needs that key, which s3clone does not take; copy it with the key, e.g. aws s3 cp --sse-c"
	case copier.ReasonAccessDenied:
		// Refused for this key alone: the rest of the bucket copies.
		return "refused for this key alone while the rest of its bucket copies (an object another account owns, a KMS key of its own, a policy on its tags or prefix): " +
			"grant the workers access to it, then enqueue the failures again (planner status --failures --out F; planner plan --from-file F)"
	}
	return ""
}

// blockedHint says what an operator must fix for a blocked key.
func blockedHint(b *plan.Batch, key string, ce *copier.Error) string {
	if ce.Reason == copier.ReasonNoBucket {
		return fmt.Sprintf("create the bucket or fix the plan: source %s, destination %s", b.Source.Bucket, b.Dest.Bucket)
	}
	if b.Op == plan.OpSync {
		return fmt.Sprintf("grant the workers s3:GetObject and s3:GetObjectTagging on arn:aws:s3:::%s/%s and s3:ListBucket on arn:aws:s3:::%s (a sync reads the key, and without s3:ListBucket S3 answers 403 for a deleted key), "+
			"and s3:PutObject, s3:PutObjectTagging and s3:DeleteObject on arn:aws:s3:::%s/%s",
			b.Source.Bucket, key, b.Source.Bucket, b.Dest.Bucket, plan.DestKey(b.Source, b.Dest, key))
	}
	if b.Op == plan.OpDelete {
		return fmt.Sprintf("grant the workers s3:DeleteObject and s3:GetObject (a delete conditional on the listed ETag needs both) on arn:aws:s3:::%s/%s", b.Dest.Bucket, key)
	}
	return fmt.Sprintf("grant the workers s3:GetObject and s3:GetObjectTagging on arn:aws:s3:::%s/%s, and s3:PutObject and s3:PutObjectTagging on arn:aws:s3:::%s/%s; "+
		"and s3:ListBucket on arn:aws:s3:::%s, without which S3 answers 403, not 404, for a source object deleted since the plan",
		b.Source.Bucket, key, b.Dest.Bucket, plan.DestKey(b.Source, b.Dest, key), b.Source.Bucket)
}

// shellQuote quotes s for a POSIX shell: single quotes keep every byte as
// is but a single quote, which is closed, escaped and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
