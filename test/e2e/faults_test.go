package e2e

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestThrottlingAndFaultsLoseNothing puts the workers behind a proxy that
// answers 5% of S3 requests with 503 SlowDown, 1% with 500 InternalError,
// and drops 1% of connections: the workers cut their prefixes' write
// rates, retry, and nothing fails for good.
func TestThrottlingAndFaultsLoseNothing(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	objs := acceptanceObjects()
	for _, o := range acceptanceObjects() {
		o.Key = "more/" + o.Key
		objs = append(objs, o)
	}
	env.Put(t, src, objs)
	work, _ := env.Queue(t, 10)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst, "--queue-url", work, "--ledger", led, "--batch-keys", "20")

	faults := env.Faults(t, 5, 1, 1)
	var wg sync.WaitGroup
	logs := make([]string, 2)
	for i := range logs {
		wg.Go(func() {
			cmd, _, stderr := command(env, "worker", "--queue-url", work, "--ledger", led, "--idle-exit", "3s",
				"--concurrency", "32", "--retry-backoff", "1s", "--log-format", "json")
			cmd.Env = env.EnvironFor(faults.URL)
			if err := cmd.Run(); err != nil {
				t.Errorf("worker %d: %v\n%s", i, err, tail(stderr.String()))
			}
			logs[i] = stderr.String()
		})
	}
	wg.Wait()
	t.Logf("proxy: %d passed, %d SlowDown, %d InternalError, %d dropped", faults.Passed.Load(), faults.SlowDowns.Load(), faults.Internal.Load(), faults.Drops.Load())
	if faults.SlowDowns.Load() == 0 || faults.Internal.Load() == 0 || faults.Drops.Load() == 0 {
		t.Fatal("the proxy injected too few faults for the test to mean anything")
	}

	st := status(t, env, led)
	if !st.Complete || st.Copied != 800 || st.Failed != 0 {
		t.Fatalf("status %+v", st)
	}
	if v, code := verify(t, env, "s3://"+src, "s3://"+dst); code != 0 || v.Matching != 800 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
	var throttles, cuts int64
	for _, log := range logs {
		for _, line := range strings.Split(log, "\n") {
			var ev struct {
				Message   string `json:"message"`
				Throttles int64  `json:"throttles"`
				Cuts      int64  `json:"rate_cuts"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "worker stopped" {
				throttles += ev.Throttles
				cuts += ev.Cuts
			}
		}
	}
	if throttles == 0 || cuts == 0 {
		t.Fatalf("the workers saw %d throttles and cut their write rates %d times; want both", throttles, cuts)
	}
}

// TestSQSFaultsLoseNothing runs the plan and two workers with every SQS
// call going through a proxy that throttles 10% of the sends, receives,
// deletes and visibility changes, fails 5% with 500 and drops 3%: all are
// retried, no batch is lost, and status still counts exactly.
func TestSQSFaultsLoseNothing(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, acceptanceObjects())
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	faults := env.SQSFaults(t, 10, 5, 3)
	// Queue URLs name the real server; the proxy stands in as the endpoint.
	environ := func() []string {
		e := env.Environ()
		for i, kv := range e {
			if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_SQS=") {
				e[i] = "AWS_ENDPOINT_URL_SQS=" + faults.URL
			}
		}
		return e
	}
	cmd, out, stderr := command(env, "planner", "plan", "--source", "s3://"+src, "--dest", "s3://"+dst,
		"--queue-url", work, "--ledger", led, "--batch-keys", "10")
	cmd.Env = environ()
	if err := cmd.Run(); err != nil {
		t.Fatalf("plan through SQS faults: %v\n%s\n%s", err, out, tail(stderr.String()))
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			cmd, _, stderr := command(env, "worker", "--queue-url", work, "--ledger", led, "--idle-exit", "4s")
			cmd.Env = environ()
			if err := cmd.Run(); err != nil {
				t.Errorf("worker %d: %v\n%s", i, err, tail(stderr.String()))
			}
		})
	}
	wg.Wait()
	t.Logf("SQS proxy: %d passed, %d throttled, %d InternalError, %d dropped", faults.Passed.Load(), faults.SlowDowns.Load(), faults.Internal.Load(), faults.Drops.Load())
	if faults.SlowDowns.Load()+faults.Internal.Load()+faults.Drops.Load() == 0 {
		t.Fatal("no SQS fault was injected")
	}
	st := status(t, env, led)
	if !st.Complete || st.Copied != 400 || st.Failed != 0 || st.Messages != st.Planned.Messages {
		t.Fatalf("status %+v planned %+v", st, st.Planned)
	}
	if v, code := verify(t, env, "s3://"+src, "s3://"+dst); code != 0 || v.Matching != 400 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}
