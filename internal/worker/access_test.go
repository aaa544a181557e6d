package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/test/testbed"
)

// TestAccessTellsAKeyFromItsBucket: a refusal is the key's own only when a
// copy between the same buckets, for the same run, began after it and
// succeeded: copies that began before it (and may have been authorized
// before a grant was revoked) prove nothing, nor do other buckets' or
// other runs'.
func TestAccessTellsAKeyFromItsBucket(t *testing.T) {
	t.Parallel()
	src := copier.Source{Bucket: "src", Key: "k"}
	dst := copier.Target{Bucket: "dst", Key: "k"}
	refused := time.Now()
	for _, c := range []struct {
		name string
		run  string
		dst  string
		at   time.Duration // when the successful copy began, after the refusal
		want bool
	}{
		{"a copy began after and succeeded", "r", "dst", time.Millisecond, true},
		{"a copy began before (authorized before a revocation)", "r", "dst", -time.Millisecond, false},
		{"another pair of buckets", "r", "other", time.Millisecond, false},
		{"another run", "r2", "dst", time.Millisecond, false},
	} {
		a := newAccess()
		a.succeeded(c.run, src, copier.Target{Bucket: c.dst}, refused.Add(c.at))
		if got := a.copiedSince("r", src, dst, refused); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		code string
		want bool
	}{{"AccessDenied", true}, {"KMS.AccessDeniedException", true}, {"InvalidAccessKeyId", false}, {"SignatureDoesNotMatch", false}, {"AllAccessDisabled", false}} {
		if got := ownRefusal(copier.Classify(apiErr(c.code))); got != c.want {
			t.Errorf("ownRefusal(%s) = %v, want %v", c.code, got, c.want)
		}
	}
}

// TestAKeyRefusedAloneFailsAlone: one key of a message is refused
// (AccessDenied) while its neighbours copy: the message is recorded with
// that key failed as access-denied, once, and not sent round the queue. A
// message all of whose keys are refused, with nothing ever copied between
// its buckets, is blocked: handed back, never recorded.
func TestAKeyRefusedAloneFailsAlone(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, batchBody(t, 1, "a", "b", "theirs", "c"))
	cp := newScripted(func(_ context.Context, src copier.Source, _ string) error {
		if src.Key == "in/theirs" {
			return apiErr("AccessDenied")
		}
		return nil
	})
	w, done := runWorker(t, context.Background(), Config{Concurrency: 8, IdleExit: 2 * time.Second, RetryBackoff: time.Second, Wait: time.Second}, work, journal, cp)
	waitDone(t, done, 30*time.Second)
	st, n := recorded(t, store)
	if n != 1 || st.Copied != 3 || st.Failed != 1 || w.Stats.Retried.Load() != 0 {
		t.Fatalf("%d entries, %d retried; status %+v", n, w.Stats.Retried.Load(), st)
	}
	if f := st.Failures[0]; f.Key != "in/theirs" || f.Reason != string(copier.ReasonAccessDenied) || f.Code != "AccessDenied" {
		t.Fatalf("failure %+v", f)
	}
	if n := cp.count("dst/out/theirs"); n != 1 {
		t.Fatalf("the refused key was tried %d times, want once", n)
	}

	// Every key refused, nothing ever copied: blocked.
	blockedURL, _ := env.Queue(t, 0)
	blockedQ := queue.NewSQS(env.SQS, blockedURL)
	send(t, blockedQ, batchBody(t, 2, "x", "y"))
	refuseAll := newScripted(func(context.Context, copier.Source, string) error { return apiErr("AccessDenied") })
	rec := TallyRecorder{Tally: ledger.NewTally()}
	w, done = runWorker(t, context.Background(), Config{Concurrency: 8, IdleExit: 2 * time.Second, RetryBackoff: 30 * time.Second, Wait: time.Second}, blockedQ, rec, refuseAll)
	waitDone(t, done, 30*time.Second)
	if w.Stats.Messages.Load() != 0 || w.Stats.Retried.Load() != 1 {
		t.Fatalf("a message refused whole: %d recorded, %d retried; want it blocked", w.Stats.Messages.Load(), w.Stats.Retried.Load())
	}
	if d := depth(t, blockedQ); d.InFlight != 1 {
		t.Fatalf("the blocked message is not waiting out its backoff in the queue: %+v", d)
	}

	// A grant revoked after copies succeeded: what is refused from then on
	// is blocked, not failed key by key.
	revokedURL, _ := env.Queue(t, 0)
	revokedQ := queue.NewSQS(env.SQS, revokedURL)
	send(t, revokedQ, batchBody(t, 3, "a", "b"))
	var revoked atomic.Bool
	revoking := newScripted(func(context.Context, copier.Source, string) error {
		if revoked.Load() {
			return apiErr("AccessDenied")
		}
		return nil
	})
	rec = TallyRecorder{Tally: ledger.NewTally()}
	w, done = runWorker(t, context.Background(), Config{Concurrency: 8, IdleExit: 3 * time.Second, RetryBackoff: 30 * time.Second, Wait: time.Second}, revokedQ, rec, revoking)
	waitFor(t, func() bool { return w.Stats.Messages.Load() == 1 })
	revoked.Store(true)
	send(t, revokedQ, batchBody(t, 4, "c"))
	waitDone(t, done, 30*time.Second)
	if w.Stats.Messages.Load() != 1 || w.Stats.Failed.Load() != 0 || w.Stats.Retried.Load() != 1 {
		t.Fatalf("after a revocation: %d recorded, %d failed, %d retried; want the refused message blocked", w.Stats.Messages.Load(), w.Stats.Failed.Load(), w.Stats.Retried.Load())
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}
