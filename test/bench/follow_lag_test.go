package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/test/testbed"
)

// BenchmarkFollowLag is follow's lag under a steady write rate: a writer
// puts S3CLONE_BENCH_LAG_SECONDS (default 30) of writes at 50 and then 200
// a second through the Manners proxy (S3's events at their default
// manners: each once, at once), follow at its default --flush (200 ms),
// two workers behind 20 ms of latency. For about five writes a second
// (one in ten at 50/s, one in forty at 200/s; each a new key) the time
// from the write's answer to the destination holding that content is
// measured by reading the destination key's ETag every 20 ms straight
// from versitygw. Proxies note when each sampled key passes each step,
// which splits the lag into its parts: in front of SQS, follow's
// SendMessageBatch naming it and the worker's ReceiveMessage answer
// carrying it; in front of S3 (the workers' latency proxy), the worker's
// HEAD of the source key and its CopyObject. Results go to
// bench/results/follow-lag-*.md.
func BenchmarkFollowLag(b *testing.B) {
	env := testbed.Get(b)
	ms := setting("S3CLONE_BENCH_LATENCY_MS", 20)
	seconds := setting("S3CLONE_BENCH_LAG_SECONDS", 30)
	slow := env.WithLatency(b, ms)
	mannered := env.Slow(b, time.Duration(ms)*time.Millisecond).URL
	seen := &arrivals{at: map[string]time.Time{}}
	counting := env.CountingWhere(b, slow, seen.noteS3)
	sqsWatch := watchSQS(b, env.SQSEndpoint, seen)
	report := &rows{b: b}
	report.WriteString(codeState(env.Root))
	for b.Loop() {
		src, dst, ledBucket := env.Bucket(b), env.Bucket(b), env.Bucket(b)
		S, D, led := "s3://"+src, "s3://"+dst, "s3://"+ledBucket+"/s3clone/"
		store := ledger.New(env.S3, ledBucket, "s3clone/")
		work, _ := env.Queue(b, 5)
		changes, _ := env.Queue(b, 0)
		seen.set(src, dst, work)
		env.Seed(b, src, 1000, 0, testbed.ImageStoreKey, testbed.ImageStoreSize)
		env.Manners().Events(src, testbed.EventManners{})
		fol := startFollow(b, withSQS(env.EnvironFor(mannered), sqsWatch), "follow", "--source", S, "--dest", D, "--queue-url", work,
			"--changes-url", changes, "--ledger", led, "--config-settle", "0s")
		run := fol.runID(b)
		waitAnchored(b, store, run, fol)
		var workers []*tracked
		for i := range 2 {
			workers = append(workers, start(b, withSQS(env.EnvironFor(counting.URL), sqsWatch), "worker", "--id", fmt.Sprint("w", i),
				"--queue-url", work, "--ledger", led, "--idle-exit", "60m", "--log-level", "warn"))
		}
		report.say("| rate | writes made (achieved/s) | sampled | lag p50 | p90 | p99 | max |")
		report.say("|---|---|---|---|---|---|---|")
		var parts []string
		for _, rate := range []int{50, 200} {
			parts = append(parts, lagRun(b, env, store, run, seen, src, dst, rate, seconds, report.say)...)
			time.Sleep(5 * time.Second) // the fleet idle again
		}
		report.say("\nWhere the lag goes, medians (p90) of each step of the sampled writes:\n")
		report.say("| rate | write answered → follow receives its event | → follow sends the work | → a worker receives it | → its HEAD of the source key | → its CopyObject | → seen in the destination (20 ms reads) | follow's record: newest event's receive − event time, every 5 s |")
		report.say("|---|---|---|---|---|---|---|---|")
		for _, p := range parts {
			report.say("%s", p)
		}
		for _, p := range workers {
			p.cmd.Process.Signal(os.Interrupt)
			p.wait(b, 0, 3)
		}
		fol.stop(b)
		report.say("\nfollow: %s", field(fol.out.String(), "stopped"))
	}
	title := fmt.Sprintf("Follow's lag under a steady write rate, %d s at each rate, %d ms latency, --flush at its default", seconds, ms)
	if err := writeFollowResult(env.Root, "follow-lag", title, "make bench", report.String()); err != nil {
		b.Fatal(err)
	}
}

// arrivals notes when each sampled key first passed each step: "event"
// (follow's ReceiveMessage answer from the change queue carrying its
// event), "sent" (follow's SendMessageBatch naming it), "received" (a
// worker's ReceiveMessage answer from the work queue carrying it), "head"
// (a worker's HeadObject of the source key), "copy" (its CopyObject to
// the destination).
type arrivals struct {
	mu       sync.Mutex
	src, dst string // "/bucket/"
	work     string // the work queue's name
	at       map[string]time.Time
}

// sampledKey is how a sampled write's key looks, in a path or a message.
var sampledKey = regexp.MustCompile(`lag/\d+/sampled-\d+\.bin`)

func (a *arrivals) set(src, dst, workURL string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.src, a.dst = "/"+src+"/", "/"+dst+"/"
	a.work = workURL[strings.LastIndex(workURL, "/")+1:]
}

// receiveStep is the step a ReceiveMessage request's answer is: "received"
// from the work queue, "event" from any other (the change queue).
func (a *arrivals) receiveStep(body []byte) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if bytes.Contains(body, []byte("/"+a.work+`"`)) {
		return "received"
	}
	return "event"
}

// stepKey carries a ReceiveMessage's step from its request to its answer.
type stepKey struct{}

func (a *arrivals) mark(step, key string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.at[step+" "+key]; !ok {
		a.at[step+" "+key] = at
	}
}

func (a *arrivals) get(step, key string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[step+" "+key]
	return t, ok
}

// noteS3 is the counting proxy's match: a worker's HEAD of a sampled
// source key, or its CopyObject of one.
func (a *arrivals) noteS3(r *http.Request) bool {
	now := time.Now()
	a.mu.Lock()
	src, dst := a.src, a.dst
	a.mu.Unlock()
	key := sampledKey.FindString(r.URL.Path)
	switch {
	case key == "":
		return false
	case r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, src):
		a.mark("head", key, now)
	case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "" && strings.HasPrefix(r.URL.Path, dst):
		a.mark("copy", key, now)
	default:
		return false
	}
	return true
}

// watchSQS starts a proxy in front of SQS that notes the sampled keys in
// each SendMessageBatch (when it arrives) and in each ReceiveMessage
// answer (when it is passed back), and returns its URL.
func watchSQS(b *testing.B, target string, seen *arrivals) string {
	b.Helper()
	up, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(up)
			r.Out.Host = r.In.Host // signed
		},
		ModifyResponse: func(resp *http.Response) error {
			step, ok := resp.Request.Context().Value(stepKey{}).(string)
			if !ok {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			now := time.Now()
			for _, k := range sampledKey.FindAllString(string(body), -1) {
				seen.mark(step, k, now)
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			return nil
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		send, receive := strings.HasSuffix(target, ".SendMessageBatch") || strings.HasSuffix(target, ".SendMessage"), strings.HasSuffix(target, ".ReceiveMessage")
		if send || receive {
			now := time.Now()
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if receive {
				r = r.WithContext(context.WithValue(r.Context(), stepKey{}, seen.receiveStep(body)))
			}
			for _, k := range sampledKey.FindAllString(string(body), -1) {
				seen.mark("sent", k, now)
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

// withSQS is environ with another SQS endpoint.
func withSQS(environ []string, endpoint string) []string {
	out := slices.Clone(environ)
	for i, kv := range out {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_SQS=") {
			out[i] = "AWS_ENDPOINT_URL_SQS=" + endpoint
		}
	}
	return out
}

// lagRun writes rate keys a second for the given seconds and measures the
// lag of the sampled ones: it says the lag's row and returns the row of
// its parts.
func lagRun(b *testing.B, env *testbed.Env, store *ledger.Store, run string, seen *arrivals, src, dst string, rate, seconds int, say func(string, ...any)) []string {
	b.Helper()
	ctx := context.Background()
	client := env.Manners().Client(src)
	every := max(1, rate/5)
	type sample struct {
		key      string
		answered time.Time
		held     time.Time // the destination seen holding it
		timedOut bool
	}
	var (
		mu      sync.Mutex
		samples []*sample
		pollers sync.WaitGroup
		writes  sync.WaitGroup
		made    atomic.Int64
		refused atomic.Int64
		skipped int
	)
	var followLags []time.Duration
	stopRecords, recordsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(recordsDone)
		var last time.Time
		for {
			select {
			case <-stopRecords:
				return
			case <-time.After(time.Second):
			}
			if r, err := store.FollowRecord(ctx, run); err == nil && r.Alive.After(last) {
				last = r.Alive
				followLags = append(followLags, r.Lag)
			}
		}
	}()
	sem := make(chan struct{}, 64)
	began := time.Now()
	for i := 0; time.Since(began) < time.Duration(seconds)*time.Second; i++ {
		time.Sleep(time.Until(began.Add(time.Duration(i) * time.Second / time.Duration(rate)))) // due at i/rate: a late write catches up
		sampled := i%every == 0
		key := fmt.Sprintf("lag/%d/%06d.bin", rate, i)
		switch {
		case sampled:
			key = fmt.Sprintf("lag/%d/sampled-%06d.bin", rate, i)
		case i%3 == 1 && i > 200:
			key = fmt.Sprintf("lag/%d/%06d.bin", rate, i-200) // an overwrite of a key the fleet copied
		}
		select {
		case sem <- struct{}{}:
		default:
			skipped++ // 64 writes unanswered: this one is skipped
			continue
		}
		writes.Go(func() {
			defer func() { <-sem }()
			body := fmt.Appendf(nil, "write %d at %d a second, %s", i, rate, time.Now().Format(time.RFC3339Nano))
			out, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String(key), Body: bytes.NewReader(body)})
			if err != nil {
				refused.Add(1)
				return
			}
			made.Add(1)
			if !sampled {
				return
			}
			s := &sample{key: key, answered: time.Now()}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			etag := aws.ToString(out.ETag)
			pollers.Go(func() {
				for time.Since(s.answered) < time.Minute {
					h, err := env.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(dst), Key: aws.String(key)})
					if err == nil && aws.ToString(h.ETag) == etag {
						s.held = time.Now()
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				s.timedOut = true
			})
		})
	}
	took := time.Since(began)
	writes.Wait()
	pollers.Wait()
	close(stopRecords)
	<-recordsDone

	var lags []time.Duration
	steps := []string{"event", "sent", "received", "head", "copy"}
	parts := make([][]time.Duration, len(steps)+1)
	lost := 0
	for _, s := range samples {
		if s.timedOut {
			lost++
			continue
		}
		lags = append(lags, s.held.Sub(s.answered))
		prev, whole := s.answered, true
		for i, step := range steps {
			t, ok := seen.get(step, s.key)
			if !ok {
				whole = false
				break
			}
			parts[i] = append(parts[i], t.Sub(prev))
			prev = t
		}
		if whole {
			parts[len(steps)] = append(parts[len(steps)], s.held.Sub(prev))
		}
	}
	if len(lags) == 0 {
		b.Fatalf("%d a second: no sampled write reached the destination", rate)
	}
	say("| %d/s | %d (%.0f/s), %d skipped, %d refused | %d | %s | %s | %s | %s |", rate, made.Load(), float64(made.Load())/took.Seconds(), skipped, refused.Load(),
		len(lags), ms3(pct(lags, 50)), ms3(pct(lags, 90)), ms3(pct(lags, 99)), ms3(pct(lags, 100)))
	b.ReportMetric(pct(lags, 50).Seconds(), fmt.Sprintf("lag-p50-s-%d/s", rate))
	b.ReportMetric(pct(lags, 99).Seconds(), fmt.Sprintf("lag-p99-s-%d/s", rate))
	if lost > 0 || refused.Load() > 0 {
		b.Errorf("%d a second: %d sampled writes never reached the destination within a minute; %d writes refused", rate, lost, refused.Load())
	}
	row := fmt.Sprintf("| %d/s |", rate)
	for _, p := range parts {
		row += fmt.Sprintf(" %s (%s) |", ms3(pct(p, 50)), ms3(pct(p, 90)))
	}
	return []string{row + " " + durations(followLags) + " |"}
}

// pct is the p-th percentile of ds (nearest rank); 0 for none.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	i := (p*len(s)+99)/100 - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms3(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

func durations(ds []time.Duration) string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%.0f", float64(d.Microseconds())/1000))
	}
	return strings.Join(out, ", ") + " ms"
}
