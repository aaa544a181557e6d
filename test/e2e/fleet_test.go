package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestWatchScalesTheFleetToADeadline runs planner status --watch with a
// deadline and --scale-ecs against a fake ECS API, while the test plays
// ECS: it keeps as many real worker processes running as the service's
// desired count. Copies go through a proxy that holds each S3 request, so
// one worker cannot make the deadline. status must start a first worker
// (no rate yet), scale out once it has a rate, refresh until the run is
// complete, then park the fleet at --min-workers and exit 0 by itself.
func TestWatchScalesTheFleetToADeadline(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	env.Put(t, srcB, acceptanceObjects())
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB,
		"--queue-url", work, "--ledger", led, "--batch-keys", "10")

	fake := testbed.NewFakeECS(t, map[string]*testbed.FakeService{"s3clone/workers": {DesiredCount: 0}})
	// The stack's backlog scaling (Autoscaling=backlog): its scale-in must be
	// suspended while status steers, and resumed when status ends.
	fake.AddTarget("s3clone/workers", &testbed.FakeTarget{})
	slow := env.Slow(t, 40*time.Millisecond)

	cmd, stdout, stderr := command(env, "planner", "status", "--ledger", led, "--json",
		"--watch", "1s", "--deadline", "6s", "--scale-ecs", "s3clone/workers", "--min-workers", "0", "--max-workers", "5")
	cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL_ECS="+fake.URL, "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING="+fake.URL)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "status to suspend the service's dynamic scale-in", func() bool {
		return fake.Target("s3clone/workers").ScaleInSuspended
	})
	watchDone := make(chan error, 1)
	go func() { watchDone <- cmd.Wait() }()

	// Play ECS: run as many workers as desired (they exit once idle).
	var (
		mu      sync.Mutex
		started int
		wg      sync.WaitGroup
		failed  []string
	)
	stopPlaying, played := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(played)
		for {
			select {
			case <-stopPlaying:
				return
			case <-time.After(100 * time.Millisecond):
			}
			mu.Lock()
			for started < fake.Service("s3clone/workers").DesiredCount {
				started++
				id := fmt.Sprintf("w%d", started)
				wg.Go(func() {
					r := run(t, env, "worker", "--id", id, "--queue-url", work, "--ledger", led,
						"--s3-endpoint", slow.URL, "--concurrency", "2", "--idle-exit", "3s")
					if r.code != 0 {
						mu.Lock()
						failed = append(failed, fmt.Sprintf("%s: exit %d\n%s", id, r.code, tail(r.stderr)))
						mu.Unlock()
					}
				})
			}
			mu.Unlock()
		}
	}()

	select {
	case err := <-watchDone:
		if err != nil {
			t.Fatalf("status --watch: %v\n%s", err, tail(stderr.String()))
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("status --watch did not end with the run\nstdout:\n%s\nstderr:\n%s", tail(stdout.String()), tail(stderr.String()))
	}
	close(stopPlaying)
	<-played
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("workers failed:\n%s", strings.Join(failed, "\n"))
	}

	type view struct {
		statusJSON
		Scale *struct {
			Desired int    `json:"desired"`
			Changed bool   `json:"changed"`
			Error   string `json:"error"`
		} `json:"scale"`
	}
	var views []view
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	for sc.Scan() {
		var v view
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("--watch --json line %q: %v", sc.Text(), err)
		}
		views = append(views, v)
	}
	if len(views) < 3 {
		t.Fatalf("%d refreshes, want several:\n%s", len(views), stdout.String())
	}
	last := views[len(views)-1]
	if !last.Complete || last.Copied != 400 || last.Failed != 0 || last.Scale == nil || last.Scale.Desired != 0 {
		t.Fatalf("last refresh: %+v scale %+v", last.statusJSON, last.Scale)
	}
	for i, v := range views[:len(views)-1] {
		if v.Complete {
			t.Errorf("refresh %d of %d already complete: the watch should have ended there", i+1, len(views))
		}
		if v.Scale == nil || v.Scale.Error != "" {
			t.Fatalf("refresh %d: scale %+v", i+1, v.Scale)
		}
	}
	updates := fake.Updates()
	if len(updates) < 3 || updates[0] != 1 || updates[len(updates)-1] != 0 {
		t.Fatalf("desired counts set: %v; want 1 first (no rate yet), more once measured, 0 at the end", updates)
	}
	peak := 0
	for _, u := range updates {
		peak = max(peak, u)
		if u > 5 {
			t.Errorf("desired count %d is above --max-workers 5 (%v)", u, updates)
		}
	}
	if tg := fake.Target("s3clone/workers"); tg.ScaleInSuspended || tg.Registrations != 2 {
		t.Errorf("after status: scalable target %+v; want scale-in resumed after one suspension (2 registrations)", tg)
	}
	if peak < 2 || started < 2 {
		t.Fatalf("the fleet never grew past one worker (desired counts %v, %d started)", updates, started)
	}
	if v, code := verify(t, env, "s3://"+srcB, "s3://"+dstB); code != 0 || v.Matching != 400 {
		t.Fatalf("verify %+v, exit %d", v, code)
	}
	t.Logf("desired counts %v over %d refreshes; %d workers started", updates, len(views), started)
}

// TestWorkerMetrics scrapes a worker's --metrics-addr after it copied a
// bucket through a proxy that throttles 5% of S3 requests, with one source
// object deleted after planning: the counts match what happened.
func TestWorkerMetrics(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	objs := acceptanceObjects()
	env.Put(t, srcB, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)
	mustRun(t, env, "planner", "plan", "--source", "s3://"+srcB, "--dest", "s3://"+dstB,
		"--queue-url", work, "--ledger", led, "--batch-keys", "20")
	deleteKeys(t, env, srcB, objs[7].Key)
	var bytes int64
	for i, o := range objs {
		if i != 7 {
			bytes += int64(len(o.Body))
		}
	}

	faults := env.Faults(t, 5, 0, 0)
	cmd, stdout, stderr := command(env, "worker", "--queue-url", work, "--ledger", led, "--idle-exit", "4s",
		"--concurrency", "16", "--metrics-addr", "127.0.0.1:0", "--log-format", "json",
		"--emf", "e2e-fleet", "--emf-interval", "1s")
	cmd.Env = env.EnvironFor(faults.URL)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var addr string
	waitFor(t, 20*time.Second, "the metrics address in the log", func() bool {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var ev struct{ Message, Addr string }
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "serving metrics at /metrics" {
				addr = ev.Addr
			}
		}
		return addr != ""
	})
	var m map[string]float64
	var slowDowns int64
	waitFor(t, 60*time.Second, "399 copies in the metrics", func() bool {
		// The worker keeps reading the fleet's rates from the ledger while
		// idle: the throttles injected are those counted while nothing
		// more was injected around the scrape.
		slowDowns = faults.SlowDowns.Load()
		m = scrape(t, "http://"+addr+"/metrics")
		return m["s3clone_worker_objects_copied_total"] == 399 && m["s3clone_worker_messages_done_total"] == 20 &&
			m["s3clone_worker_throttles_total"] == float64(slowDowns) && faults.SlowDowns.Load() == slowDowns
	})
	want := map[string]float64{
		"s3clone_worker_bytes_copied_total":                      float64(bytes),
		`s3clone_worker_failures_total{reason="vanished"}`:       1,
		"s3clone_worker_copy_duration_seconds_count":             400,
		"s3clone_worker_throttles_total":                         float64(slowDowns),
		"s3clone_worker_copies_in_flight":                        0,
		"s3clone_worker_keys_held":                               0,
		"s3clone_worker_concurrency_limit":                       m["s3clone_worker_concurrency_limit"],
		"s3clone_worker_messages_malformed_total":                0,
		`s3clone_worker_copy_duration_seconds_bucket{le="+Inf"}`: 400,
		"s3clone_worker_direct_copies_total":                     400,
	}
	for name, v := range want {
		if got, ok := m[name]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	if faults.SlowDowns.Load() == 0 || m["s3clone_worker_rate_cuts_total"] == 0 || m["s3clone_worker_writes_throttled_total"] == 0 {
		t.Errorf("%d SlowDowns injected, %v rate cuts, %v writes throttled: want some of each", faults.SlowDowns.Load(),
			m["s3clone_worker_rate_cuts_total"], m["s3clone_worker_writes_throttled_total"])
	}
	// Every copy is a paced write, and so is every retry of one.
	if w := m["s3clone_worker_writes_total"]; w < 400 || w > 400+m["s3clone_worker_writes_throttled_total"]+float64(faults.SlowDowns.Load()) {
		t.Errorf("%v paced writes for 400 copies and %v throttles", w, m["s3clone_worker_writes_throttled_total"])
	}
	// Sent again through the SDK: the vanished key's 404, and each direct
	// attempt that met a SlowDown (the SDK's own attempts meet some too).
	if fb := m["s3clone_worker_direct_fallbacks_total"]; fb < 1 || fb > float64(faults.SlowDowns.Load())+1 {
		t.Errorf("%v direct copies fell back to the SDK, want 1 to %d", fb, faults.SlowDowns.Load()+1)
	}
	if lim := m["s3clone_worker_concurrency_limit"]; lim != 16 {
		t.Errorf("concurrency limit %v, want --concurrency's 16 (throttling paces prefixes, not the slots)", lim)
	}
	if m["s3clone_worker_copy_duration_seconds_sum"] <= 0 || m["process_resident_memory_bytes"] <= 0 {
		t.Errorf("copy duration sum %v, RSS %v: want both above 0", m["s3clone_worker_copy_duration_seconds_sum"], m["process_resident_memory_bytes"])
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v\n%s", err, tail(stderr.String()))
	}

	// The EMF records on stdout add up to the same counts: their
	// increases sum to the totals, failures come by reason.
	sums := map[string]float64{}
	records := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("stdout line %q is not an EMF record: %v", line, err)
		}
		aws, _ := rec["_aws"].(map[string]any)
		if aws == nil || rec["Fleet"] != "e2e-fleet" {
			t.Fatalf("stdout line %q: want an EMF record of fleet e2e-fleet", line)
		}
		records++
		for _, d := range aws["CloudWatchMetrics"].([]any) {
			for _, m := range d.(map[string]any)["Metrics"].([]any) {
				name := m.(map[string]any)["Name"].(string)
				if reason, ok := rec["Reason"].(string); ok {
					name += "/" + reason
				}
				sums[name] += rec[m.(map[string]any)["Name"].(string)].(float64)
			}
		}
	}
	for name, want := range map[string]float64{"Copies": 399, "Bytes": float64(bytes), "Messages": 20,
		"Failures/vanished": 1} {
		if sums[name] != want {
			t.Errorf("EMF %s adds up to %v, want %v (%d records)", name, sums[name], want, records)
		}
	}
	// Throttles may still come after the scrape (ledger writes, deletes);
	// each periodic record carries Workers as its share of a minute.
	if sums["Workers"] <= 0 || sums["Throttles"] < m["s3clone_worker_throttles_total"] {
		t.Errorf("EMF: Workers %v, Throttles %v; want the worker counted, at least the %v throttles scraped (%d records)",
			sums["Workers"], sums["Throttles"], m["s3clone_worker_throttles_total"], records)
	}
}

// scrape reads a Prometheus text page, with Prometheus's own parser, into
// "name{label="value"}" -> value; a histogram gives its _count, _sum and
// _bucket{le="..."} series.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics page: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			series := func(name string, extra ...string) string {
				if all := append(slices.Clone(labels), extra...); len(all) > 0 {
					return name + "{" + strings.Join(all, ",") + "}"
				}
				return name
			}
			switch {
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				out[series(name+"_count")] = float64(h.GetSampleCount())
				out[series(name+"_sum")] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[series(name+"_bucket", fmt.Sprintf("le=%q", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)))] = float64(b.GetCumulativeCount())
				}
				out[series(name+"_bucket", `le="+Inf"`)] = float64(h.GetSampleCount())
			case m.GetCounter() != nil:
				out[series(name)] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[series(name)] = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				out[series(name)] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}
