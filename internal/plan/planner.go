package plan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3clone/s3clone/internal/listing"
)

// Options tune how objects are grouped into messages.
type Options struct {
	// MaxKeys is the most keys in one message. Default 100.
	MaxKeys int
	// Linger is how long a partly filled message may wait for more keys
	// before it is sent anyway, so copying starts while listing goes on.
	// Default 100ms.
	Linger time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxKeys <= 0 {
		o.MaxKeys = 100
	}
	if o.Linger <= 0 {
		o.Linger = 100 * time.Millisecond
	}
	return o
}

// Summary is what a plan enqueued. Its counters are safe to read while the
// plan runs.
type Summary struct {
	Run    string
	Source Location
	Dest   Location
	// Copy is how the run's copies are written; every message carries it.
	Copy Copy
	// Estimate, when set, counts what the run will cost.
	Estimate *Estimate
	Objects  atomic.Int64 // keys enqueued, deletions included
	Bytes    atomic.Int64 // bytes to copy
	Messages atomic.Int64
	Deletes  atomic.Int64 // keys enqueued for deletion
	// Seq is the last sequence number given to a message. It runs ahead of
	// Messages only in a resumed plan, whose first run may have numbered
	// messages it never sent.
	Seq      atomic.Int64
	Started  time.Time
	Finished time.Time
	// Reserve, when set, is called before a sequence number beyond
	// Reserved is given out, to reserve a block of numbers durably (in a
	// checkpoint): a resumed plan numbers its messages after the block,
	// so no number ever names two messages, even after a planner was
	// killed between sending a message and recording it.
	Reserve   func(upTo int64) error
	Reserved  atomic.Int64
	reserveMu sync.Mutex
}

// ReserveBlock is how many sequence numbers one reservation covers.
const ReserveBlock = 10000

// nextSeq gives out the next sequence number, reserving a block first
// when Reserve asks for it.
func (s *Summary) nextSeq() (int64, error) {
	seq := s.Seq.Add(1)
	if s.Reserve == nil || seq <= s.Reserved.Load() {
		return seq, nil
	}
	s.reserveMu.Lock()
	defer s.reserveMu.Unlock()
	if seq <= s.Reserved.Load() {
		return seq, nil
	}
	upTo := seq + ReserveBlock - 1
	if err := s.Reserve(upTo); err != nil {
		return 0, fmt.Errorf("reserve sequence numbers: %w", err)
	}
	s.Reserved.Store(upTo)
	return seq, nil
}

// NewRunID returns a sortable, unique run id: UTC time plus random bits.
func NewRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Batcher groups listed objects into encoded Batch bodies of one operation.
type Batcher struct {
	opts    Options
	op      string
	sum     *Summary
	cur     Batch
	tokens  []listing.Token
	curSize int
	fixed   int // bytes every body of this batcher holds beyond batchOverhead
	opened  time.Time
}

// Body is one encoded message and what it carries.
type Body struct {
	Data    []byte
	Seq     int64           // the message's sequence number in its run
	Delete  bool            // a batch of deletions
	Tokens  []listing.Token // the listed objects in it, for acknowledgement
	Objects int64
	Bytes   int64
}

// NewBatcher returns a Batcher of op batches that records what it emits in
// sum. Several batchers may share a summary.
func NewBatcher(sum *Summary, op string, opts Options) *Batcher {
	fixed := len(sum.Source.Prefix) + len(sum.Dest.Prefix)
	if op == OpCopy && !sum.Copy.IsZero() {
		c, _ := json.Marshal(sum.Copy) // strings, ints and bools always encode
		fixed += len(c)
	}
	return &Batcher{opts: opts.withDefaults(), op: op, sum: sum, fixed: fixed}
}

// Run reads pages from in until it is closed, and sends each full message
// body (and the last partial one) on out. It does not close out.
func (b *Batcher) Run(ctx context.Context, in <-chan []listing.Object, out chan<- Body) error {
	timer := time.NewTimer(b.opts.Linger)
	defer timer.Stop()
	for {
		select {
		case page, ok := <-in:
			if !ok {
				return b.flush(ctx, out)
			}
			for _, o := range page {
				if b.op == OpCopy && Reserved(o.Key) {
					continue // a cutover's marker or follow's probe: never copied
				}
				if err := b.add(ctx, o, out); err != nil {
					return err
				}
			}
		case <-timer.C:
			timer.Reset(b.opts.Linger)
			if len(b.cur.Entries) > 0 && time.Since(b.opened) >= b.opts.Linger {
				if err := b.flush(ctx, out); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

const batchOverhead = 512 // run id, sequence, locations and punctuation, generously

func (b *Batcher) add(ctx context.Context, o listing.Object, out chan<- Body) error {
	e := Entry{Key: o.Key, Size: o.Size, ETag: o.ETag, StorageClass: o.StorageClass, VersionID: o.VersionID}
	if e.StorageClass == "STANDARD" {
		e.StorageClass = "" // the default: not worth its bytes in every entry
	}
	n := entrySize(e)
	if len(b.cur.Entries) > 0 && b.curSize+n+batchOverhead+b.fixed > MaxBodyBytes {
		if err := b.flush(ctx, out); err != nil {
			return err
		}
	}
	if len(b.cur.Entries) == 0 {
		b.opened = time.Now()
	}
	b.cur.Entries = append(b.cur.Entries, e)
	b.tokens = append(b.tokens, o.Token)
	if b.sum.Estimate != nil {
		b.sum.Estimate.add(b.op, o)
	}
	b.curSize += n
	if len(b.cur.Entries) >= b.opts.MaxKeys {
		return b.flush(ctx, out)
	}
	return nil
}

func (b *Batcher) flush(ctx context.Context, out chan<- Body) error {
	if len(b.cur.Entries) == 0 {
		return nil
	}
	seq, err := b.sum.nextSeq()
	if err != nil {
		return err
	}
	batch := Batch{
		Version: SchemaVersion, Run: b.sum.Run, Seq: seq, Op: b.op,
		Source: b.sum.Source, Dest: b.sum.Dest, Entries: b.cur.Entries,
	}
	if b.op == OpCopy && !b.sum.Copy.IsZero() {
		batch.Copy = &b.sum.Copy
	}
	body, err := Encode(batch)
	if err != nil {
		return fmt.Errorf("encode batch %d: %w", seq, err)
	}
	msg := Body{Data: body, Seq: seq, Delete: b.op == OpDelete, Tokens: b.tokens, Objects: int64(len(batch.Entries))}
	if b.op != OpDelete {
		msg.Bytes = batch.Bytes()
	}
	select {
	case out <- msg:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.sum.Messages.Add(1)
	b.sum.Objects.Add(msg.Objects)
	b.sum.Bytes.Add(msg.Bytes)
	if b.op == OpDelete {
		b.sum.Deletes.Add(msg.Objects)
	}
	b.cur.Entries, b.tokens = nil, nil
	b.curSize = 0
	return nil
}
