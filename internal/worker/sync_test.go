package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/test/testbed"
)

// syncBody is a sync batch of run-1 from s3://src/in/ to s3://dst/out/.
func syncBody(t *testing.T, src, dst string, seq int64, keys ...string) queue.Outgoing {
	t.Helper()
	b := plan.Batch{Version: plan.SchemaVersion, Run: "run-1", Seq: seq, Op: plan.OpSync,
		Source: plan.Location{Bucket: src, Prefix: "in/"}, Dest: plan.Location{Bucket: dst, Prefix: "out/"}}
	for _, k := range keys {
		// What an event said is no guide: a stale ETag and size, which the
		// sync must not copy by.
		b.Entries = append(b.Entries, plan.Entry{Key: "in/" + k, Size: 1, ETag: `"stale"`})
	}
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return queue.Outgoing{Body: body}
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) {
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader([]byte(body))}); err != nil {
		if t == nil {
			panic(err) // from a copier standing in for S3, where no test is at hand
		}
		t.Fatal(err)
	}
}

// body reads a key, "" and false when it is not there.
func body(t *testing.T, c *s3.Client, bucket, key string) (string, bool) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// TestSyncCopiesWhatIsThereNowAndDeletesWhatIsGone runs sync batches on
// the real copier: a changed key is copied as the source holds it now
// (not as the message said), a key gone from the source is deleted from
// the destination, and a key in neither counts as deleted, harmlessly.
func TestSyncCopiesWhatIsThereNowAndDeletesWhatIsGone(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	c := env.Manners().Client("")
	src, dst := env.Bucket(t), env.Bucket(t)
	put(t, c, src, "in/changed", "new content")
	put(t, c, dst, "out/changed", "old")
	put(t, c, dst, "out/deleted", "was here")
	put(t, c, src, "in/dir/a b+c", "spaces and plus")
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, syncBody(t, src, dst, 1, "changed", "deleted", "never", "dir/a b+c"))
	cp := copier.New(c, copier.Options{})
	_, done := runWorker(t, context.Background(), Config{Concurrency: 4, IdleExit: 2 * time.Second}, work, journal, cp)
	waitDone(t, done, 30*time.Second)

	if got, ok := body(t, c, dst, "out/changed"); got != "new content" {
		t.Errorf("out/changed = %q (there: %v), want the source's current content", got, ok)
	}
	if got, ok := body(t, c, dst, "out/dir/a b+c"); got != "spaces and plus" {
		t.Errorf("out/dir/a b+c = %q (there: %v)", got, ok)
	}
	if _, ok := body(t, c, dst, "out/deleted"); ok {
		t.Error("out/deleted is still there: its source key is gone")
	}
	st, n := recorded(t, store)
	if n != 1 || st.Copied != 2 || st.Deleted != 2 || st.Failed != 0 || st.Skipped != 0 || st.Bytes != int64(len("new content")+len("spaces and plus")) {
		t.Fatalf("%d entries; status %+v", n, st)
	}
}

// racingCopier plays a copy that finishes after the source changed again:
// the first copy of a key is of the state read, but the source is
// rewritten while it runs (a newer sync of the key may already be done).
type racingCopier struct {
	*copier.Copier
	c        *s3.Client
	bucket   string
	rewrites int
}

func (r *racingCopier) Copy(ctx context.Context, src copier.Source, dst copier.Target) error {
	err := r.Copier.Copy(ctx, src, dst)
	if r.rewrites > 0 {
		r.rewrites--
		if _, perr := r.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(src.Key),
			Body: bytes.NewReader([]byte("rewritten during the copy"))}); perr != nil {
			return perr
		}
	}
	return err
}

// TestSyncCopiesAgainWhenTheSourceMovedDuringTheCopy: a copy that lands
// after the source changed again leaves the older state; the sync reads
// the source after copying and copies once more.
func TestSyncCopiesAgainWhenTheSourceMovedDuringTheCopy(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	c := env.Manners().Client("")
	src, dst := env.Bucket(t), env.Bucket(t)
	put(t, c, src, "in/k", "first")
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, syncBody(t, src, dst, 1, "k"))
	cp := &racingCopier{Copier: copier.New(c, copier.Options{}), c: c, bucket: src, rewrites: 1}
	_, done := runWorker(t, context.Background(), Config{Concurrency: 1, IdleExit: 2 * time.Second}, work, journal, cp)
	waitDone(t, done, 30*time.Second)
	if got, _ := body(t, c, dst, "out/k"); got != "rewritten during the copy" {
		t.Errorf("out/k = %q: the copy of the older state was left in place", got)
	}
	if st, _ := recorded(t, store); st.Copied != 1 || st.Failed != 0 {
		t.Errorf("status %+v: want the key counted once, copied", st)
	}
}

// deleteRacingCopier plays a deletion that lands after the key was written
// again and copied by another sync: before its DeleteObjects reaches S3,
// the source key comes back and the destination holds its copy.
type deleteRacingCopier struct {
	*copier.Copier
	c                        *s3.Client
	src, dst, srcKey, dstKey string
}

func (r *deleteRacingCopier) Delete(ctx context.Context, dst copier.Target, objs []copier.Doomed) ([]copier.KeyError, error) {
	put(nil, r.c, r.src, r.srcKey, "written again")
	put(nil, r.c, r.dst, r.dstKey, "written again")
	return r.Copier.Delete(ctx, dst, objs)
}

// TestSyncReadsTheSourceAgainAfterDeleting: a sync that found the key gone
// deletes the destination's; if the key was written again meanwhile (and
// another sync's copy landed before this deletion), reading the source
// again finds it, and it is copied.
func TestSyncReadsTheSourceAgainAfterDeleting(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	c := env.Manners().Client("")
	src, dst := env.Bucket(t), env.Bucket(t)
	put(t, c, dst, "out/k", "old copy")
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, syncBody(t, src, dst, 1, "k"))
	cp := &deleteRacingCopier{Copier: copier.New(c, copier.Options{}), c: c, src: src, dst: dst, srcKey: "in/k", dstKey: "out/k"}
	_, done := runWorker(t, context.Background(), Config{Concurrency: 1, IdleExit: 2 * time.Second}, work, journal, cp)
	waitDone(t, done, 30*time.Second)
	if got, ok := body(t, c, dst, "out/k"); got != "written again" {
		t.Errorf("out/k = %q (there: %v): the deletion removed a key written again since", got, ok)
	}
	if st, _ := recorded(t, store); st.Copied != 1 || st.Deleted != 0 || st.Failed != 0 {
		t.Errorf("status %+v: want the key counted once, copied", st)
	}
}

// slowCopier makes its first copy last past recheckAfter, and rewrites the
// source while it runs: a bulk copy overtaken by the change's own sync.
type slowCopier struct {
	racingCopier
	took time.Duration
}

func (s *slowCopier) Copy(ctx context.Context, src copier.Source, dst copier.Target) error {
	first := s.rewrites > 0
	err := s.racingCopier.Copy(ctx, src, dst)
	if first {
		time.Sleep(s.took)
	}
	return err
}

// TestALongBulkCopyReadsTheSourceAgain: a bulk copy (pinned to the listed
// ETag) that took long, during which the source changed, is followed by a
// sync of the key: the destination ends with the newer state, counted once.
func TestALongBulkCopyReadsTheSourceAgain(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	c := env.Manners().Client("")
	src, dst := env.Bucket(t), env.Bucket(t)
	put(t, c, src, "in/k", "listed")
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(src), Key: aws.String("in/k")})
	if err != nil {
		t.Fatal(err)
	}
	b := plan.Batch{Version: plan.SchemaVersion, Run: "run-1", Seq: 1, Source: plan.Location{Bucket: src, Prefix: "in/"}, Dest: plan.Location{Bucket: dst, Prefix: "out/"},
		Entries: []plan.Entry{{Key: "in/k", Size: aws.ToInt64(head.ContentLength), ETag: aws.ToString(head.ETag)}}}
	msg, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	workURL, _ := env.Queue(t, 0)
	work := queue.NewSQS(env.SQS, workURL)
	store, journal := newLedger(t, env)
	beginRun(t, store)
	send(t, work, queue.Outgoing{Body: msg})
	cp := &slowCopier{racingCopier: racingCopier{Copier: copier.New(c, copier.Options{}), c: c, bucket: src, rewrites: 1}, took: 2 * recheckAfter}
	_, done := runWorker(t, context.Background(), Config{Concurrency: 1, IdleExit: 2 * time.Second}, work, journal, cp)
	waitDone(t, done, 30*time.Second)
	if got, _ := body(t, c, dst, "out/k"); got != "rewritten during the copy" {
		t.Errorf("out/k = %q: the long copy of the listed state was left in place", got)
	}
	if st, _ := recorded(t, store); st.Copied != 1 || st.Failed != 0 {
		t.Errorf("status %+v: want the key counted once, copied", st)
	}
}
