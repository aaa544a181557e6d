package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// syncAttempts bounds how often one key of a sync batch is read and copied
// again because it changed while it was being copied; a key still moving
// after that goes back with its message.
const syncAttempts = 5

// syncKey brings key i of a sync batch into step. An S3 event said the key
// may have changed, and an event is not a state: S3 sends them at least
// once, in no order, and may send one for two writes close together. So
// what the key holds now is read (HeadObject) and copied, pinned to what
// was read (CopySourceIfMatch), or, while the source has no such key, the
// destination's is deleted. Each copy is checked afterwards: a copy that
// finished after a newer one of the same key (a long copy of an older
// state, run by another worker for an earlier event) would otherwise leave
// the older state in place with no event left to mend it, so a source
// that no longer holds what was copied is read and copied again.
func (w *Worker) syncKey(ctx context.Context, j *job, i int) {
	b := j.batch
	e := b.Entries[i]
	src := copier.Source{Bucket: b.Source.Bucket, Region: b.Source.Region, Key: e.Key}
	dst := copier.Target{Bucket: b.Dest.Bucket, Region: b.Dest.Region, Key: plan.DestKey(b.Source, b.Dest, e.Key), Write: j.write}
	var copied *copier.Source // what this sync copied, to be read again
	deleted := false          // this sync deleted the destination's key, to be read again
	for range syncAttempts {
		cur, err := w.cp.Current(ctx, src)
		if err != nil {
			ce := copier.Classify(err)
			switch {
			case ce.Reason != copier.ReasonVanished:
				w.fail(j, ledger.Failure{Key: e.Key}, ce, ce.Blocked())
				return
			case deleted:
				w.syncedDelete(j, e.Key) // still absent after the deletion: done
				return
			}
			if !w.deleteDest(ctx, j, e.Key, dst) {
				return
			}
			// Read once more: a key written again while the deletion was on
			// its way was copied by its own event's sync, which may have
			// finished before this deletion removed the copy.
			deleted, copied = true, nil
			continue
		}
		deleted = false
		if copied != nil && sameObject(*copied, cur) {
			w.synced(j, *copied)
			return
		}
		start := time.Now()
		err = w.cp.Copy(ctx, cur, dst)
		w.cfg.Observer.CopyTook(time.Since(start))
		if err == nil {
			copied = &cur
			continue // read once more: is it still what was copied?
		}
		ce := copier.Classify(err)
		switch ce.Reason {
		case copier.ReasonChanged, copier.ReasonVanished:
			copied = nil
			continue // changed since it was read: read it again
		}
		w.fail(j, ledger.Failure{Key: e.Key, Size: cur.Size, ETag: cur.ETag, Class: cur.StorageClass}, ce, ce.Blocked())
		return
	}
	w.fail(j, ledger.Failure{Key: e.Key}, &copier.Error{Reason: copier.ReasonTransient,
		Err: fmt.Errorf("s3://%s/%s changed while being copied %d times running: its message will be tried again", b.Source.Bucket, e.Key, syncAttempts)}, false)
}

// sameObject reports two readings of a key that found the same object:
// the same ETag, size and time written (a copy onto itself that replaces
// only metadata keeps the ETag, not the time).
func sameObject(a, b copier.Source) bool {
	return a.ETag == b.ETag && a.Size == b.Size && a.Modified.Equal(b.Modified)
}

// synced counts a key copied by a sync.
func (w *Worker) synced(j *job, src copier.Source) {
	j.mu.Lock()
	j.result.Copied++
	j.result.Bytes += src.Size
	j.mu.Unlock()
	w.Stats.Copied.Add(1)
	w.Stats.Bytes.Add(src.Size)
	w.log.Debug().Str("key", src.Key).Int64("bytes", src.Size).Msg("object synced")
}

// deleteDest deletes a sync's destination key, the source having none: a
// deletion in the source, or a key created and deleted again. It reports
// whether it did (else its failure is recorded).
func (w *Worker) deleteDest(ctx context.Context, j *job, key string, dst copier.Target) bool {
	failed, err := w.cp.Delete(ctx, copier.Target{Bucket: dst.Bucket, Region: dst.Region}, []copier.Doomed{{Key: dst.Key}})
	if err == nil && len(failed) > 0 {
		err = failed[0].Err
	}
	if err != nil {
		ce := copier.Classify(err)
		w.fail(j, ledger.Failure{Key: key}, ce, ce.Blocked())
		return false
	}
	return true
}

// syncedDelete counts a key a sync deleted from the destination.
func (w *Worker) syncedDelete(j *job, key string) {
	j.mu.Lock()
	j.result.Deleted++
	j.mu.Unlock()
	w.Stats.Deleted.Add(1)
	w.log.Debug().Str("key", key).Msg("object deleted: absent from the source")
}

// recheckAfter is how long a copy must take before its source is read
// again (movedDuring). S3 checks CopySourceIfMatch when a copy begins; a
// change after that, and its event's sync, can finish before a long copy
// does, which would then leave the older state. A change's sync needs its
// event (delivered "typically in seconds", the S3 user guide), follow's
// flush, the queue and a HeadObject before its own copy: a copy shorter
// than this is not overtaken.
const recheckAfter = 500 * time.Millisecond

// movedDuring reports a source that no longer holds the listed object
// after a copy of it that took long enough to be overtaken. A copy of one
// version (--as-of) never is; nor one not pinned to an ETag.
func (w *Worker) movedDuring(ctx context.Context, src copier.Source, took time.Duration) bool {
	if took < recheckAfter || src.VersionID != "" || src.ETag == "" {
		return false
	}
	cur, err := w.cp.Current(ctx, src)
	if err != nil {
		return copier.Classify(err).Reason == copier.ReasonVanished
	}
	return cur.ETag != src.ETag || cur.Size != src.Size
}
