package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/s3clone/s3clone/internal/plan"
)

// Follow is what planner follow has done for its run, rewritten as it goes
// (runs/RUN/follow.json): where its events come from, how many came, how
// far behind the source it is, and whether the clone is anchored (every
// change before follow's events began is in the bulk copy or a catch-up).
type Follow struct {
	Layout int    `json:"layout"`
	Run    string `json:"run"`
	// Via is "s3" (the bucket's queue configuration) or "eventbridge".
	Via         string `json:"via"`
	Queue       string `json:"queue"`                 // the change queue's URL
	Config      string `json:"config,omitempty"`      // follow's configuration id in the bucket (via s3)
	BridgeOwned bool   `json:"bridge_owned,omitzero"` // follow turned EventBridge on, and may turn it off
	// Subscribed is when events were known to flow: S3's test event, or
	// the first event, received.
	Subscribed time.Time `json:"subscribed,omitzero"`
	// After is the bulk run this follow continues; Anchored reports that
	// every change before Subscribed is in it (the bulk listing began
	// after) or in the catch-up follow planned for the gap.
	After    string `json:"after,omitempty"`
	Anchored bool   `json:"anchored"`
	// Events counts events received (duplicates included), Keys the keys
	// sent as work (a key several events named in one flush counts once),
	// Ignored the events of keys outside the source prefix or foreign.
	Events  int64 `json:"events"`
	Keys    int64 `json:"keys"`
	Ignored int64 `json:"ignored"`
	// HeldBack counts events dated after a cutover's mark follow held at,
	// left on the queue.
	HeldBack int64 `json:"held_back,omitempty"`
	// CaughtUp counts the keys the catch-up listing found different.
	CaughtUp int64 `json:"caught_up,omitempty"`
	LastSeq  int64 `json:"last_seq"`
	// LastEvent is the newest event time seen; Lag how long after its
	// event time the newest event was received; Lateness the most an event
	// came after a newer one, over the last ten minutes.
	LastEvent time.Time     `json:"last_event,omitzero"`
	Lag       time.Duration `json:"lag_ns"`
	Lateness  time.Duration `json:"lateness_ns"`
	// Settle is how long a mark would wait for late events now; Flush how
	// long a key waits for others to share its work message.
	Settle  time.Duration `json:"settle_ns"`
	Flush   time.Duration `json:"flush_ns,omitempty"`
	Started time.Time     `json:"started"`
	Alive   time.Time     `json:"alive"`
	Stopped time.Time     `json:"stopped,omitzero"`
	// StoppedAt is the cutover whose mark follow stopped at, after its
	// clean verdict: the destination is the source as of that freeze.
	StoppedAt string `json:"stopped_at,omitempty"`
}

func (f *Follow) layout() int { return f.Layout }

// Mark is a cutover's mark as follow saw it (runs/RUN/marks/ID.json): the
// marker object's event came through, follow waited Settle for events
// that S3 sent out of order, and every key it had received by Closed is in
// a work message numbered Seq or below.
type Mark struct {
	Layout    int           `json:"layout"`
	Run       string        `json:"run"`
	ID        string        `json:"id"`
	Key       string        `json:"key"`        // the marker object in the source
	EventTime time.Time     `json:"event_time"` // the marker's, by S3's clock
	Seen      time.Time     `json:"seen"`
	Closed    time.Time     `json:"closed"`
	Settle    time.Duration `json:"settle_ns"`
	Seq       int64         `json:"seq"`
	// Late are keys whose events, dated before the mark, came after it
	// closed: sent as work all the same (Seq above the mark's), but not
	// waited for by a cutover that had already given its verdict.
	Late []Late `json:"late,omitempty"`
}

// Late is an event that came after a mark closed though it was dated before.
type Late struct {
	Key      string    `json:"key"`
	Time     time.Time `json:"time"`
	Received time.Time `json:"received"`
	Seq      int64     `json:"seq"`
}

func (m *Mark) layout() int { return m.Layout }

func (s *Store) followKey(run string) string   { return s.runPrefix(run) + "follow.json" }
func (s *Store) markKey(run, id string) string { return s.runPrefix(run) + "marks/" + id + ".json" }

// PutFollow writes follow's record of its run.
func (s *Store) PutFollow(ctx context.Context, f Follow) error {
	f.Layout = Layout
	return s.put(ctx, s.followKey(f.Run), &f)
}

// FollowRecord reads follow's record of run; an error wrapping ErrNotFound when
// the run is not a follow's.
func (s *Store) FollowRecord(ctx context.Context, run string) (*Follow, error) {
	var f Follow
	if err := s.get(ctx, s.followKey(run), &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// PutMark writes a mark follow saw.
func (s *Store) PutMark(ctx context.Context, m Mark) error {
	m.Layout = Layout
	return s.put(ctx, s.markKey(m.Run, m.ID), &m)
}

// Mark reads mark id of follow's run; an error wrapping ErrNotFound until
// follow has seen it and closed it.
func (s *Store) Mark(ctx context.Context, run, id string) (*Mark, error) {
	var m Mark
	if err := s.get(ctx, s.markKey(run, id), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Bulk returns the bulk copy from src to dst as a chain of runs, newest
// first: the newest full or diff run (the clone's base, last), and every
// from-file run after it (reconciliations of its failures). An error wraps
// ErrNotFound when there is no full or diff run.
func (s *Store) Bulk(ctx context.Context, src, dst plan.Location) ([]*Run, error) {
	ids, err := s.Runs(ctx)
	if err != nil {
		return nil, err
	}
	var chain []*Run
	for _, id := range slices.Backward(ids) {
		r, err := s.Run(ctx, id)
		if err != nil {
			continue // a run being written, or unreadable: not this one
		}
		if r.Source.Bucket != src.Bucket || r.Source.Prefix != src.Prefix || r.Dest.Bucket != dst.Bucket || r.Dest.Prefix != dst.Prefix {
			continue
		}
		switch r.Mode {
		case ModeFromFile:
			chain = append(chain, r)
		case ModeFull, ModeDiff:
			return append(chain, r), nil
		}
	}
	return nil, fmt.Errorf("no bulk run (full or diff) from s3://%s/%s to s3://%s/%s: %w", src.Bucket, src.Prefix, dst.Bucket, dst.Prefix, ErrNotFound)
}

// LastFollow returns the newest follow run that read events from the change
// queue changesURL, with its record; an error wrapping ErrNotFound when
// there is none.
func (s *Store) LastFollow(ctx context.Context, changesURL string) (*Run, *Follow, error) {
	ids, err := s.Runs(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range slices.Backward(ids) {
		r, err := s.Run(ctx, id)
		if err != nil || r.Mode != ModeFollow || r.Options["changes"] != changesURL {
			continue
		}
		f, err := s.FollowRecord(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		return r, f, nil
	}
	return nil, nil, fmt.Errorf("no follow run of %s: %w", changesURL, ErrNotFound)
}
