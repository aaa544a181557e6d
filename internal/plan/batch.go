// Package plan turns a stream of listed objects into work: batches of keys,
// each encoded as one versioned JSON queue message, and the totals of what
// was planned.
package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// SchemaVersion is the version of the Batch JSON body. A worker refuses a
// body of a version it does not know rather than guess at its meaning.
// Version 2 added Op: a version-1 worker would have taken a batch of
// deletions for copies of vanished keys. Version 3 added the buckets'
// regions: a version-2 worker would sign for its own region, be refused
// by a bucket elsewhere, and report every key failed. This version still
// reads version 2 (finding the regions itself). Version 4 added the run's
// copy options (Copy): a version-3 worker would write copies without the
// ACL or encryption the run asked for, and drop website redirects and
// Object Lock, which S3 does not copy by itself. This version still reads
// versions 2 and 3, whose copies take the worker's own options. Version 5
// added OpSync (follow's "this key may have changed") and an entry's
// version id (a copy of one version, for --as-of): a version-4 worker
// would copy whatever is current, or take a sync for an unknown operation.
const SchemaVersion = 5

// oldestVersion is the oldest Batch version this build reads.
const oldestVersion = 2

// Operations a batch asks for.
const (
	OpCopy   = ""       // copy each key from Source to Dest (the default)
	OpDelete = "delete" // delete each key, a destination key, from Dest
	OpProbe  = "probe"  // no work: a preflight check that sending works
	// OpSync: each key may have changed in Source (an S3 event said so):
	// copy its current state, pinned to what a HeadObject read, or delete
	// it from Dest while it is absent from Source.
	OpSync = "sync"
)

// MarksPrefix is the reserved prefix of the objects planner follow and
// cutover --follow write in the source bucket (follow's probe, a cutover's
// mark): short-lived, and never part of the clone.
const MarksPrefix = ".s3clone-marks/"

// Reserved reports a source key under MarksPrefix, which no plan copies
// and no diff compares.
func Reserved(key string) bool { return strings.HasPrefix(key, MarksPrefix) }

// MaxBodyBytes is the largest message body the batcher produces. It leaves
// room for ten messages (SendMessageBatch's limit) to fit together under
// SQS's 256 KiB request limit only when they are small; the sender splits
// batch calls by size, so any body up to this size is always sendable.
const MaxBodyBytes = 240 << 10

// Entry is one key to copy, with what the listing said of it.
type Entry struct {
	Key          string `json:"k"`
	Size         int64  `json:"s"`
	ETag         string `json:"e,omitempty"`
	StorageClass string `json:"c,omitempty"`
	// VersionID, when set, is the source version to copy (version 5 on):
	// the copy reads that version, not whatever is current.
	VersionID string `json:"ver,omitempty"`
}

// Batch is the body of one work message.
type Batch struct {
	Version int      `json:"v"`
	Run     string   `json:"run"`
	Seq     int64    `json:"seq"`
	Op      string   `json:"op,omitempty"`
	Source  Location `json:"src"`
	Dest    Location `json:"dst"`
	Copy    *Copy    `json:"copy,omitempty"` // nil: none (version 4 on)
	Entries []Entry  `json:"keys"`
}

// Copy is how a run writes its copies, the same for every key: chosen once
// by the planner, recorded with the run, made so by its preflight, and
// carried in every message, so that every worker writes alike. The zero
// value writes as S3 would by default, keeping each object's class.
type Copy struct {
	StorageClass string `json:"class,omitempty"` // "" keeps each source object's class
	SSEKMSKeyID  string `json:"kms,omitempty"`   // encrypt with this KMS key; "": the bucket's default
	ACL          string `json:"acl,omitempty"`   // a canned ACL; "": none
	// Redirects: the source has a website configuration, so an object may
	// carry a website redirect, which S3 does not copy: each object's is
	// read (a HeadObject) and set on its copy.
	Redirects bool `json:"redirects,omitempty"`
	// Lock: the source has Object Lock: each object's retention and legal
	// hold, which S3 does not copy, are read (a HeadObject) and set on its
	// copy, never shorter than LockFloor would make it.
	Lock bool `json:"lock,omitempty"`
	// LockFloor is the destination bucket's default retention, which an
	// object's own retention must not undercut; nil when it has none.
	LockFloor *Retention `json:"lock_floor,omitempty"`
}

// Retention is a bucket's default retention: a mode and a period, in days
// or years (S3 takes one of the two).
type Retention struct {
	Mode  string `json:"mode"` // GOVERNANCE or COMPLIANCE
	Days  int32  `json:"days,omitempty"`
	Years int32  `json:"years,omitempty"`
}

// IsZero reports options that ask for nothing.
func (c Copy) IsZero() bool { return c == Copy{} }

// Options returns the copy options the batch carries, and false for a
// batch older than version 4, which carries none (its copies take the
// worker's own).
func (b *Batch) Options() (Copy, bool) {
	if b.Version < 4 {
		return Copy{}, false
	}
	if b.Copy == nil {
		return Copy{}, true
	}
	return *b.Copy, true
}

// Bytes is the total size of the batch's objects.
func (b *Batch) Bytes() int64 {
	var n int64
	for _, e := range b.Entries {
		n += e.Size
	}
	return n
}

// ErrSchema marks a message body that is not a Batch this version understands.
var ErrSchema = errors.New("not an s3clone batch")

// Decode parses a message body. It returns an error wrapping ErrSchema for a
// foreign body or an unknown version, with what was found.
func Decode(body []byte) (*Batch, error) {
	var b Batch
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	if b.Version < oldestVersion || b.Version > SchemaVersion {
		return nil, fmt.Errorf("%w: schema version %d, this build reads versions %d to %d", ErrSchema, b.Version, oldestVersion, SchemaVersion)
	}
	if b.Run == "" || b.Source.Bucket == "" || b.Dest.Bucket == "" {
		return nil, fmt.Errorf("%w: run, source or destination missing", ErrSchema)
	}
	switch b.Op {
	case OpCopy, OpDelete, OpProbe, OpSync:
	default:
		return nil, fmt.Errorf("%w: unknown operation %q", ErrSchema, b.Op)
	}
	return &b, nil
}

// Encode writes a message body as JSON that SQS accepts. SQS takes only
// #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF in a
// message (anything else fails it with InvalidMessageContents); JSON
// escapes the control characters, and invalid UTF-8 cannot be in a key, but
// U+FFFE and U+FFFF, which S3 keys may hold, JSON writes as they are: they
// are written as \u escapes, which decode to the same key.
func Encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	for _, r := range []struct{ raw, escaped string }{{"\uFFFE", `\ufffe`}, {"\uFFFF", `\uffff`}} {
		b = bytes.ReplaceAll(b, []byte(r.raw), []byte(r.escaped))
	}
	return b, nil
}

// entrySize is the number of bytes e adds to an encoded Batch.
func entrySize(e Entry) int {
	b, err := Encode(e)
	if err != nil {
		return MaxBodyBytes // cannot happen for strings and ints
	}
	return len(b) + 1 // the comma
}

// ProbeBody is a probe message for sum's run: workers delete it without a
// report. Preflight sends one to prove it may send to the queue.
func ProbeBody(sum *Summary) ([]byte, error) {
	return Encode(Batch{Version: SchemaVersion, Run: sum.Run, Op: OpProbe, Source: sum.Source, Dest: sum.Dest})
}
