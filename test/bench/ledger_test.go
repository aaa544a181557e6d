package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/test/testbed"
)

// fillLedger writes a finished run of n work messages of 100 keys straight
// into a ledger on the S3 server (no latency: this is set-up), as a planner
// and workers journals would: sent records of 2,000 numbers, entries spread
// over workers journals, one message in 50 with 3 failed keys.
func fillLedger(b *testing.B, env *testbed.Env, store *ledger.Store, run string, n, workers int) {
	b.Helper()
	ctx := context.Background()
	started := time.Now().Add(-time.Hour).UTC()
	l, err := store.BeginRun(ctx, ledger.Run{ID: run, Mode: ledger.ModeFull, Started: started,
		Source: plan.Location{Bucket: "prod-images"}, Dest: plan.Location{Bucket: "clone-images"}})
	if err != nil {
		b.Fatal(err)
	}
	for from := 1; from <= n; from += 2000 {
		var seqs []int64
		for s := from; s < min(from+2000, n+1); s++ {
			seqs = append(seqs, int64(s))
		}
		l.Sent(seqs, ledger.Totals{Messages: int64(len(seqs)), Objects: 100 * int64(len(seqs)), Bytes: 4 << 20 * int64(len(seqs))}, nil)
	}
	if err := l.End(ctx, int64(n), nil); err != nil {
		b.Fatal(err)
	}
	journals := make([]*ledger.Journal, workers)
	for i := range journals {
		if journals[i], err = store.OpenJournal(ctx, fmt.Sprintf("ip-10-0-%d-17.ec2.internal-7", i), "bench"); err != nil {
			b.Fatal(err)
		}
	}
	recordEntries(b, journals, run, 1, n, started)
}

// recordEntries writes the entries of messages from..to, 64 at a time.
func recordEntries(b *testing.B, journals []*ledger.Journal, run string, from, to int, started time.Time) {
	b.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for seq := from; seq <= to; seq++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			at := started.Add(time.Duration(seq) * 30 * time.Millisecond)
			e := &ledger.Entry{Run: run, Seq: int64(seq), Source: plan.Location{Bucket: "prod-images"}, Dest: plan.Location{Bucket: "clone-images"},
				Copied: 100, Bytes: 4 << 20, Started: at, Finished: at.Add(400 * time.Millisecond)}
			if seq%50 == 0 {
				e.Copied = 97
				for k := range 3 {
					e.Failed = append(e.Failed, ledger.Failure{Key: fmt.Sprintf("photos/%d/%d.jpg", seq, k), Size: 40000, ETag: `"0123456789abcdef0123456789abcdef"`,
						Reason: "archived", Code: "InvalidObjectState", Detail: "the object is in the GLACIER storage class: restore it first"})
				}
			}
			if err := journals[seq%len(journals)].Record(context.Background(), e); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

// BenchmarkStatus times planner status (the process, start to exit) over
// finished runs of 1,000, 10,000 and 100,000 work messages behind a 20 ms
// latency proxy, and counts its S3 requests; then the cost of one --watch
// refresh (the ledger's Reader) after 100 more messages finished. Target: a
// 10,000-message run (a million objects) read in under 2 s.
// S3CLONE_BENCH_LEDGER_MAX (default 100000) caps the sizes.
func BenchmarkStatus(b *testing.B) {
	env := testbed.Get(b)
	ms := setting("S3CLONE_BENCH_LATENCY_MS", 20)
	slow := env.WithLatency(b, ms)
	counting := env.Counting(b, slow)
	maxN := setting("S3CLONE_BENCH_LEDGER_MAX", 100000)
	for b.Loop() {
		for _, n := range []int{1000, 10000, 100000} {
			if n > maxN {
				continue
			}
			bucket := env.Bucket(b)
			store := ledger.New(env.S3, bucket, "s3clone/")
			run := fmt.Sprintf("20261201T%06dZ-00000001", n)
			fillStart := time.Now()
			fillLedger(b, env, store, run, n, 2)
			b.Logf("%d messages written in %s", n, time.Since(fillStart).Round(time.Millisecond))

			before := counting.Passed.Load()
			cmd := exec.Command(filepath.Join(bin, "planner"), "status", "--ledger", "s3://"+bucket+"/s3clone/", "--json")
			cmd.Env = env.EnvironFor(counting.URL)
			start := time.Now()
			out, err := cmd.Output()
			took := time.Since(start)
			if err != nil {
				b.Fatalf("status: %v\n%s", err, out)
			}
			var v struct {
				Complete bool  `json:"complete"`
				Copied   int64 `json:"copied"`
				Failed   int64 `json:"failed"`
			}
			if err := json.Unmarshal(out, &v); err != nil || !v.Complete || v.Copied+v.Failed != int64(100*n) {
				b.Fatalf("status of %d messages: %s (%v)", n, out, err)
			}
			requests := counting.Passed.Load() - before
			b.ReportMetric(took.Seconds(), fmt.Sprintf("status-s-%dk-messages", n/1000))
			b.ReportMetric(float64(requests), fmt.Sprintf("status-requests-%dk-messages", n/1000))
			b.Logf("status of a finished run of %d messages (%d objects) behind %d ms: %.2fs, %d S3 requests", n, 100*n, ms, took.Seconds(), requests)
			if n == 10000 && took > 2*time.Second {
				b.Errorf("status of a 10,000-message run took %s; target under 2s", took)
			}
			if n == 10000 {
				watchRefresh(b, env, counting.URL, bucket, run)
			}
		}
	}
}

// watchRefresh measures what a --watch refresh costs after 100 more
// messages finished: a Reader that has read the run reads again.
func watchRefresh(b *testing.B, env *testbed.Env, endpoint, bucket, run string) {
	b.Helper()
	ctx := context.Background()
	store := ledger.New(env.Client(endpoint), bucket, "s3clone/")
	r := store.Follow(run)
	if err := r.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	// The run goes on: its plan sends 100 more, two workers finish them.
	writer := ledger.New(env.S3, bucket, "s3clone/")
	more, err := writer.BeginRun(ctx, ledger.Run{ID: run, Mode: ledger.ModeFull})
	if err != nil {
		b.Fatal(err)
	}
	var seqs []int64
	for s := 10001; s <= 10100; s++ {
		seqs = append(seqs, int64(s))
	}
	more.Sent(seqs, ledger.Totals{Messages: 100, Objects: 10000}, nil)
	if err := more.End(ctx, 10100, nil); err != nil {
		b.Fatal(err)
	}
	journals := make([]*ledger.Journal, 2)
	for i := range journals {
		if journals[i], err = writer.OpenJournal(ctx, fmt.Sprint("late-", i), "bench"); err != nil {
			b.Fatal(err)
		}
	}
	recordEntries(b, journals, run, 10001, 10100, time.Now())
	before := store.Requests.Load()
	start := time.Now()
	if err := r.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	requests := store.Requests.Load() - before
	if st := r.Tally().Status(); !st.Complete || st.Done != 10100 {
		b.Fatalf("after the refresh: %+v", st)
	}
	b.ReportMetric(took.Seconds(), "watch-refresh-100-new-s")
	b.ReportMetric(float64(requests), "watch-refresh-100-new-requests")
	b.Logf("a --watch refresh of a 10,000-message run after 100 more finished: %.3fs, %d S3 requests", took.Seconds(), requests)
}
