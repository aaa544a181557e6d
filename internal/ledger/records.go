package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/s3clone/s3clone/internal/plan"
)

// Layout is the version of the layout and of every record this package
// writes. A reader refuses records of a newer layout rather than misread
// them.
const Layout = 1

// Modes of a plan, in Run.Mode.
const (
	ModeFull     = "full"      // everything the listing found
	ModeDiff     = "diff"      // what differed from the destination
	ModeFromFile = "from-file" // the keys of a reconciliation file
	ModeFollow   = "follow"    // keys S3 events said may have changed (planner follow)
	ModeCutover  = "cutover"   // a cutover --follow: no messages of its own; its verdict covers a follow run up to its mark
)

// Run is a run's record, written by the planner when it starts and again
// when its plan ends.
type Run struct {
	Layout  int               `json:"layout"`
	ID      string            `json:"run"`
	Source  plan.Location     `json:"src"`
	Dest    plan.Location     `json:"dst"`
	Queue   string            `json:"queue,omitempty"` // the work queue's URL; "" for planner run
	Mode    string            `json:"mode"`
	Delete  bool              `json:"delete,omitempty"`
	Copy    plan.Copy         `json:"copy,omitzero"` // how its copies are written
	Options map[string]string `json:"options,omitempty"`
	Version string            `json:"version,omitempty"` // the planner's build
	Host    string            `json:"host,omitempty"`
	Started time.Time         `json:"started"`
	// Alive is when the planner last rewrote the record while planning
	// (every Heartbeat): a plan not ended and long silent has lost its
	// planner.
	Alive time.Time `json:"alive,omitzero"`
	// Ended is when the plan stopped sending, zero while it runs (or if
	// the planner died). Stopped says why a plan ended before sending
	// everything; "" for a plan that finished.
	Ended   time.Time `json:"ended,omitzero"`
	Stopped string    `json:"stopped,omitempty"`
	// Planned is what the plan sent, filled in when it ends. Readers sum
	// the sent records instead, which are right while the plan runs too.
	Planned Totals `json:"planned"`
	LastSeq int64  `json:"last_seq,omitempty"`
}

// Finished reports whether the plan ended having sent everything.
func (r *Run) Finished() bool { return !r.Ended.IsZero() && r.Stopped == "" }

// Heartbeat is how often a planner rewrites its run record while planning.
const Heartbeat = time.Minute

// Silent reports a plan not ended whose planner has not rewritten the run
// record for three heartbeats at now: killed, most likely.
func (r *Run) Silent(now time.Time) bool {
	last := maxTime(r.Alive, r.Started)
	return r.Ended.IsZero() && !last.IsZero() && now.Sub(last) > 3*Heartbeat
}

// Totals counts work messages and what is in them.
type Totals struct {
	Messages int64 `json:"messages"`
	Objects  int64 `json:"objects"` // keys, deletions included
	Bytes    int64 `json:"bytes"`   // bytes to copy
	Deletes  int64 `json:"deletes,omitempty"`
}

// Add adds o to t.
func (t *Totals) Add(o Totals) {
	t.Messages += o.Messages
	t.Objects += o.Objects
	t.Bytes += o.Bytes
	t.Deletes += o.Deletes
}

// Range is an inclusive range of sequence numbers, [first, last].
type Range [2]int64

// Sent is one sent record: sequence numbers the queue accepted from one
// planner session, and what those messages hold.
type Sent struct {
	Layout  int       `json:"layout"`
	Run     string    `json:"run"`
	Session string    `json:"session"`
	Seqs    []Range   `json:"seqs"`
	Totals  Totals    `json:"totals"`
	At      time.Time `json:"at"`
}

// Ranges compacts sequence numbers into sorted ranges.
func Ranges(seqs []int64) []Range {
	s := slices.Clone(seqs)
	slices.Sort(s)
	s = slices.Compact(s)
	var out []Range
	for _, n := range s {
		if len(out) > 0 && out[len(out)-1][1] == n-1 {
			out[len(out)-1][1] = n
			continue
		}
		out = append(out, Range{n, n})
	}
	return out
}

// Entry is what a worker did with one work message.
type Entry struct {
	Layout  int           `json:"layout"`
	Run     string        `json:"run"`
	Seq     int64         `json:"seq"`
	Op      string        `json:"op,omitempty"` // the batch's operation: "" copies, "delete"
	Source  plan.Location `json:"src"`
	Dest    plan.Location `json:"dst"`
	Worker  string        `json:"worker"`
	Journal string        `json:"journal,omitempty"`
	Copied  int64         `json:"copied"`
	Deleted int64         `json:"deleted,omitempty"`
	Bytes   int64         `json:"bytes"` // bytes copied
	// Skipped keys needed no copy: their source vanished after listing, so
	// the clone still matches the source.
	Skipped []Failure `json:"skipped,omitempty"`
	// Failed keys could not be copied (or deleted) for a reason that
	// retrying cannot fix.
	Failed   []Failure `json:"failed,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// Objects is how many of the message's keys the entry accounts for.
func (e *Entry) Objects() int64 {
	return e.Copied + e.Deleted + int64(len(e.Skipped)+len(e.Failed))
}

// Failure is one key that was not copied or deleted, with what the listing
// said of it (so a reconciliation file can enqueue it again) and why.
type Failure struct {
	Key    string `json:"key"` // the source key; for a deletion, the destination key
	Size   int64  `json:"size,omitempty"`
	ETag   string `json:"etag,omitempty"`
	Class  string `json:"class,omitempty"`
	Reason string `json:"reason"`
	Code   string `json:"code,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Summary is what an entry's key says of it: everything status counts,
// read from a listing without fetching the entry.
type Summary struct {
	Key      string // the entry's object key
	Journal  string
	N        int64 // its number in the journal
	Seq      int64
	Copied   int64
	Deleted  int64
	Skipped  int64
	Failed   int64
	Bytes    int64
	Started  time.Time
	Finished time.Time // by the worker's clock
	// Written is when S3 stored the entry (its LastModified): the time
	// rates go by, the same clock for every worker. Zero for an entry not
	// read from a listing.
	Written time.Time
}

// Objects is how many keys the entry accounts for.
func (s Summary) Objects() int64 { return s.Copied + s.Deleted + s.Skipped + s.Failed }

// entryName is an entry's file name: its summary, readable in a listing.
func entryName(n int64, e *Entry) string {
	return fmt.Sprintf("%010d-q%d-c%d-d%d-s%d-f%d-b%d-t%d-u%d.json", n, e.Seq, e.Copied, e.Deleted,
		len(e.Skipped), len(e.Failed), e.Bytes, e.Started.UnixMilli(), max(e.Finished.Sub(e.Started).Milliseconds(), 0))
}

// errEntryName marks a key in done/ that is not an entry of this layout.
var errEntryName = errors.New("not a ledger entry name")

// parseEntryName reads an entry's file name back into s.
func parseEntryName(name string, s *Summary) error {
	base, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return errEntryName
	}
	fields := strings.Split(base, "-")
	const labels = "qcdsfbtu"
	if len(fields) != 1+len(labels) {
		return errEntryName
	}
	nums := make([]int64, len(fields))
	for i, f := range fields {
		if i > 0 {
			var ok bool
			if f, ok = strings.CutPrefix(f, labels[i-1:i]); !ok {
				return errEntryName
			}
		}
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil || v < 0 {
			return errEntryName
		}
		nums[i] = v
	}
	s.N, s.Seq, s.Copied, s.Deleted, s.Skipped, s.Failed, s.Bytes = nums[0], nums[1], nums[2], nums[3], nums[4], nums[5], nums[6]
	s.Started = time.UnixMilli(nums[7]).UTC()
	s.Finished = s.Started.Add(time.Duration(nums[8]) * time.Millisecond)
	return nil
}

// CheckRunID rejects a run id that could not have been made by
// plan.NewRunID and would not be safe in a key.
func CheckRunID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("run id %q: want one such as 20261201T162343Z-ab12cd34", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("run id %q: only letters, digits, '-', '_' and '.' (want one such as 20261201T162343Z-ab12cd34)", id)
		}
	}
	return nil
}

// journalName names one worker process's journal: its id made safe for a
// key, and a random suffix, so a restarted worker with the same id never
// writes over its predecessor's entries.
func journalName(worker string) string {
	var b strings.Builder
	for _, r := range worker {
		if b.Len() >= 64 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		b.WriteString("worker")
	}
	return b.String() + "." + randomHex(4)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return hex.EncodeToString(b)
}

// Record is a failed key as a line of a reconciliation file, which plan
// --from-file enqueues again: the listed source object of a failed copy, or
// the destination object of a failed deletion. A copy that failed because
// its source changed is enqueued without the old ETag, so the new version
// is copied.
func (e *Entry) Record(f Failure) plan.Record {
	obj := &plan.ObjectInfo{Key: f.Key, Size: f.Size, ETag: f.ETag, StorageClass: f.Class}
	rec := plan.Record{Problem: plan.Failed, Reason: f.Reason}
	if e.Op == plan.OpDelete {
		rec.Key = strings.TrimPrefix(f.Key, e.Dest.Prefix)
		rec.Dest = obj
		return rec
	}
	if f.Reason == "changed" {
		obj.ETag = ""
	}
	rec.Key = strings.TrimPrefix(f.Key, e.Source.Prefix)
	rec.Source = obj
	return rec
}
