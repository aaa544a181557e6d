package worker

import (
	"sync"
	"time"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
)

// access tells a key S3 refuses to copy while the rest of its bucket copies
// (another account's object, a per-object KMS key, a policy on its tags or
// prefix: that key's failure) from a refusal of all the work between two
// buckets (a role without a grant, a revoked one: the message is blocked
// until an operator acts). It is decided when the refused key's message is
// settled: the refusal is the key's own when another key of the same
// message was copied in the same attempt, or when a copy between the same
// two buckets for the same run began after the refusal began and
// succeeded. S3 authorizes a request when it arrives, so after a grant is
// revoked no copy that begins succeeds: a bucket-wide refusal is taken for
// keys' own only in the messages under way when the grant went, whose
// earlier keys were copied (and during IAM's propagation, seconds); those
// keys are failed, named, and repaired from the failures like any other,
// never lost. With nothing to go by
// the message goes back to the queue, and by the time it returns other
// copies have shown whether the buckets copy. It never writes anything to
// find out. Safe for concurrent use.
type access struct {
	mu sync.Mutex
	// began is when the latest successful copy between a run's two
	// buckets began.
	began map[pairKey]time.Time
}

type pairKey struct{ run, src, dst string }

func newAccess() *access { return &access{began: map[pairKey]time.Time{}} }

// succeeded notes a copy for run that began at began and succeeded.
func (a *access) succeeded(run string, src copier.Source, dst copier.Target, began time.Time) {
	k := pairKey{run, src.Bucket, dst.Bucket}
	a.mu.Lock()
	defer a.mu.Unlock()
	if began.After(a.began[k]) {
		a.began[k] = began
	}
}

// copiedSince reports whether a copy for run between the buckets of src and
// dst began after t and succeeded.
func (a *access) copiedSince(run string, src copier.Source, dst copier.Target, t time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.began[pairKey{run, src.Bucket, dst.Bucket}].After(t)
}

// ownRefusal reports a refusal that can be a key's own: S3's AccessDenied
// (a policy, an ACL, a KMS key's policy). A refusal of the caller itself
// (an unknown or disabled access key, a bad signature) never is.
func ownRefusal(ce *copier.Error) bool {
	switch ce.Code {
	case "AccessDenied", "KMS.AccessDeniedException", "":
		return ce.Reason == copier.ReasonAccessDenied
	}
	return false
}

// refusal is a key S3 refused, waiting for its message to settle whether
// the refusal is its own.
type refusal struct {
	f     ledger.Failure
	ce    *copier.Error
	src   copier.Source
	dst   copier.Target
	began time.Time
}
