package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/test/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }

func newStore(t *testing.T) *ledger.Store {
	t.Helper()
	env := testbed.Get(t)
	return ledger.New(env.S3, env.Bucket(t), "ledger")
}

func entry(run string, seq int64, copied int, failed ...string) *ledger.Entry {
	start := time.Now().UTC()
	e := &ledger.Entry{Run: run, Seq: seq, Copied: int64(copied), Bytes: int64(copied) * 100,
		Source: plan.Location{Bucket: "src"}, Dest: plan.Location{Bucket: "dst"}, Started: start, Finished: start.Add(time.Duration(seq) * time.Millisecond)}
	for _, k := range failed {
		e.Failed = append(e.Failed, ledger.Failure{Key: k, Size: 7, ETag: `"e"`, Reason: "archived", Code: "InvalidObjectState", Detail: "restore it first"})
	}
	return e
}

// TestSentRecordsHoldEveryNumberOnce sends from many goroutines at once,
// as the planner's senders do: every number is in the ledger exactly once,
// each group's callback runs once, after its record is durable, and the
// ended run record carries the totals.
func TestSentRecordsHoldEveryNumberOnce(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	l, err := store.BeginRun(ctx, ledger.Run{ID: "20261201T000000Z-00000001", Mode: ledger.ModeFull, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	l.Linger = 20 * time.Millisecond
	var called atomic.Int64
	var durableBeforeCallback atomic.Bool
	durableBeforeCallback.Store(true)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				seqs := []int64{int64(g*500 + i*10 + 1), int64(g*500 + i*10 + 2)}
				l.Sent(seqs, ledger.Totals{Messages: 2, Objects: 20, Bytes: 200}, func() { called.Add(1) })
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	if err := l.End(ctx, 4000, nil); err != nil {
		t.Fatal(err)
	}
	if called.Load() != 400 {
		t.Fatalf("%d callbacks for 400 groups", called.Load())
	}
	r := store.Follow("20261201T000000Z-00000001")
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	st := r.Tally().Status()
	if st.Sent != 800 || st.Planned.Messages != 800 || st.Planned.Objects != 8000 || st.Run.Planned.Objects != 8000 || !st.Run.Finished() {
		t.Fatalf("sent %d, planned %+v, run %+v", st.Sent, st.Planned, st.Run)
	}
	if st.Complete {
		t.Fatal("complete with no message done")
	}
}

// TestReaderReadsOnlyWhatIsNew: a refresh after 100 more messages finished
// costs a few requests, not the run's history, and the totals stay exact.
func TestReaderReadsOnlyWhatIsNew(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	run := "20261201T000000Z-00000002"
	l, err := store.BeginRun(ctx, ledger.Run{ID: run, Mode: ledger.ModeFull})
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]int64, 2600)
	for i := range seqs {
		seqs[i] = int64(i + 1)
	}
	l.Sent(seqs, ledger.Totals{Messages: 2600, Objects: 26000}, nil)
	if err := l.End(ctx, 2600, nil); err != nil {
		t.Fatal(err)
	}
	journals := make([]*ledger.Journal, 2)
	for i := range journals {
		if journals[i], err = store.OpenJournal(ctx, fmt.Sprint("w", i), "test"); err != nil {
			t.Fatal(err)
		}
	}
	record := func(from, to int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for seq := from; seq <= to; seq++ {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := journals[seq%2].Record(ctx, entry(run, int64(seq), 10)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	record(1, 2500) // more than a thousand entries per journal: several folders each
	r := store.Follow(run)
	before := store.Requests.Load()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	full := store.Requests.Load() - before
	if st := r.Tally().Status(); st.Done != 2500 || st.Copied != 25000 || st.Complete {
		t.Fatalf("after 2,500: %+v", st)
	}
	record(2501, 2600)
	before = store.Requests.Load()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	incremental := store.Requests.Load() - before
	st := r.Tally().Status()
	if st.Done != 2600 || st.Copied != 26000 || !st.Complete || st.Duplicates != 0 {
		t.Fatalf("after 2,600: %+v", st)
	}
	// The sent record list, the journal list, one listing per journal.
	if incremental > 4 {
		t.Fatalf("a refresh after 100 new entries made %d requests (the first read of 2,500 made %d)", incremental, full)
	}
	// A fresh reader agrees with the one that read in two steps.
	again := store.Follow(run)
	if err := again.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if a, b := again.Tally().StatusAt(now), r.Tally().StatusAt(now); a.Copied != b.Copied || a.Done != b.Done || a.Last != b.Last || a.RecentRate != b.RecentRate {
		t.Fatalf("two readers disagree: %+v vs %+v", a, b)
	}
}

// TestAThousandRuns: a ledger of 1,000 runs finds the latest and reads any.
func TestAThousandRuns(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range 1000 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			l, err := store.BeginRun(ctx, ledger.Run{ID: fmt.Sprintf("20261201T%06dZ-%08x", i, i), Mode: ledger.ModeFull})
			if err == nil {
				err = l.End(ctx, 0, nil)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	runs, err := store.Runs(ctx)
	if err != nil || len(runs) != 1000 {
		t.Fatalf("%d runs (%v)", len(runs), err)
	}
	latest, err := store.Latest(ctx)
	if err != nil || latest != "20261201T000999Z-000003e7" {
		t.Fatalf("latest %q (%v)", latest, err)
	}
	if r, err := store.Run(ctx, "20261201T000500Z-000001f4"); err != nil || !r.Finished() {
		t.Fatalf("run 500: %+v %v", r, err)
	}
}

// TestAMessageWhoseKeysAllFail: 10,000 failed keys of one message are
// recorded in full and read back, reasons and all.
func TestAMessageWhoseKeysAllFail(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	run := "20261201T000000Z-00000003"
	if _, err := store.BeginRun(ctx, ledger.Run{ID: run}); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = fmt.Sprintf("photos/2024/%05d-%s.jpg", i, strings.Repeat("x", 40))
	}
	j, err := store.OpenJournal(ctx, "w", "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Record(ctx, entry(run, 1, 0, keys...)); err != nil {
		t.Fatal(err)
	}
	r := store.Follow(run)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st := r.Tally().Status(); st.Failed != 10000 {
		t.Fatalf("failed %d", st.Failed)
	}
	entries, err := r.Failed(ctx, 0)
	if err != nil || len(entries) != 1 || len(entries[0].Failed) != 10000 {
		t.Fatalf("%d entries (%v)", len(entries), err)
	}
	if f := entries[0].Failed[9999]; f.Key != keys[9999] || f.Reason != "archived" || f.Code != "InvalidObjectState" || f.Size != 7 {
		t.Fatalf("last failure %+v", f)
	}
	first, err := r.Failures(ctx, ledger.MaxFailures)
	if err != nil || len(first) != ledger.MaxFailures || first[0].Key != keys[0] {
		t.Fatalf("first failures: %d (%v)", len(first), err)
	}
}

// TestLedgerErrorsSayWhy: a missing bucket and refused credentials come
// back as the ledger's own errors, for the commands to say what to fix.
func TestLedgerErrorsSayWhy(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	missing := ledger.New(env.S3, "no-such-ledger-bucket", "x/")
	if err := missing.CheckBucket(ctx); !errors.Is(err, ledger.ErrNoBucket) {
		t.Fatalf("missing bucket: %v", err)
	}
	if _, err := missing.BeginRun(ctx, ledger.Run{ID: "20261201T000000Z-00000004"}); !errors.Is(err, ledger.ErrNoBucket) {
		t.Fatalf("missing bucket, write: %v", err)
	}
	bucket := env.Bucket(t)
	user := testbed.Name("nobody")
	env.User(t, user, user+"-secret")
	client := s3.New(s3.Options{Region: testbed.Region, BaseEndpoint: aws.String(env.S3Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(user, user+"-secret", "")})
	denied := ledger.New(client, bucket, "x/")
	if err := denied.CheckBucket(ctx); !errors.Is(err, ledger.ErrDenied) {
		t.Fatalf("denied list: %v", err)
	}
	if _, err := denied.OpenJournal(ctx, "w", "test"); !errors.Is(err, ledger.ErrDenied) {
		t.Fatalf("denied write: %v", err)
	}
	if _, err := ledger.New(env.S3, bucket, "x/").Run(ctx, "20261201T000000Z-00000005"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("no such run: %v", err)
	}
}

// heldPuts holds back the PutObject of keys containing hold until release
// is closed: an entry written late, as when a worker writes several at once.
type heldPuts struct {
	ledger.API
	hold    string
	release chan struct{}
}

func (h heldPuts) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if strings.Contains(aws.ToString(in.Key), h.hold) {
		<-h.release
	}
	return h.API.PutObject(ctx, in, o...)
}

// TestReaderFindsEntriesStoredOutOfOrder: a journal's entry 2 is stored
// before its entry 1. A watch that read entry 2 must still find entry 1
// when it lands.
func TestReaderFindsEntriesStoredOutOfOrder(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	ctx := context.Background()
	bucket := env.Bucket(t)
	held := heldPuts{API: env.S3, hold: "/0000000001-", release: make(chan struct{})}
	writer := ledger.New(held, bucket, "ledger/")
	run := "20261201T000000Z-00000006"
	l, err := writer.BeginRun(ctx, ledger.Run{ID: run})
	if err != nil {
		t.Fatal(err)
	}
	l.Sent([]int64{1, 2, 3}, ledger.Totals{Messages: 3, Objects: 30}, nil)
	if err := l.End(ctx, 3, nil); err != nil {
		t.Fatal(err)
	}
	j, err := writer.OpenJournal(ctx, "w", "test")
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- j.Record(ctx, entry(run, 1, 10)) }() // number 1, held back
	time.Sleep(200 * time.Millisecond)
	if err := j.Record(ctx, entry(run, 2, 10)); err != nil { // number 2, stored first
		t.Fatal(err)
	}
	reader := ledger.New(env.S3, bucket, "ledger/")
	watch := reader.Follow(run)
	if err := watch.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st := watch.Tally().Status(); st.Done != 1 {
		t.Fatalf("before entry 1 lands: %+v", st)
	}
	close(held.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := watch.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st := watch.Tally().Status(); st.Done != 2 || st.Copied != 20 {
		t.Fatalf("entry 1 stored after entry 2 was read: the watch sees %+v", st)
	}

}
