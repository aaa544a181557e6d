package follow

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// MarksPrefix is where a cutover writes its marker object in the source
// bucket by default: a reserved prefix follow never copies.
const MarksPrefix = plan.MarksPrefix

// Changes is the queue the source's events arrive on.
type Changes interface {
	Receive(ctx context.Context, n int, wait, visibility time.Duration) ([]queue.Message, error)
	Delete(ctx context.Context, msgs []queue.Message) error
}

// Sender sends work messages to the fleet's queue.
type Sender interface {
	Send(ctx context.Context, msgs []queue.Outgoing) error
}

// Recorder records the sequence numbers the work queue accepted (the run's
// sent records); then is called once they are durable.
type Recorder interface {
	Sent(seqs []int64, t ledger.Totals, then func())
}

// Board is where follow keeps its record and the marks it saw.
type Board interface {
	PutFollow(ctx context.Context, f ledger.Follow) error
	PutMark(ctx context.Context, m ledger.Mark) error
}

// Config tunes a Follower. Zero values take the defaults.
type Config struct {
	Run          string
	Source, Dest plan.Location
	Copy         plan.Copy
	// Marks is the reserved prefix of cutover markers in the source
	// bucket. Default MarksPrefix.
	Marks string
	// BatchKeys is the most keys in one work message. Default 100.
	BatchKeys int
	// Flush is the longest a key waits for others to share its message.
	// Default 200 ms.
	Flush time.Duration
	// Settle is how long a mark stays open after its event came, for
	// events S3 sent out of order; 0 takes twice the worst lateness seen
	// in the last ten minutes, at least MinSettle and at most MaxSettle.
	Settle time.Duration
	// Visibility hides received events until they are in sent work.
	// Default two minutes.
	Visibility time.Duration
	// Record carries the record's fixed fields (Via, Queue, Config, After,
	// Anchored, Subscribed); the rest follow fills in.
	Record ledger.Follow
	// RecordEvery is how often the record is rewritten. Default 5 s.
	RecordEvery time.Duration
	// Probe, when set, writes the marker object of mark id ProbeID once
	// Run begins receiving, and Unprobe deletes it: its event coming
	// through shows the bucket's events reach follow, and from when
	// (Subscribed, the time just before the probe was written).
	Probe, Unprobe func(ctx context.Context) error
	ProbeID        string
	// CatchUp, when set, runs once the probe came through, for the changes
	// made before follow's events began that the bulk copy may have
	// missed (it may list both buckets): each key it takes is sent as
	// sync work like an event's. When it returns nil the clone is
	// anchored. Without it, the probe alone anchors it.
	CatchUp func(ctx context.Context, subscribed time.Time, take func(key string)) error
	// GoOn keeps following after a cutover's clean verdict (a migration,
	// where the destination becomes production). Without it follow holds
	// at a cutover's mark: events dated after it are left on the queue,
	// and once the cutover's verdict is clean follow stops, so that the
	// destination stays the source as of the mark while production writes
	// again.
	GoOn bool
	// Verdict reads a cutover's verdict: whether it was given, and clean.
	Verdict func(ctx context.Context, run string) (given, clean bool, err error)
}

// DefaultFlush is Config.Flush's default.
const DefaultFlush = 200 * time.Millisecond

// Settle bounds when Config.Settle is 0.
const (
	MinSettle = time.Second
	MaxSettle = time.Minute
)

func (c Config) withDefaults() Config {
	if c.Marks == "" {
		c.Marks = MarksPrefix
	}
	if c.BatchKeys <= 0 {
		c.BatchKeys = 100
	}
	if c.Flush <= 0 {
		c.Flush = DefaultFlush
	}
	if c.Visibility <= 0 {
		c.Visibility = 2 * time.Minute
	}
	if c.RecordEvery <= 0 {
		c.RecordEvery = 5 * time.Second
	}
	return c
}

// Follower turns the source's events into sync work for the fleet.
type Follower struct {
	cfg     Config
	changes Changes
	work    Sender
	rec     Recorder
	board   Board
	log     zerolog.Logger
	now     func() time.Time

	// Owned by Run's goroutine.
	pending  map[string]time.Time // key -> when it was first received since the last flush
	oldest   time.Time            // when the oldest pending key came
	held     []queue.Message      // events whose keys are pending
	seq      int64
	marks    map[string]*ledger.Mark // open and closed, by id
	closing  []*ledger.Mark          // open marks, by when they close
	late     map[string]*ledger.Mark // pending late keys -> the mark they are late for
	probed   time.Time               // when the probe was written
	caught   chan string             // keys the catch-up takes
	caughtUp chan error              // the catch-up's end
	cut      *ledger.Mark            // the cutover mark follow holds at
	stopped  *ledger.Mark            // the mark follow stopped at
	record   ledger.Follow
	newest   time.Time                 // the newest event time seen
	lateness map[int64]time.Duration   // per 10 s of receive time: the most an event came after a newer one
	deleting sync.WaitGroup            // deletions of events, once their work is durable
	sendErr  func(error) time.Duration // backoff before a failed send is tried again
}

// New returns a Follower.
func New(cfg Config, changes Changes, work Sender, rec Recorder, board Board, log zerolog.Logger) *Follower {
	cfg = cfg.withDefaults()
	f := &Follower{cfg: cfg, changes: changes, work: work, rec: rec, board: board, log: log, now: time.Now,
		pending: map[string]time.Time{}, marks: map[string]*ledger.Mark{}, late: map[string]*ledger.Mark{},
		lateness: map[int64]time.Duration{}, record: cfg.Record, caught: make(chan string, 1024), caughtUp: make(chan error, 1)}
	f.record.Run = cfg.Run
	f.sendErr = func(error) time.Duration { return time.Second }
	return f
}

// received is one receive's messages, decoded.
type received struct {
	msgs    []queue.Message
	changes [][]Change
	at      time.Time
	err     error
}

// Run follows until ctx ends: events are received, their keys gathered for
// up to Flush and sent as sync work, and each event deleted once its key's
// work message is sent and recorded. On the way out what is pending is
// sent, and the record written a last time.
func (f *Follower) Run(ctx context.Context) error {
	f.record.Started = f.now()
	in := make(chan received, 2)
	recvCtx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	go f.receive(recvCtx, in)
	tick := time.NewTicker(f.cfg.Flush / 2)
	defer tick.Stop()
	every := time.NewTicker(f.cfg.RecordEvery)
	defer every.Stop()
	f.writeRecord(ctx)
	var lastVerdict time.Time
	var probeLimit <-chan time.Time
	if f.cfg.Probe != nil {
		t := time.NewTimer(ProbeWait)
		defer t.Stop()
		probeLimit = t.C
		f.probed = f.now()
		if err := f.cfg.Probe(ctx); err != nil {
			stopRecv()
			return fmt.Errorf("probe the source's events: %w", err)
		}
	}
	for {
		select {
		case k := <-f.caught:
			f.takeCaught(k)
		case <-probeLimit:
			if f.record.Subscribed.IsZero() {
				stopRecv()
				f.flush(context.Background())
				f.deleting.Wait()
				return fmt.Errorf("%w: the probe s3://%s/%s did not come through within %s", ErrNoEvents, f.cfg.Source.Bucket, MarkKey(f.cfg.ProbeID), ProbeWait)
			}
		case err := <-f.caughtUp:
			for drained := false; !drained; {
				select {
				case k := <-f.caught: // sent before the end: all there
					f.takeCaught(k)
				default:
					drained = true
				}
			}
			if err != nil {
				f.log.Error().Err(err).Msg("the catch-up failed: the clone is not anchored; restart follow to try again")
				continue
			}
			f.record.Anchored = true
			f.writeRecord(ctx)
			f.log.Info().Msg("anchored: every change before follow's events began is in the bulk copy or the catch-up")
		case <-ctx.Done():
			stopRecv()
			end := context.Background()
			f.flush(end)
			f.closeMarks(end, true)
			f.deleting.Wait()
			f.record.Stopped = f.now()
			f.writeRecord(end)
			return nil
		case r := <-in:
			if r.err != nil {
				f.log.Warn().Err(r.err).Msg("receiving events failed; trying again")
				continue
			}
			f.absorb(r)
			if len(f.pending) >= f.cfg.BatchKeys*10 {
				f.flush(ctx)
			}
		case <-tick.C:
			if len(f.pending) > 0 && f.now().Sub(f.oldest) >= f.cfg.Flush {
				f.flush(ctx)
			}
			f.closeMarks(ctx, false)
			if f.cut != nil && f.now().Sub(lastVerdict) >= time.Second {
				lastVerdict = f.now()
				if f.holdEnds(ctx) {
					f.record.StoppedAt = f.stopped.ID
					stopRecv()
					f.flush(ctx)
					f.deleting.Wait()
					f.record.Stopped = f.now()
					f.writeRecord(ctx)
					return nil
				}
			}
		case <-every.C:
			f.writeRecord(ctx)
		}
	}
}

// receive long-polls the change queue and hands over what comes.
func (f *Follower) receive(ctx context.Context, out chan<- received) {
	for ctx.Err() == nil {
		msgs, err := f.changes.Receive(ctx, 10, 20*time.Second, f.cfg.Visibility)
		if ctx.Err() != nil {
			return
		}
		r := received{msgs: msgs, at: f.now(), err: err}
		if err != nil {
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
			sleep(ctx, time.Second)
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		for _, m := range msgs {
			changes, test, err := Decode(m.Body)
			switch {
			case err != nil:
				f.log.Warn().Err(err).Str("message", m.ID).Msg("a message on the change queue that is not an S3 event: deleted")
			case test:
				f.log.Info().Msg("S3's test event received: the bucket sends its events here")
			}
			r.changes = append(r.changes, changes)
		}
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
	}
}

// absorb takes in one receive's events.
func (f *Follower) absorb(r received) {
	if f.record.Subscribed.IsZero() && f.cfg.Probe == nil {
		f.record.Subscribed = r.at
	}
	for i, changes := range r.changes {
		keep := false
		for _, c := range changes {
			if !f.take(c, r.at) {
				keep = true
			}
		}
		if !keep {
			f.held = append(f.held, r.msgs[i])
		}
	}
	if len(f.pending) == 0 && len(f.held) > 0 {
		// Only ignored events: nothing to send, so delete them now.
		f.release(f.held)
		f.held = nil
	}
}

// take takes one change received at at. It reports false for a change
// held back (dated after the cutover mark follow holds at): its message
// stays on the queue, for a later follow.
func (f *Follower) take(c Change, at time.Time) bool {
	f.record.Events++
	if c.Time.IsZero() {
		c.Time = at // no time the follower could read: as late as it can be
	}
	if c.Bucket != f.cfg.Source.Bucket {
		f.record.Ignored++
		return true
	}
	f.noteTime(c, at)
	if strings.HasPrefix(c.Key, f.cfg.Marks) {
		f.markSeen(c, at)
		return true
	}
	if !strings.HasPrefix(c.Key, f.cfg.Source.Prefix) {
		f.record.Ignored++
		return true
	}
	if f.cut != nil && c.Time.After(f.cut.EventTime) {
		f.record.HeldBack++
		return false
	}
	for _, m := range f.marks {
		if !m.Closed.IsZero() && c.Time.Before(m.EventTime) {
			f.late[c.Key] = m
			m.Late = append(m.Late, ledger.Late{Key: c.Key, Time: c.Time, Received: at})
			f.log.Warn().Str("key", c.Key).Str("mark", m.ID).Time("event_time", c.Time).Time("mark_time", m.EventTime).
				Msg("an event dated before a closed mark came after it: sent all the same, and recorded with the mark")
		}
	}
	if _, ok := f.pending[c.Key]; !ok {
		if len(f.pending) == 0 {
			f.oldest = at
		}
		f.pending[c.Key] = at
	}
	return true
}

// noteTime keeps the newest event time, the lag and the lateness.
func (f *Follower) noteTime(c Change, at time.Time) {
	if c.Time.After(f.newest) {
		f.newest = c.Time
		f.record.LastEvent = c.Time
		f.record.Lag = max(at.Sub(c.Time), 0)
		return
	}
	late := f.newest.Sub(c.Time)
	slot := at.Unix() / 10
	if late > f.lateness[slot] {
		f.lateness[slot] = late
	}
}

// worstLateness is the most an event came after a newer one in the last
// ten minutes.
func (f *Follower) worstLateness() time.Duration {
	cutoff := f.now().Add(-10*time.Minute).Unix() / 10
	var worst time.Duration
	for slot, d := range f.lateness {
		if slot < cutoff {
			delete(f.lateness, slot)
			continue
		}
		worst = max(worst, d)
	}
	return worst
}

// settle is how long the next mark stays open.
func (f *Follower) settle() time.Duration {
	if f.cfg.Settle > 0 {
		return f.cfg.Settle
	}
	return min(max(2*f.worstLateness(), MinSettle), MaxSettle)
}

// markSeen opens a mark whose marker object's creation came through; its
// deletion (the cutover removes the marker) is no news.
func (f *Follower) markSeen(c Change, at time.Time) {
	id := strings.TrimPrefix(c.Key, f.cfg.Marks)
	if c.Removed || id == "" || strings.Contains(id, "/") || f.marks[id] != nil {
		return
	}
	m := &ledger.Mark{Run: f.cfg.Run, ID: id, Key: c.Key, EventTime: c.Time, Seen: at, Settle: f.settle()}
	f.marks[id] = m
	f.closing = append(f.closing, m)
	f.log.Info().Str("mark", id).Dur("settle", m.Settle).Msg("a cutover's mark came through: waiting for events sent out of order")
}

// closeMarks closes the marks whose settle time has passed (all of them
// when all is set): what is pending is sent first, so that every key
// received before the close is in a message numbered at most the mark's
// Seq.
func (f *Follower) closeMarks(ctx context.Context, all bool) {
	var due []*ledger.Mark
	now := f.now()
	f.closing = slices.DeleteFunc(f.closing, func(m *ledger.Mark) bool {
		if all || !now.Before(m.Seen.Add(m.Settle)) {
			due = append(due, m)
			return true
		}
		return false
	})
	if len(due) == 0 {
		return
	}
	f.flush(ctx)
	for _, m := range due {
		m.Closed = f.now()
		m.Seq = f.seq
		if m.ID == f.cfg.ProbeID && f.cfg.Probe != nil {
			f.probeCame(ctx, m)
		}
		if Cutover(m.ID) && !f.cfg.GoOn && f.cfg.Verdict != nil && f.cut == nil {
			f.cut = m
			f.log.Info().Str("mark", m.ID).Msg("holding at the cutover's mark: events dated after it stay on the queue until its verdict")
		}
		f.putMark(ctx, m)
		f.log.Info().Str("mark", m.ID).Int64("seq", m.Seq).Msg("mark closed: every change received before it is in work sent")
	}
}

// ProbeWait is how long follow waits for its probe's event before it
// gives up: S3 delivers events within seconds, "sometimes a minute or
// longer" (the S3 user guide, "Amazon S3 Event Notifications").
const ProbeWait = 3 * time.Minute

// ErrNoEvents marks a source whose events do not reach follow's queue.
var ErrNoEvents = errors.New("the source bucket's events do not reach the change queue")

// takeCaught takes a key the catch-up found different.
func (f *Follower) takeCaught(k string) {
	f.take(Change{Bucket: f.cfg.Source.Bucket, Key: k, Name: "catch-up", Time: f.now()}, f.now())
	f.record.Events--
	f.record.CaughtUp++
}

// Mark ids: follow's probe, a rehearsal's mark, and a cutover's (any
// other id).
const (
	ProbePrefix     = "probe-"
	RehearsalPrefix = "rehearsal-"
)

// Cutover reports the id of a cutover's mark, at which follow holds.
func Cutover(id string) bool {
	return !strings.HasPrefix(id, ProbePrefix) && !strings.HasPrefix(id, RehearsalPrefix)
}

// holdEnds reads the verdict of the cutover follow holds at: clean, and
// follow stops there (true); not clean, and follow follows again (the
// freeze goes on, and the cutover will be run again).
func (f *Follower) holdEnds(ctx context.Context) bool {
	given, clean, err := f.cfg.Verdict(ctx, f.cut.ID)
	switch {
	case err != nil:
		f.log.Warn().Err(err).Str("mark", f.cut.ID).Msg("cannot read the cutover's verdict; trying again")
		return false
	case !given:
		return false
	case clean:
		f.stopped = f.cut
		f.log.Info().Str("mark", f.cut.ID).Msg("the cutover's verdict is clean: follow stops at its mark, the destination the source as of it")
		return true
	}
	f.log.Warn().Str("mark", f.cut.ID).Msg("the cutover's verdict is not clean: following again for the next cutover")
	f.cut = nil
	return false
}

// StoppedAt is the cutover mark Run stopped at, nil when it stopped for
// another reason.
func (f *Follower) StoppedAt() *ledger.Mark { return f.stopped }

// probeCame takes the probe's mark: events flow, from the time the probe
// was written; the catch-up (if any) starts.
func (f *Follower) probeCame(ctx context.Context, m *ledger.Mark) {
	f.record.Subscribed = f.probed
	f.log.Info().Dur("lag", m.Seen.Sub(f.probed)).Msg("the probe came through: the source's events reach follow")
	if f.cfg.Unprobe != nil {
		if err := f.cfg.Unprobe(ctx); err != nil {
			f.log.Warn().Err(err).Msg("could not delete the probe's marker object")
		}
	}
	if f.cfg.CatchUp == nil {
		f.record.Anchored = true
		f.writeRecord(ctx)
		return
	}
	go func() {
		err := f.cfg.CatchUp(ctx, f.probed, func(k string) {
			select {
			case f.caught <- k:
			case <-ctx.Done():
			}
		})
		f.caughtUp <- err
	}()
}

func (f *Follower) putMark(ctx context.Context, m *ledger.Mark) {
	for attempt := 0; ; attempt++ {
		err := f.board.PutMark(ctx, *m)
		if err == nil || attempt == 4 || ctx.Err() != nil {
			if err != nil {
				f.log.Error().Err(err).Str("mark", m.ID).Msg("writing a mark failed: the cutover waiting for it will time out")
			}
			return
		}
		sleep(ctx, time.Duration(attempt+1)*time.Second)
	}
}

// flush sends every pending key as sync work, then deletes the events
// that named them once the messages are recorded in the ledger.
func (f *Follower) flush(ctx context.Context) {
	if len(f.pending) == 0 {
		if len(f.held) > 0 {
			f.release(f.held)
			f.held = nil
		}
		return
	}
	keys := slices.Sorted(maps.Keys(f.pending))
	var msgs []queue.Outgoing
	var seqs []int64
	lateSeq := map[string]int64{}
	for _, chunk := range chunks(keys, f.cfg.BatchKeys) {
		// Numbered without gaps: a cutover waits for every number up to its
		// mark's.
		seq := f.seq + 1
		b := plan.Batch{Version: plan.SchemaVersion, Run: f.cfg.Run, Seq: seq, Op: plan.OpSync, Source: f.cfg.Source, Dest: f.cfg.Dest}
		if !f.cfg.Copy.IsZero() {
			c := f.cfg.Copy
			b.Copy = &c
		}
		for _, k := range chunk {
			b.Entries = append(b.Entries, plan.Entry{Key: k})
			if _, ok := f.late[k]; ok {
				lateSeq[k] = seq
			}
		}
		body, err := plan.Encode(b)
		if err != nil {
			f.log.Error().Err(err).Msg("encoding a work message failed") // strings and numbers: cannot happen
			continue
		}
		f.seq = seq
		msgs = append(msgs, queue.Outgoing{Body: body, Run: f.cfg.Run, Kind: "sync"})
		seqs = append(seqs, seq)
	}
	for attempt := 0; ; attempt++ {
		err := f.work.Send(ctx, msgs)
		if err == nil {
			break
		}
		var se *queue.SendError
		if errors.As(err, &se) {
			// Keep what was accepted out of the next try: their numbers are
			// sent. Those refused go again under the same numbers.
			accepted := map[int]bool{}
			for _, i := range se.Accepted() {
				accepted[i] = true
			}
			var rest []queue.Outgoing
			var restSeqs, done []int64
			for i := range msgs {
				if accepted[i] {
					done = append(done, seqs[i])
				} else {
					rest = append(rest, msgs[i])
					restSeqs = append(restSeqs, seqs[i])
				}
			}
			if len(done) > 0 {
				f.rec.Sent(done, ledger.Totals{Messages: int64(len(done))}, nil)
			}
			msgs, seqs = rest, restSeqs
		}
		if ctx.Err() != nil {
			ctx = context.Background() // pending keys are sent on the way out too
		}
		d := f.sendErr(err)
		f.log.Warn().Err(err).Int("attempt", attempt+1).Dur("retry_in", d).Msg("sending work failed; the events stay on their queue until it is sent")
		time.Sleep(d)
	}
	f.record.Keys += int64(len(keys))
	f.record.LastSeq = f.seq
	for k, seq := range lateSeq {
		m := f.late[k]
		for i := range m.Late {
			if m.Late[i].Key == k && m.Late[i].Seq == 0 {
				m.Late[i].Seq = seq
			}
		}
		delete(f.late, k)
		f.putMark(ctx, m)
	}
	held := f.held
	f.held = nil
	clear(f.pending)
	f.rec.Sent(seqs, ledger.Totals{Messages: int64(len(seqs)), Objects: int64(len(keys))}, func() { f.release(held) })
}

// chunks splits keys into work messages of at most n keys each, and of a
// body within plan.MaxBodyBytes: a key of 1,024 bytes can take six times
// that once JSON escapes it.
func chunks(keys []string, n int) [][]string {
	const room = plan.MaxBodyBytes - 4096 // the batch's own fields
	var out [][]string
	var cur []string
	size := 0
	for _, k := range keys {
		e, err := plan.Encode(plan.Entry{Key: k})
		if err != nil {
			continue // a string: cannot happen
		}
		if len(cur) > 0 && (len(cur) == n || size+len(e)+1 > room) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, k)
		size += len(e) + 1
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// release deletes events whose work is recorded (or that carry none).
func (f *Follower) release(msgs []queue.Message) {
	if len(msgs) == 0 {
		return
	}
	f.deleting.Add(1)
	go func() {
		defer f.deleting.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.changes.Delete(ctx, msgs); err != nil {
			f.log.Warn().Err(err).Msg("deleting events failed: they come back and are sent again, harmlessly")
		}
	}()
}

// writeRecord rewrites follow's record.
func (f *Follower) writeRecord(ctx context.Context) {
	f.record.Alive = f.now()
	f.record.Lateness = f.worstLateness()
	f.record.Settle = f.settle()
	if err := f.board.PutFollow(ctx, f.record); err != nil && ctx.Err() == nil {
		f.log.Warn().Err(err).Msg("writing follow's record failed; trying again shortly")
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// LastSeq is the last work message's number; call it after Run.
func (f *Follower) LastSeq() int64 { return f.seq }

// Summary says what Run did, for a closing line; call it after Run.
func (f *Follower) Summary() string {
	r := f.record
	return fmt.Sprintf("%d events, %d keys sent as %d messages, %d ignored, %d marks", r.Events, r.Keys, f.seq, r.Ignored, len(f.marks))
}
