package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/test/testbed"
)

// TestTheFleetSharesEachPrefixsRate copies through the test bed's partition
// emulation: S3 takes "at least 3,500 PUT/COPY/POST/DELETE requests per
// second per partitioned prefix" and answers 503 SlowDown beyond
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html),
// played here at 120 writes a second for hot/ and 1,000 for cool/. Two
// workers share hot/'s rate through the ledger: the clone is exact, few of
// hot/'s writes are throttled, cool/ is not held up by hot/'s throttling,
// status shows the pacing while the workers run, and the workers leave the
// rate in the ledger and take their presence off when they stop.
//
// The bounds here are looser than the benchmark's (BenchmarkPartitions:
// at most 5% throttled, goodput at least 0.9 of the limit): this test
// runs beside the rest of the suite on two cores.
func TestTheFleetSharesEachPrefixsRate(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	var objs []testbed.Object
	for i := range 960 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("hot/%d/%04d.jpg", i%5, i), Body: bytes.Repeat([]byte{byte(i)}, 100)})
	}
	for i := range 240 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("cool/%04d.txt", i), Body: []byte(fmt.Sprint(i))})
	}
	env.Put(t, src, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--batch-keys", "40")

	parts := env.Partitions(t, dst, testbed.Partition{Prefix: "hot/", Limit: 120}, testbed.Partition{Prefix: "cool/", Limit: 1000})
	var wg sync.WaitGroup
	logs := make([]string, 2)
	for i := range logs {
		wg.Go(func() {
			cmd, _, stderr := command(env, "worker", "--id", fmt.Sprint("w", i), "--queue-url", work, "--ledger", led,
				"--idle-exit", "3s", "--log-format", "json")
			cmd.Env = env.EnvironFor(parts.URL)
			if err := cmd.Run(); err != nil {
				t.Errorf("worker %d: %v\n%s", i, err, tail(stderr.String()))
			}
			logs[i] = stderr.String()
		})
	}
	// While they copy, status shows how hot/ is paced.
	var pacing struct {
		Pacing *struct {
			Workers  int `json:"workers"`
			Prefixes []struct {
				Prefix string  `json:"prefix"`
				Rate   float64 `json:"rate"`
				Writes float64 `json:"writes_per_second"`
			} `json:"prefixes"`
		} `json:"pacing"`
	}
	waitFor(t, 30*time.Second, "status to show hot/'s pacing", func() bool {
		r := mustRun(t, env, "planner", "status", "--ledger", led, "--json")
		if err := json.Unmarshal([]byte(r.stdout), &pacing); err != nil {
			t.Fatal(err)
		}
		// Each worker's presence, rewritten every 5 s, names what it wrote
		// since the last; a worker that took none of the keys (the first
		// to receive may hold them all) is not among those writing here.
		return pacing.Pacing != nil && len(pacing.Pacing.Prefixes) > 0 && pacing.Pacing.Prefixes[0].Prefix == "hot/"
	})
	if p := pacing.Pacing; p.Workers < 1 || p.Workers > 2 || p.Prefixes[0].Rate <= 0 || p.Prefixes[0].Writes <= 0 || p.Prefixes[0].Writes > 2*120 {
		t.Errorf("status's pacing %+v: want 1 or 2 workers, hot/ allowed and written to near its 120 a second", p)
	}
	text := mustRun(t, env, "planner", "status", "--ledger", led).stdout
	wg.Wait()
	// Unless the run completed in between (960 writes at 120 a second
	// take 8 s), the text shows hot/'s pacing too.
	if !regexp.MustCompile(`(?m)^eta\s+complete$`).MatchString(text) && !strings.Contains(text, "hot/: ") {
		t.Errorf("status while copying says nothing of hot/'s pacing:\n%s", text)
	}

	st := status(t, env, led)
	if !st.Complete || st.Copied != 1200 || st.Failed != 0 {
		t.Fatalf("status %+v", st)
	}
	if v, code := verify(t, env, "s3://"+src, "s3://"+dst); code != 0 || v.Matching != 1200 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
	hot, cool := parts.Stat("hot/"), parts.Stat("cool/")
	t.Logf("hot/: %d taken, %d throttled, %v to %v; cool/: %d taken, %d throttled, %v", hot.Accepted, hot.Throttled,
		hot.First.Format(time.StampMilli), hot.Last.Format(time.StampMilli), cool.Accepted, cool.Throttled, cool.Last.Sub(cool.First))
	if hot.Accepted != 960 || cool.Accepted != 240 {
		t.Errorf("the partitions took %d and %d writes, want each copy once: 960 and 240", hot.Accepted, cool.Accepted)
	}
	if share := float64(hot.Throttled) / float64(hot.Accepted+hot.Throttled); hot.Throttled == 0 || share > 0.15 {
		t.Errorf("hot/: %d of %d writes throttled (%.1f%%): want some (the limit is met) and at most 15%%",
			hot.Throttled, hot.Accepted+hot.Throttled, 100*share)
	}
	// 960 writes at 120 a second take 8 s: cool/'s 240 keys are not held
	// up behind them (they would be, were hot/'s throttles to slow every
	// prefix, or a worker's slots all taken by keys waiting for hot/).
	if span := hot.Last.Sub(hot.First); cool.Throttled != 0 || cool.Last.After(hot.Last) || cool.Last.Sub(cool.First) > span/2 {
		t.Errorf("cool/ copied from %v to %v (%d throttled), hot/ from %v to %v: want cool/ done early, unthrottled",
			cool.First.Format(time.StampMilli), cool.Last.Format(time.StampMilli), cool.Throttled,
			hot.First.Format(time.StampMilli), hot.Last.Format(time.StampMilli))
	}

	// The ledger keeps hot/'s rate (out of slow start: S3 throttled it);
	// the workers took their presence off.
	u, _ := url.Parse(led)
	store := ledger.New(env.S3, u.Host, strings.TrimPrefix(u.Path, "/"))
	r, err := store.Rate(context.Background(), store.RateKey(dst, "hot/"))
	if err != nil || r == nil || r.SlowStart || r.PerWorker <= 0 || r.Cut.IsZero() {
		t.Errorf("hot/'s rate in the ledger: %+v, %v; want one cut after a throttle", r, err)
	}
	view, err := store.Pace(context.Background())
	if err != nil || len(view.Workers) != 0 {
		t.Errorf("presences left after the workers stopped: %v, %v", view.Workers, err)
	}
	// Each worker's last line says how it paced.
	var cuts int64
	for _, log := range logs {
		for _, line := range strings.Split(log, "\n") {
			var ev struct {
				Message string `json:"message"`
				Writes  int64  `json:"writes"`
				Cuts    int64  `json:"rate_cuts"`
				Hot     string `json:"hot_prefix"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "worker stopped" {
				cuts += ev.Cuts
				if ev.Writes == 0 || ev.Hot != dst+"/hot/" {
					t.Errorf("a worker's last line %s: want its writes and hot/ as its busiest prefix", line)
				}
			}
		}
	}
	if cuts == 0 {
		t.Error("no worker cut a rate, though hot/ throttled")
	}
}

// TestWorkerWithoutThePaceGrantsStops: a worker whose role may record its
// entries but not share the fleet's rates (a stack from before the pacing)
// stops at start with exit 2, naming the grants, and takes no work.
func TestWorkerWithoutThePaceGrantsStops(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "a.jpg", Body: []byte("a")}})
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led)
	planned, err := queueDepth(env, work)
	if err != nil || planned == 0 {
		t.Fatalf("%d messages planned (%v)", planned, err)
	}

	user := testbed.Name("w")
	env.User(t, user, user+"-secret")
	env.Grant(t, src, user, "s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging")
	env.Grant(t, dst, user, "s3:PutObject", "s3:PutObjectTagging")
	env.Grant(t, bucketOf(led), user, "s3:PutObject") // its record and entries; not the listing of pace/
	r := runAs(t, env, user, user+"-secret", "worker", "--queue-url", work, "--ledger", led, "--idle-exit", "2s")
	if r.code != 2 || !strings.Contains(r.stderr, "s3:ListBucket on arn:aws:s3:::"+bucketOf(led)) || !strings.Contains(r.stderr, "pace/*") {
		t.Fatalf("worker without the pace/ grants: exit %d, want 2 naming them:\n%s", r.code, tail(r.stderr))
	}
	if n, err := queueDepth(env, work); err != nil || n != planned {
		t.Fatalf("%d messages on the queue (%v), want the %d planned, untaken", n, err, planned)
	}
}
