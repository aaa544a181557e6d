package worker

import (
	"context"
	"sync"
	"time"

	"github.com/s3clone/s3clone/internal/copier"
)

// access tells a key S3 refuses to copy while the rest of its bucket copies
// (another account's object, a per-object KMS key, a policy on its tags or
// prefix: that key's failure) from a refusal of all the work between two
// buckets (a role without a grant: the message is blocked until an operator
// acts). A refusal is the key's own when a copy between the same buckets
// succeeded after the refused one began; failing that, when a control copy
// (the last key copied between them, again, pinned to its ETag) succeeds
// now. With nothing to go by it is not the key's own: the message goes back
// to the queue, and by the time it returns other copies have shown whether
// the buckets copy. Safe for concurrent use.
type access struct {
	mu    sync.Mutex
	pairs map[[2]string]*copied
}

// copied is the last copy between two buckets that succeeded, and when it
// ended.
type copied struct {
	src copier.Source
	dst copier.Target
	at  time.Time
}

func newAccess() *access { return &access{pairs: map[[2]string]*copied{}} }

func pairOf(src copier.Source, dst copier.Target) [2]string {
	return [2]string{src.Bucket, dst.Bucket}
}

// succeeded notes a copy that succeeded.
func (a *access) succeeded(src copier.Source, dst copier.Target) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pairs[pairOf(src, dst)] = &copied{src: src, dst: dst, at: time.Now()}
}

// keyOnly reports whether a copy of src to dst that began at began and was
// refused is refused for that key alone. It may make one control copy
// through cp.
func (a *access) keyOnly(ctx context.Context, cp Copier, src copier.Source, dst copier.Target, began time.Time) bool {
	a.mu.Lock()
	last := a.pairs[pairOf(src, dst)]
	a.mu.Unlock()
	switch {
	case last == nil:
		return false
	case last.at.After(began):
		return true
	case last.src.Key == src.Key:
		return false // the control would be the refused copy itself
	}
	if err := cp.Copy(ctx, last.src, last.dst); err != nil {
		return false
	}
	a.succeeded(last.src, last.dst)
	return true
}
