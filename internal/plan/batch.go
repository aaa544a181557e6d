// Package plan turns a stream of listed objects into work: batches of keys,
// each encoded as one versioned JSON queue message, and the totals of what
// was planned.
package plan

import (
	"encoding/json"
	"errors"
	"fmt"
)

// SchemaVersion is the version of the Batch JSON body. A worker refuses a
// body of a version it does not know rather than guess at its meaning.
// Version 2 added Op: a version-1 worker would have taken a batch of
// deletions for copies of vanished keys. Version 3 added the buckets'
// regions: a version-2 worker would sign for its own region, be refused
// by a bucket elsewhere, and report every key failed. This version still
// reads version 2 (finding the regions itself).
const SchemaVersion = 3

// oldestVersion is the oldest Batch version this build reads.
const oldestVersion = 2

// Operations a batch asks for.
const (
	OpCopy   = ""       // copy each key from Source to Dest (the default)
	OpDelete = "delete" // delete each key, a destination key, from Dest
	OpProbe  = "probe"  // no work: a preflight check that sending works
)

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
}

// Batch is the body of one work message.
type Batch struct {
	Version int      `json:"v"`
	Run     string   `json:"run"`
	Seq     int64    `json:"seq"`
	Op      string   `json:"op,omitempty"`
	Source  Location `json:"src"`
	Dest    Location `json:"dst"`
	Entries []Entry  `json:"keys"`
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
	case OpCopy, OpDelete, OpProbe:
	default:
		return nil, fmt.Errorf("%w: unknown operation %q", ErrSchema, b.Op)
	}
	return &b, nil
}

// entrySize is the number of bytes e adds to an encoded Batch.
func entrySize(e Entry) int {
	b, err := json.Marshal(e)
	if err != nil {
		return MaxBodyBytes // cannot happen for strings and ints
	}
	return len(b) + 1 // the comma
}

// ProbeBody is a probe message for sum's run: workers delete it without a
// report. Preflight sends one to prove it may send to the queue.
func ProbeBody(sum *Summary) ([]byte, error) {
	return json.Marshal(Batch{Version: SchemaVersion, Run: sum.Run, Op: OpProbe, Source: sum.Source, Dest: sum.Dest})
}
