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
	// ReceiveWait is how long a receive waits for a first event, and
	// VerdictEvery how often a cutover's verdict is read while holding at
	// its mark. Defaults receiveWait and one second; tests shorten them.
	ReceiveWait, VerdictEvery time.Duration
	// Probe, when set, writes a marker object of mark id (ProbeID, a dash
	// and a number) once Run begins receiving, and again every ProbeEvery
	// until one comes through; Unprobe deletes one. A probe's event
	// coming through shows the bucket's events reach follow, and from when
	// (Subscribed: the time just before that probe was written, or
	// EffectiveAt if later).
	Probe, Unprobe func(ctx context.Context, id string) error
	ProbeID        string
	// EffectiveAt is when the bucket's notification configuration, just
	// written, is taken to be in effect everywhere: "after you create or
	// change the bucket notification configuration, it usually takes about
	// five minutes for the changes to take effect" (the S3 user guide,
	// "Using Amazon SQS, Amazon SNS, and Lambda"). One probe coming through
	// shows one path works, not all of them.
	EffectiveAt time.Time
	// ProbeWait is how long Run waits for a probe to come through before
	// giving up with ErrNoEvents. Default ProbeWait.
	ProbeWait time.Duration
	// Receivers is how many receives run at once. Default 4: each takes at
	// most ten events, and S3 sends one a message.
	Receivers int
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
	if c.ReceiveWait <= 0 {
		c.ReceiveWait = receiveWait
	}
	if c.VerdictEvery <= 0 {
		c.VerdictEvery = time.Second
	}
	if c.Receivers <= 0 {
		c.Receivers = 4
	}
	if c.ProbeWait <= 0 {
		c.ProbeWait = ProbeWait
	}
	return c
}

// ProbeEvery is how often a probe is written again until one comes
// through.
const ProbeEvery = 30 * time.Second

// maxLate bounds the late events a mark records.
const maxLate = 1000

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
	pending    map[string]time.Time // key -> when it was first received since the last flush
	oldest     time.Time            // when the oldest pending key came
	held       []queue.Message      // events whose keys are pending
	seq        int64
	marks      map[string]*ledger.Mark // open and closed, by id
	closing    []*ledger.Mark          // open marks, by when they close
	late       map[string]*ledger.Mark // pending late keys -> the mark they are late for
	probes     map[string]time.Time    // probe ids written -> when
	opened     map[string]time.Time    // open marks -> when taken in (their settle runs from then)
	lastRecv   []time.Time             // per receiver: when its last receive taken in began
	empties    []time.Time             // per receiver: when its last empty receive taken in began
	watermarks []checkpoint            // the newest event time, by arrival (lateness)
	caught     chan string             // keys the catch-up takes
	caughtUp   chan error              // the catch-up's end
	cut        *ledger.Mark            // the cutover mark follow holds at
	heldBack   []heldBack              // events dated after it, kept on the queue
	stopped    *ledger.Mark            // the mark follow stopped at
	record     ledger.Follow
	newest     time.Time                 // the newest event time seen
	lateness   map[int64]time.Duration   // per 10 s of receive time: how long after a newer event an older one came
	deleting   sync.WaitGroup            // deletions of events, once their work is durable
	sendErr    func(error) time.Duration // backoff before a failed send is tried again
}

// New returns a Follower.
func New(cfg Config, changes Changes, work Sender, rec Recorder, board Board, log zerolog.Logger) *Follower {
	cfg = cfg.withDefaults()
	f := &Follower{cfg: cfg, changes: changes, work: work, rec: rec, board: board, log: log, now: time.Now,
		pending: map[string]time.Time{}, marks: map[string]*ledger.Mark{}, late: map[string]*ledger.Mark{},
		lateness: map[int64]time.Duration{}, record: cfg.Record, caught: make(chan string, 1024), caughtUp: make(chan error, 1),
		probes: map[string]time.Time{}, opened: map[string]time.Time{}, lastRecv: make([]time.Time, cfg.Receivers), empties: make([]time.Time, cfg.Receivers)}
	f.record.Run = cfg.Run
	f.sendErr = func(error) time.Duration { return time.Second }
	return f
}

// received is one receive's messages, decoded.
type received struct {
	receiver  int
	began, at time.Time // when the receive began, and came back
	msgs      []queue.Message
	changes   [][]Change
	err       error
}

// heldBack is an event message held back at a cutover's mark, with its
// changes: taken again if the cutover's verdict is not clean.
type heldBack struct {
	msg     queue.Message
	changes []Change
	at      time.Time
}

// checkpoint is when the newest event time seen first reached a time.
type checkpoint struct{ newest, arrived time.Time }

// Run follows until ctx ends: events are received, their keys gathered for
// up to Flush and sent as sync work, and each event deleted once its key's
// work message is sent and recorded. On the way out what is pending is
// sent, and the record written a last time.
func (f *Follower) Run(ctx context.Context) error {
	f.record.Started = f.now()
	in := make(chan received, 2*f.cfg.Receivers)
	recvCtx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	for i := range f.cfg.Receivers {
		go f.receive(recvCtx, i, in)
	}
	tick := time.NewTicker(f.cfg.Flush / 2)
	defer tick.Stop()
	every := time.NewTicker(f.cfg.RecordEvery)
	defer every.Stop()
	f.writeRecord(ctx)
	var lastVerdict time.Time
	var probeLimit, probeAgain <-chan time.Time
	if f.cfg.Probe != nil {
		t := time.NewTimer(f.cfg.ProbeWait)
		defer t.Stop()
		probeLimit = t.C
		again := time.NewTicker(ProbeEvery)
		defer again.Stop()
		probeAgain = again.C
		if err := f.probe(ctx); err != nil {
			stopRecv()
			return err
		}
	}
	for {
		select {
		case <-probeAgain:
			if f.record.Subscribed.IsZero() {
				if err := f.probe(ctx); err != nil {
					f.log.Warn().Err(err).Msg("writing a probe again failed")
				}
			}
		case k := <-f.caught:
			f.takeCaught(k)
		case <-probeLimit:
			if f.record.Subscribed.IsZero() {
				stopRecv()
				f.flush(context.Background())
				f.deleting.Wait()
				probes := len(f.probes) // unprobe forgets them
				f.unprobe(context.Background())
				return fmt.Errorf("%w: none of %d probes (s3://%s/%s*) came through within %s", ErrNoEvents, probes, f.cfg.Source.Bucket, MarkKey(f.cfg.ProbeID), f.cfg.ProbeWait)
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
			f.dropMarks()
			f.unprobe(end)
			f.deleting.Wait()
			f.record.Stopped = f.now()
			f.writeRecord(end)
			return nil
		case r := <-in:
			if r.err != nil {
				f.lastRecv[r.receiver] = r.began // it came back: nothing of it to take in
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
			f.closeMarks(ctx)
			if f.cut != nil && f.now().Sub(lastVerdict) >= f.cfg.VerdictEvery {
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

// receiveWait is how long a receive waits for a first event. Short: a
// mark closes only once every receiver has come back from a receive begun
// after its settle time (a receive cut short could leave events hidden
// for their visibility timeout), so this bounds what a receive adds to the
// window. Four receivers a second cost about $0.14 a day.
const receiveWait = time.Second

// receive long-polls the change queue and hands over what comes, empty
// answers too.
func (f *Follower) receive(ctx context.Context, receiver int, out chan<- received) {
	for ctx.Err() == nil {
		began := f.now()
		msgs, err := f.changes.Receive(ctx, 10, f.cfg.ReceiveWait, f.cfg.Visibility)
		if ctx.Err() != nil {
			return
		}
		r := received{receiver: receiver, began: began, msgs: msgs, at: f.now(), err: err}
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
		if err != nil {
			sleep(ctx, time.Second)
		}
	}
}

// absorb takes in one receive's events.
func (f *Follower) absorb(r received) {
	f.lastRecv[r.receiver] = r.began
	if len(r.msgs) == 0 {
		f.empties[r.receiver] = r.began
		return
	}
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
		if keep {
			f.heldBack = append(f.heldBack, heldBack{msg: r.msgs[i], changes: changes, at: r.at})
		} else {
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
	if !c.Caught {
		f.noteTime(c, at)
	}
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
		if !c.Caught && !m.Closed.IsZero() && c.Time.Before(m.EventTime) && !strings.HasPrefix(m.ID, ProbePrefix) && len(m.Late) < maxLate {
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

// noteTime keeps the newest event time, the lag, and the lateness: for an
// event older than the newest seen, how long after the first event newer
// than it came this one came. That, not the gap between the two events'
// times, is how long a mark must wait for an event S3 sent out of order.
func (f *Follower) noteTime(c Change, at time.Time) {
	if c.Time.After(f.newest) {
		f.newest = c.Time
		f.record.LastEvent = c.Time
		f.record.Lag = max(at.Sub(c.Time), 0)
		if n := len(f.watermarks); n == 0 || at.Sub(f.watermarks[n-1].arrived) >= 10*time.Millisecond {
			f.watermarks = append(f.watermarks, checkpoint{newest: c.Time, arrived: at})
		} else {
			f.watermarks[n-1].newest = c.Time
		}
		return
	}
	// The first checkpoint whose newest time is after this event's.
	i, _ := slices.BinarySearchFunc(f.watermarks, c.Time, func(cp checkpoint, t time.Time) int {
		if cp.newest.After(t) {
			return 1
		}
		return -1
	})
	if i == len(f.watermarks) {
		return
	}
	late := at.Sub(f.watermarks[i].arrived)
	slot := at.Unix() / 10
	if late > f.lateness[slot] {
		f.lateness[slot] = late
	}
}

// worstLateness is the most an event came after a newer one in the last
// ten minutes.
func (f *Follower) worstLateness() time.Duration {
	keepFrom := f.now().Add(-10 * time.Minute)
	if i := slices.IndexFunc(f.watermarks, func(cp checkpoint) bool { return cp.arrived.After(keepFrom) }); i > 0 {
		f.watermarks = slices.Delete(f.watermarks, 0, i-1) // one older: the newest time it set still stands
	}
	cutoff := keepFrom.Unix() / 10
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
	f.opened[id] = f.now()
	f.closing = append(f.closing, m)
	f.log.Info().Str("mark", id).Dur("settle", m.Settle).Msg("a cutover's mark came through: waiting for events sent out of order")
}

// closeMarks closes the marks whose settle time has passed and whose
// events are all in (mayClose): what is pending is sent first, so that
// every key received before the close is in a message numbered at most the
// mark's Seq.
func (f *Follower) closeMarks(ctx context.Context) {
	var due []*ledger.Mark
	now := f.now()
	f.closing = slices.DeleteFunc(f.closing, func(m *ledger.Mark) bool {
		if f.mayClose(m, now) {
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
		if _, ok := f.probes[m.ID]; ok && f.record.Subscribed.IsZero() {
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

// mayClose reports a mark whose settle time, counted from when it was
// taken in (not received: follow may have been busy), has passed, and for
// which every receiver has since come back from a receive begun after
// that, so that nothing received before is still on its way in; and one of
// those came back empty (the queue held nothing more), or a second settle
// time has passed (a queue production keeps busy, in a rehearsal).
func (f *Follower) mayClose(m *ledger.Mark, now time.Time) bool {
	deadline := f.opened[m.ID].Add(m.Settle)
	if now.Before(deadline) {
		return false
	}
	empty := false
	for i := range f.lastRecv {
		if f.lastRecv[i].Before(deadline) {
			return false
		}
		empty = empty || !f.empties[i].Before(deadline)
	}
	return empty || !now.Before(deadline.Add(m.Settle))
}

// dropMarks forgets the marks still open when follow stops: closed early
// they would claim a settle time they did not wait; the cutover waiting for
// one times out instead, not clean.
func (f *Follower) dropMarks() {
	for _, m := range f.closing {
		f.log.Warn().Str("mark", m.ID).Msg("follow is stopping with a mark open: not closed; the cutover waiting for it gives no clean verdict")
	}
	f.closing = nil
}

// probe writes a probe, under a new id.
func (f *Follower) probe(ctx context.Context) error {
	id := fmt.Sprintf("%s-%d", f.cfg.ProbeID, len(f.probes)+1)
	at := f.now()
	if err := f.cfg.Probe(ctx, id); err != nil {
		return fmt.Errorf("probe the source's events: %w", err)
	}
	f.probes[id] = at
	return nil
}

// unprobe deletes every probe written.
func (f *Follower) unprobe(ctx context.Context) {
	if f.cfg.Unprobe == nil {
		return
	}
	for id := range f.probes {
		if err := f.cfg.Unprobe(ctx, id); err != nil {
			f.log.Warn().Err(err).Str("probe", id).Msg("could not delete a probe's marker object")
		}
	}
	clear(f.probes)
}

// ProbeWait is how long follow writes probes before it gives up: a new
// configuration usually takes about five minutes to be in effect (the S3
// user guide, "Using Amazon SQS, Amazon SNS, and Lambda"), and events are
// delivered within seconds, "sometimes a minute or longer" ("Amazon S3
// Event Notifications").
const ProbeWait = 7 * time.Minute

// ErrNoEvents marks a source whose events do not reach follow's queue.
var ErrNoEvents = errors.New("the source bucket's events do not reach the change queue")

// takeCaught takes a key the catch-up found different.
func (f *Follower) takeCaught(k string) {
	f.take(Change{Bucket: f.cfg.Source.Bucket, Key: k, Name: "catch-up", Time: f.now(), Caught: true}, f.now())
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
	f.log.Warn().Str("mark", f.cut.ID).Int("held_back", len(f.heldBack)).Msg("the cutover's verdict is not clean: following again for the next cutover")
	f.cut = nil
	// The events held back are taken now, not when the queue shows them
	// again (up to a visibility timeout later, when the next cutover's
	// mark may have closed without them).
	held := f.heldBack
	f.heldBack = nil
	for _, h := range held {
		for _, c := range h.changes {
			f.take(c, h.at)
		}
		f.held = append(f.held, h.msg)
	}
	return false
}

// StoppedAt is the cutover mark Run stopped at, nil when it stopped for
// another reason.
func (f *Follower) StoppedAt() *ledger.Mark { return f.stopped }

// probeCame takes a probe's mark: events flow, from the time that probe
// was written (or from when the configuration is in effect, if later); the
// catch-up (if any) starts.
func (f *Follower) probeCame(ctx context.Context, m *ledger.Mark) {
	written := f.probes[m.ID]
	f.record.Subscribed = written
	if f.cfg.EffectiveAt.After(written) {
		f.record.Subscribed = f.cfg.EffectiveAt
	}
	f.log.Info().Dur("lag", m.Seen.Sub(written)).Time("subscribed", f.record.Subscribed).Msg("a probe came through: the source's events reach follow")
	f.unprobe(ctx)
	if f.cfg.CatchUp == nil {
		f.record.Anchored = true
		f.writeRecord(ctx)
		return
	}
	subscribed := f.record.Subscribed
	go func() {
		err := f.cfg.CatchUp(ctx, subscribed, func(k string) {
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
	touched := map[*ledger.Mark]bool{}
	for k, seq := range lateSeq {
		m := f.late[k]
		for i := range m.Late {
			if m.Late[i].Key == k && m.Late[i].Seq == 0 {
				m.Late[i].Seq = seq
			}
		}
		delete(f.late, k)
		touched[m] = true
	}
	for m := range touched {
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
	f.record.Flush = f.cfg.Flush
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
