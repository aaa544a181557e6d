// Package pace spreads a fleet's writes over S3's partitions.
//
// S3 takes at least 3,500 PUT/COPY/POST/DELETE requests a second per
// partitioned prefix, answers 503 SlowDown beyond, and splits a partition
// only after sustained load. The limit is the partition's, not a worker's.
// So the pacer keeps, per prefix of a destination bucket, one rate the
// whole fleet shares: the write requests a second each worker writing to
// the prefix may send. A prefix's rate starts low and doubles each second
// until S3 first throttles (slow start); a throttle cuts it to just below
// what S3 was taking; then it probes upwards in steps that grow while S3
// takes them, so that a partition that split is found within seconds.
//
// The fleet shares the rates through the ledger (pace/ in it; no server to
// run). A worker that meets a throttle cuts its rate at once; its cuts
// and raises are written to the prefix's rate, each write conditional on
// the version read; every worker lists pace/ each second and takes up what
// others wrote (a cut another met holds off its own raises), and a worker
// that joins starts at the fleet's rate instead of storming the partition.
// The rate is per worker, not the fleet's total, so workers that have no
// keys of a prefix take nothing of it, and every worker raising its own by
// the same share raises the fleet's total by that share, whatever its
// size. The fleet's size, from each worker's presence in pace/, keeps the
// total when workers join (each sends less), and bounds it: a floor, and
// the operator's caps.
//
// Retries of a throttled request wait for the prefix's rate, not for an
// exponential backoff that ignores it: a key is retried as soon as the
// fleet's rate has room for it.
package pace

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/ledger"
)

// Tuning. Rates are in write requests a second to one prefix.
const (
	// startRate is the fleet's first rate for a prefix nothing is known
	// of, shared out among the workers present.
	startRate = 100.0
	// minRate is the fleet's least rate for a prefix, shared out among the
	// workers present: S3 documents at least 3,500 a second per partitioned
	// prefix, so throttling below 100 is not the fleet's own doing
	// (another writer, or S3 in trouble), and slowing further would not
	// help.
	minRate  = 100.0
	minLocal = 0.5 // a worker's least rate, whatever the fleet's size
	// A throttle cuts the rate to cutToTaken of what S3 took in the last
	// second (window), by at least cutFactor and at most by half.
	cutToTaken = 0.95
	cutFactor  = 0.95
	maxCut     = 0.5
	window     = time.Second
	cutEvery   = 500 * time.Millisecond
	raiseEvery = 500 * time.Millisecond
	syncEvery  = time.Second
	// quietAfter without a throttle, a prefix whose demand is above its
	// rate is doubled each step, as in slow start.
	quietAfter = 1500 * time.Millisecond
	firstStep  = 0.05 // of the rate, after a cut
	stepGrowth = 2    // each step taken without a throttle
	maxStep    = 0.5  // of the rate
	// A rate not changed for this long is not trusted as is: S3 may have
	// merged the partition, or split it further.
	staleAfter    = 10 * time.Minute
	presenceEvery = 5 * time.Second
	// Fresh is how recently a worker must have written its presence to
	// count in the fleet.
	Fresh = 20 * time.Second
)

// Board is where the fleet shares its rates: *ledger.Store.
type Board interface {
	Pace(ctx context.Context) (ledger.PaceView, error)
	Rate(ctx context.Context, key string) (*ledger.Rate, error)
	RateKey(bucket, prefix string) string
	PutRate(ctx context.Context, r ledger.Rate) (string, error)
	PutPresence(ctx context.Context, p ledger.Presence) error
	DeletePresence(ctx context.Context, worker string) error
}

// Config sets up a Pacer.
type Config struct {
	// Worker names this worker on the board.
	Worker string
	// MaxRate caps each prefix's rate (the fleet's); 0 leaves it to S3.
	MaxRate float64
	// MaxFleetRate caps the fleet's writes to every prefix together; 0
	// leaves it to S3.
	MaxFleetRate float64
	// Board shares the rates with the fleet; nil paces this process alone.
	Board Board
	Log   zerolog.Logger
	// Heard, if set, is where the process counts every throttling answer
	// it gets, from before the pacer is made (Totals reports it); nil:
	// the pacer counts those it is told of (Heard).
	Heard *atomic.Int64
}

// Pacer paces one worker's writes. Safe for concurrent use.
type Pacer struct {
	cfg   Config
	fleet *bucket // MaxFleetRate's share, nil without one

	mu      sync.Mutex
	domains map[domainKey]*domain
	workers int                  // in the fleet, this one included
	waits   map[string]time.Time // bucket/key retried after a throttle → since

	now func() time.Time
	// synced is closed once the fleet was first counted (with a board): a
	// prefix's first rate is shared out among the workers present.
	synced     chan struct{}
	syncedOnce sync.Once

	started               atomic.Bool
	sent, throttled, cuts atomic.Int64
	heard                 *atomic.Int64 // Config.Heard, or the pacer's own
	queued                atomic.Int64  // keys waiting in Ahead
	lastWarn              time.Time
}

type domainKey struct{ bucket, prefix string }

// domain is one prefix of one bucket. Its fields are guarded by Pacer.mu.
type domain struct {
	domainKey
	tokens *bucket
	ready  chan struct{} // closed once the board's rate is read

	rate    float64 // each worker's
	slow    bool
	step    float64
	cut     time.Time // the last cut
	changed time.Time // the last change
	version string    // the board's version this rate is, or was based on
	dirty   bool      // changed here and not yet written to the board
	gen     int64     // counts the changes made here: a write clears dirty only for the one it wrote
	written time.Time // when this worker last wrote the rate
	wrote   time.Time // the cut it last wrote

	lastThrottle    time.Time
	wanted          time.Time // the last write sent
	taken           [10]int64 // writes S3 took in each tenth of the last window
	takenAt         time.Time // when the tenth taken[0] counts began
	sent, throttled int64     // since the last presence
	recent          int64     // sent in the interval before that
	since           time.Time
}

// New returns a pacer; Run shares its rates with the fleet.
func New(cfg Config) *Pacer {
	p := &Pacer{cfg: cfg, domains: map[domainKey]*domain{}, workers: 1, waits: map[string]time.Time{}, now: time.Now, synced: make(chan struct{})}
	p.heard = cfg.Heard
	if p.heard == nil {
		p.heard = new(atomic.Int64)
	}
	if cfg.MaxFleetRate > 0 {
		p.fleet = newBucket(cfg.MaxFleetRate, time.Now())
	}
	return p
}

// Prefix is the prefix of key that S3 is taken to partition on: up to
// and including its first "/", or "" (the bucket) for a key without one.
// Keys shaped like paths spread over their top-level folders, each of
// which S3 partitions apart once loaded; flat keys share one rate.
func Prefix(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i+1]
	}
	return ""
}

// Wait waits until a write to key in bucket may go: a request of a call
// under way (a retry, a part), served before keys waiting in Ahead.
func (p *Pacer) Wait(ctx context.Context, bucket, key string) error {
	if t, ok := ctx.Value(prepaidKey{}).(*prepaid); ok && t.bucket == bucket && t.prefix == Prefix(key) && t.unspent.CompareAndSwap(true, false) {
		return nil
	}
	return p.wait(ctx, bucket, key, true)
}

func (p *Pacer) wait(ctx context.Context, bucket, key string, urgent bool) error {
	d := p.domain(ctx, bucket, Prefix(key))
	if err := d.tokens.Wait(ctx, urgent); err != nil {
		return err
	}
	if p.fleet != nil {
		if err := p.fleet.Wait(ctx, urgent); err != nil {
			return err
		}
	}
	p.sent.Add(1)
	p.mu.Lock()
	d.sent++
	d.wanted = p.now()
	p.mu.Unlock()
	return nil
}

type prepaidKey struct{}

// prepaid is a token taken ahead for the first write of a key.
type prepaid struct {
	bucket, prefix string
	unspent        atomic.Bool
}

// Ahead waits, as Wait does, until a write to key may go, and returns a
// context in which the first write to key's prefix goes without waiting
// again: a worker waits for the rate before a key takes one of its copy
// slots, so that keys of a prefix S3 throttles wait without holding up
// the keys of others.
func (p *Pacer) Ahead(ctx context.Context, bucket, key string) (context.Context, error) {
	p.queued.Add(1)
	err := p.wait(ctx, bucket, key, false)
	p.queued.Add(-1)
	if err != nil {
		return ctx, err
	}
	t := &prepaid{bucket: bucket, prefix: Prefix(key)}
	t.unspent.Store(true)
	return context.WithValue(ctx, prepaidKey{}, t), nil
}

// Lead is how far ahead of its prefixes' rates a worker holds keys: it
// takes more work from the queue only while the keys waiting for their
// rate would be sent within Lead (and within the worker's Hold). The queue
// is one line for every prefix: a worker that held only a few seconds of
// work stopped taking messages behind a run of a slow prefix's, and a
// fast prefix waiting further down the queue stood still (15 s of 40 in
// BenchmarkPartitions with Lead at 3 s). Holding more, an uneven share of
// a prefix's keys is what makes a tail; the doubling after quietAfter
// lets the workers that hold them take the prefix's whole rate.
const Lead = time.Minute

// minRoom is the least room: a worker always takes a message when it
// waits for none.
const minRoom = 32

// Room is how many more keys this worker should take: the writes a second
// it may send to the prefixes it sent to lately, times Lead, less the keys
// already waiting for their rate (at least minRoom, less those).
func (p *Pacer) Room() int {
	now := p.now()
	p.mu.Lock()
	var rate float64
	for _, d := range p.domains {
		if now.Sub(d.wanted) < 5*time.Second {
			rate += p.share(d)
		}
	}
	p.mu.Unlock()
	if p.fleet != nil {
		rate = min(rate, p.fleet.Rate())
	}
	return max(minRoom, int(rate*Lead.Seconds())) - int(p.queued.Load())
}

// Done hears how a write to key went: throttled, or not.
func (p *Pacer) Done(bucket, key string, throttled bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.domains[domainKey{bucket, Prefix(key)}]
	if !throttled {
		if d != nil {
			d.take(now)
		}
		return
	}
	p.throttled.Add(1)
	id := bucket + "/" + key
	if _, ok := p.waits[id]; !ok {
		p.waits[id] = now
	}
	if d == nil {
		return
	}
	d.throttled++
	d.lastThrottle = now
	if now.Sub(d.cut) < cutEvery {
		return // the same burst
	}
	// Just below what S3 took, which a partition at its limit shows when
	// this worker sent all its rate allowed; else by cutFactor.
	d.rate *= cutFactor
	if d.tokens.WaitedSince(now.Add(-window)) {
		d.rate = min(d.rate, max(d.rate/cutFactor*maxCut, cutToTaken*d.takenRate(now)))
	}
	d.rate = max(d.rate, p.floor())
	d.slow = false
	d.step = d.rate * firstStep
	d.cut, d.changed, d.dirty = now, now, p.cfg.Board != nil
	d.gen++
	p.cuts.Add(1)
	p.apply(d)
}

// take counts a write S3 took; the caller holds mu.
func (d *domain) take(now time.Time) {
	d.advance(now)
	d.taken[len(d.taken)-1]++
}

// advance moves the window up to now; the caller holds mu.
func (d *domain) advance(now time.Time) {
	tenth := window / time.Duration(len(d.taken))
	shift := 0
	if !d.takenAt.IsZero() {
		shift = int(now.Sub(d.takenAt)/tenth) - (len(d.taken) - 1)
	}
	switch {
	case d.takenAt.IsZero() || shift >= len(d.taken): // the first write, or a long quiet
		d.taken = [10]int64{}
		d.takenAt = now.Add(-window + tenth)
	case shift > 0:
		copy(d.taken[:], d.taken[shift:])
		clear(d.taken[len(d.taken)-shift:])
		d.takenAt = d.takenAt.Add(time.Duration(shift) * tenth)
	}
}

// takenRate is the writes a second S3 took in the last window; the caller
// holds mu.
func (d *domain) takenRate(now time.Time) float64 {
	d.advance(now)
	var n int64
	for _, c := range d.taken {
		n += c
	}
	return float64(n) / window.Seconds()
}

// Heard counts a throttling answer to any request of this process (the
// clients' retry observer calls it).
func (p *Pacer) Heard() { p.heard.Add(1) }

// Settle hears that a call writing key is over, whatever its outcome: the
// key no longer waits.
func (p *Pacer) Settle(bucket, key string) {
	p.mu.Lock()
	delete(p.waits, bucket+"/"+key)
	p.mu.Unlock()
}

// domain returns bucket's prefix, reading the fleet's rate for it first.
func (p *Pacer) domain(ctx context.Context, bucket, prefix string) *domain {
	k := domainKey{bucket, prefix}
	p.mu.Lock()
	d, ok := p.domains[k]
	if !ok && p.cfg.Board != nil {
		p.mu.Unlock()
		p.counted(ctx)
		p.mu.Lock()
		d, ok = p.domains[k]
	}
	if !ok {
		d = &domain{domainKey: k, rate: startRate / float64(p.workers), slow: true, ready: make(chan struct{}), since: p.now()}
		d.step = d.rate * firstStep
		d.tokens = newBucket(p.share(d), time.Now())
		p.domains[k] = d
	}
	p.mu.Unlock()
	if ok {
		<-d.ready
		return d
	}
	defer close(d.ready)
	if p.cfg.Board == nil {
		return d
	}
	rec, err := call(ctx, func(ctx context.Context) (*ledger.Rate, error) {
		return p.cfg.Board.Rate(ctx, p.cfg.Board.RateKey(bucket, prefix))
	})
	if err != nil {
		p.warn(err, "cannot read the fleet's rate; starting slowly")
		return d
	}
	if rec == nil {
		return d
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.now().Sub(rec.At) > staleAfter {
		// Known once, not lately: start from half of it, slowly.
		d.rate, d.slow, d.version = max(startRate/float64(p.workers), rec.PerWorker/2), true, rec.Version
		d.step = d.rate * firstStep
	} else {
		p.adopt(d, rec)
	}
	p.apply(d)
	return d
}

// counted waits, for a little while, until the fleet was first counted.
func (p *Pacer) counted(ctx context.Context) {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-p.synced:
	case <-t.C:
	case <-ctx.Done():
	}
}

// share is what this worker may send to d: its rate, within the
// operator's cap shared out among the workers present; the caller holds mu.
func (p *Pacer) share(d *domain) float64 {
	r := d.rate
	if p.cfg.MaxRate > 0 {
		r = min(r, p.cfg.MaxRate/float64(p.workers))
	}
	return r
}

// floor is the least rate of a worker: minRate shared out among the
// workers present; the caller holds mu.
func (p *Pacer) floor() float64 { return p.floorOf(p.workers) }

func (p *Pacer) floorOf(workers int) float64 { return max(minLocal, minRate/float64(workers)) }

// apply sets d's bucket to its share; the caller holds mu.
func (p *Pacer) apply(d *domain) { d.tokens.Set(p.share(d)) }

// adopt takes the board's rate for d when it is newer than d's (a change
// another worker made later), or holds a cut d has not made; else d's own
// is to be written over it. The caller holds mu.
func (p *Pacer) adopt(d *domain, rec *ledger.Rate) {
	d.version = rec.Version
	// Another worker's clock ahead of this one's must not hold off this
	// one's raises: no time of the board's is later than now here.
	now := p.now()
	rec.At, rec.Cut = minTime(rec.At, now), minTime(rec.Cut, now)
	// The rate was written for the fleet its writer counted: the same
	// total over this worker's count.
	rate := rec.PerWorker
	if rec.Workers > 0 && p.workers > 0 {
		rate = max(p.floor(), rate*float64(rec.Workers)/float64(p.workers))
	}
	if !rec.Cut.After(d.cut) && !rec.At.After(d.changed) {
		d.dirty = p.cfg.Board != nil && (d.rate != rate || d.slow != rec.SlowStart)
		return
	}
	d.rate, d.slow, d.step, d.dirty = rate, rec.SlowStart, rec.Step, false
	if d.step <= 0 {
		d.step = d.rate * firstStep
	}
	if rec.Cut.After(d.cut) {
		// Another worker met a throttle: this one holds off its raises as
		// if it had met it.
		d.cut = rec.Cut
		d.lastThrottle = maxTime(d.lastThrottle, rec.Cut)
	}
	d.changed = maxTime(d.changed, rec.At)
	p.apply(d)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Start puts this worker on the board and reads it once, before any
// write: an error says the board refuses it (the ledger's grants on
// pace/). Without a board it does nothing.
func (p *Pacer) Start(ctx context.Context) error {
	board := p.cfg.Board
	if board == nil {
		return nil
	}
	if _, err := call(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, board.PutPresence(ctx, p.presence()) }); err != nil {
		return err
	}
	if _, err := call(ctx, board.Pace); err != nil {
		return err
	}
	p.started.Store(true)
	p.sync(ctx)
	return nil
}

// Run shares the rates with the fleet and raises them while S3 takes
// more, until ctx ends; then it takes this worker off the board.
func (p *Pacer) Run(ctx context.Context) {
	board := p.cfg.Board
	var lastSync, lastPresence time.Time
	if board != nil {
		if p.started.Load() {
			lastSync, lastPresence = time.Now(), time.Now()
		} else {
			p.present(ctx)
			lastPresence = time.Now()
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := board.DeletePresence(ctx, p.cfg.Worker); err != nil {
				p.warn(err, "cannot take this worker off the fleet's board")
			}
		}()
	}
	tick := time.NewTicker(raiseEvery)
	defer tick.Stop()
	for {
		if board != nil && time.Since(lastSync) >= syncEvery {
			p.sync(ctx)
			lastSync = time.Now()
			if time.Since(lastPresence) >= presenceEvery {
				p.present(ctx)
				lastPresence = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.raise()
	}
}

// sync counts the fleet, takes up the rates others changed, writes the
// changes made here, and forgets prefixes long idle.
func (p *Pacer) sync(ctx context.Context) {
	defer p.syncedOnce.Do(func() { close(p.synced) }) // counted or not: a prefix's first rate waits no longer
	board := p.cfg.Board
	view, err := call(ctx, board.Pace)
	if err != nil {
		p.warn(err, "cannot read the fleet's rates: pacing alone")
		return
	}
	now := p.now()
	workers := 1
	for w, at := range view.Workers {
		if w != p.cfg.Worker && now.Sub(at) < Fresh {
			workers++
		}
	}
	versions := make(map[string]string, len(view.Rates))
	for _, r := range view.Rates {
		versions[r.Key] = r.Version
	}
	p.mu.Lock()
	if workers != p.workers {
		// More workers: each sends less, so the fleet's total stays; the
		// newcomers start at the same share. Fewer: the others raise into
		// the room as S3 takes it.
		for _, d := range p.domains {
			if workers > p.workers {
				d.rate = max(p.floorOf(workers), d.rate*float64(p.workers)/float64(workers))
			}
		}
		p.workers = workers
		for _, d := range p.domains {
			p.apply(d)
		}
		if p.fleet != nil {
			p.fleet.Set(p.cfg.MaxFleetRate / float64(workers))
		}
	}
	var changed, dirty []*domain
	for k, d := range p.domains {
		key := board.RateKey(d.bucket, d.prefix)
		v, listed := versions[key]
		switch {
		case listed && v != d.version:
			changed = append(changed, d)
		case d.dirty && d.cut.Equal(d.wrote) && now.Sub(d.written) < presenceEvery:
			// Raises only: every worker makes its own, so the board needs
			// them only for workers that join; written every few seconds.
		case d.dirty:
			if !listed {
				d.version = "" // deleted since (or never written): written anew
			}
			dirty = append(dirty, d)
		case now.Sub(d.wanted) > idleAfter && now.Sub(d.since) > idleAfter && !d.tokens.WaitedSince(now.Add(-idleAfter)):
			delete(p.domains, k) // long idle: read from the board again if it comes back
		}
	}
	p.mu.Unlock()
	for _, d := range changed {
		rec, err := call(ctx, func(ctx context.Context) (*ledger.Rate, error) {
			return board.Rate(ctx, board.RateKey(d.bucket, d.prefix))
		})
		if err != nil || rec == nil {
			continue
		}
		p.mu.Lock()
		p.adopt(d, rec)
		if d.dirty {
			dirty = append(dirty, d)
		}
		p.mu.Unlock()
	}
	for _, d := range dirty {
		p.mu.Lock()
		rec, gen := p.record(d), d.gen
		p.mu.Unlock()
		version, err := call(ctx, func(ctx context.Context) (string, error) { return board.PutRate(ctx, rec) })
		p.mu.Lock()
		if err == nil && d.version == rec.Version {
			d.version = version
			d.dirty = d.gen != gen // changed again while written: written at the next sync
			d.written, d.wrote = now, rec.Cut
		}
		p.mu.Unlock()
		if err != nil && !errors.Is(err, ledger.ErrRateMoved) {
			p.warn(err, "cannot write a rate to the fleet's board")
		}
		// Moved: read and merged at the next sync.
	}
}

// boardTimeout bounds each call to the board: a slow ledger must not hold
// up the raises and the presence.
const boardTimeout = 5 * time.Second

// idleAfter is how long a prefix goes unused before a worker forgets it.
const idleAfter = 10 * time.Minute

func call[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, boardTimeout)
	defer cancel()
	return f(ctx)
}

// record is d as the board keeps it; the caller holds mu.
func (p *Pacer) record(d *domain) ledger.Rate {
	return ledger.Rate{Bucket: d.bucket, Prefix: d.prefix, PerWorker: d.rate, Workers: p.workers, SlowStart: d.slow, Step: d.step,
		Cut: d.cut, At: d.changed, By: p.cfg.Worker, Version: d.version}
}

// raise raises the rate of each prefix whose demand was above it for a
// step without a throttle: doubled in slow start, else by a step that
// grows while S3 takes it. A raise is this worker's own, written to the
// board at the next sync: every worker raises its own rate by the same
// share, so the fleet's total grows by the same share whatever its size.
func (p *Pacer) raise() {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.domains {
		if !d.tokens.WaitedSince(now.Add(-raiseEvery)) {
			continue // no demand beyond the rate since the last step
		}
		if now.Sub(d.changed) < raiseEvery || now.Sub(d.lastThrottle) < raiseEvery {
			continue
		}
		next, step := d.rate+d.step, min(d.step*stepGrowth, d.rate*maxStep)
		if d.slow || now.Sub(d.lastThrottle) >= quietAfter {
			// Slow start; or S3 took all it was sent for a while, though
			// it was all this worker was allowed (others with keys of
			// the prefix ran out, or the partition split): doubled.
			next, step = d.rate*2, d.step
		}
		if p.cfg.MaxRate > 0 {
			limit := p.cfg.MaxRate / float64(p.workers)
			if d.rate >= limit {
				continue
			}
			next = min(next, limit)
		}
		// A slow start not yet throttled stays this worker's own: a
		// prefix's rate is written once S3 has shown where its limit is.
		d.rate, d.step, d.changed = next, step, now
		d.dirty = p.cfg.Board != nil && (!d.cut.IsZero() || d.version != "")
		d.gen++
		p.apply(d)
	}
}

// present writes this worker's presence.
func (p *Pacer) present(ctx context.Context) {
	pr := p.presence()
	if _, err := call(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, p.cfg.Board.PutPresence(ctx, pr) }); err != nil {
		p.warn(err, "cannot write this worker's presence: the fleet may count one worker too few")
	}
}

// presence is what this worker sent and met since the last one.
func (p *Pacer) presence() ledger.Presence {
	now := p.now()
	pr := ledger.Presence{Worker: p.cfg.Worker, At: now, Queued: int(p.queued.Load())}
	if p.cfg.MaxRate > 0 || p.cfg.MaxFleetRate > 0 {
		pr.Caps = map[string]int{"per_prefix": int(p.cfg.MaxRate), "fleet": int(p.cfg.MaxFleetRate)}
	}
	p.mu.Lock()
	for _, d := range p.domains {
		secs := now.Sub(d.since).Seconds()
		if d.sent > 0 || d.throttled > 0 {
			pr.Prefixes = append(pr.Prefixes, ledger.PrefixRate{Bucket: d.bucket, Prefix: d.prefix, Allowed: p.share(d),
				Sent: d.sent, Throttled: d.throttled, Seconds: secs})
		}
		d.recent = d.sent
		d.sent, d.throttled, d.since = 0, 0, now
	}
	pr.Waiting = len(p.waits)
	if k, since, ok := p.longestLocked(); ok {
		b, key, _ := strings.Cut(k, "/")
		pr.Longest = &ledger.KeyWait{Bucket: b, Key: key, Since: since}
	}
	p.mu.Unlock()
	sort.Slice(pr.Prefixes, func(i, j int) bool { return pr.Prefixes[i].Sent > pr.Prefixes[j].Sent })
	if len(pr.Prefixes) > maxPresencePrefixes {
		pr.Prefixes = pr.Prefixes[:maxPresencePrefixes]
	}
	return pr
}

// maxPresencePrefixes is how many of its busiest prefixes a worker's
// presence names.
const maxPresencePrefixes = 20

func (p *Pacer) longestLocked() (string, time.Time, bool) {
	var key string
	var since time.Time
	for k, t := range p.waits {
		if since.IsZero() || t.Before(since) {
			key, since = k, t
		}
	}
	return key, since, key != ""
}

// warn logs a board error at most once a minute: pacing goes on with what
// this worker knows.
func (p *Pacer) warn(err error, msg string) {
	p.mu.Lock()
	if time.Since(p.lastWarn) < time.Minute {
		p.mu.Unlock()
		return
	}
	p.lastWarn = time.Now()
	p.mu.Unlock()
	p.cfg.Log.Warn().Err(err).Msg(msg)
}

// Totals are what a pacer saw, for the progress line and metrics.
type Totals struct {
	// Sent are the paced writes, Throttled those S3 throttled, Cuts the
	// rate cuts they made; Heard every throttling answer this process got
	// (Heard), reads and the ledger's included.
	Sent, Throttled, Cuts, Heard int64
	Workers                      int // in the fleet, as last counted
	Prefixes                     int // written to
	// Queued keys wait for their prefix's rate before they start.
	Queued int
	// Waiting keys are being retried after a throttle; Longest has waited
	// longest, since Since.
	Waiting int
	Longest string
	Since   time.Time
	// Hot is the prefix sent to most lately, with what this worker may
	// send it a second.
	Hot   string
	Share float64
}

// Totals returns what the pacer saw so far.
func (p *Pacer) Totals() Totals {
	t := Totals{Sent: p.sent.Load(), Throttled: p.throttled.Load(), Cuts: p.cuts.Load(), Heard: p.heard.Load()}
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Workers, t.Prefixes, t.Waiting, t.Queued = p.workers, len(p.domains), len(p.waits), int(p.queued.Load())
	t.Longest, t.Since, _ = p.longestLocked()
	var hot *domain
	for _, d := range p.domains {
		if hot == nil || d.sent+d.recent > hot.sent+hot.recent {
			hot = d
		}
	}
	if hot != nil {
		t.Hot, t.Share = hot.bucket+"/"+hot.prefix, p.share(hot)
	}
	return t
}

// jitter is the pause before a throttled request is tried again: the
// prefix's rate does the waiting.
func jitter() time.Duration { return time.Duration(rand.Int64N(int64(20 * time.Millisecond))) }
