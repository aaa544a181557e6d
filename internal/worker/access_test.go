package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/testbed"
)

// TestAccessTellsAKeyFromItsBucket: a refusal is the key's own when a copy
// between the same buckets succeeded after it began, or when a control copy
// of the last key copied succeeds; never with nothing to go by, nor when the
// control copy is refused too (the whole bucket was refused: blocked).
func TestAccessTellsAKeyFromItsBucket(t *testing.T) {
	t.Parallel()
	src := func(key string) copier.Source { return copier.Source{Bucket: "src", Key: key, ETag: `"e"`} }
	dst := func(key string) copier.Target { return copier.Target{Bucket: "dst", Key: key} }
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		prior     string // the last key copied between src and dst, "" for none
		after     bool   // it finished after the refused copy began
		otherPair bool   // it was copied between other buckets
		control   error  // what a control copy answers
		want      bool
		controls  int // control copies made
	}{
		{name: "nothing copied yet", want: false},
		{name: "a copy succeeded after", prior: "ok", after: true, want: true},
		{name: "a control copy succeeds", prior: "ok", want: true, controls: 1},
		{name: "the control copy is refused too", prior: "ok", control: apiErr("AccessDenied"), want: false, controls: 1},
		{name: "copies between other buckets prove nothing", prior: "ok", after: true, otherPair: true, want: false},
		{name: "the last copy was of the refused key", prior: "denied", want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAccess()
			var controls atomic.Int32
			cp := newScripted(func(_ context.Context, s copier.Source, _ string) error {
				controls.Add(1)
				if s.Key != tc.prior {
					t.Errorf("control copy of %q, want the last key copied (%q)", s.Key, tc.prior)
				}
				return tc.control
			})
			began := time.Now()
			if tc.prior != "" {
				if !tc.after {
					began = began.Add(time.Minute) // the refused copy began after it
				}
				to := dst(tc.prior)
				if tc.otherPair {
					to.Bucket = "elsewhere"
				}
				a.succeeded(src(tc.prior), to)
			}
			if got := a.keyOnly(ctx, cp, src("denied"), dst("denied"), began); got != tc.want {
				t.Errorf("keyOnly = %v, want %v", got, tc.want)
			}
			if int(controls.Load()) != tc.controls {
				t.Errorf("%d control copies, want %d", controls.Load(), tc.controls)
			}
		})
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
}
