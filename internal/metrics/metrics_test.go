package metrics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/pace"
	"github.com/s3clone/s3clone/internal/worker"
)

// busyWorker is a worker's metrics after some work: 7 copies of 700 bytes,
// a delete, two messages, one retried, a throttle, two failures (one
// vanished, one changed), three copies in flight of a limit of 8, and one
// paced write S3 throttled (its key still waiting).
func busyWorker(t *testing.T) (*Worker, *worker.Stats, *worker.Limiter) {
	t.Helper()
	limiter := worker.NewLimiter(8)
	pacer := pace.New(pace.Config{})
	m := NewWorker(limiter, pacer)
	stats := &worker.Stats{}
	m.CountStats(stats)
	stats.Copied.Add(7)
	stats.Bytes.Add(700)
	stats.Deleted.Add(1)
	stats.Messages.Add(2)
	stats.Retried.Add(1)
	stats.InFlight.Add(3)
	for range 3 {
		if err := limiter.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := pacer.Wait(context.Background(), "dst", "images/a.jpg"); err != nil {
		t.Fatal(err)
	}
	pacer.Done("dst", "images/a.jpg", true)
	pacer.Heard()
	m.KeyFailed(copier.ReasonVanished)
	m.KeyFailed(copier.ReasonChanged)
	m.CopyTook(30 * time.Millisecond)
	m.CopyTook(2 * time.Second)
	return m, stats, limiter
}

func TestWorkerMetricsReadTheWorkersCounts(t *testing.T) {
	m, _, _ := busyWorker(t)
	want := `
# HELP s3clone_worker_objects_copied_total Objects copied.
# TYPE s3clone_worker_objects_copied_total counter
s3clone_worker_objects_copied_total 7
# HELP s3clone_worker_bytes_copied_total Bytes of the objects copied (copied server-side: none pass through the worker).
# TYPE s3clone_worker_bytes_copied_total counter
s3clone_worker_bytes_copied_total 700
# HELP s3clone_worker_copies_in_flight Copies (and delete batches) under way now.
# TYPE s3clone_worker_copies_in_flight gauge
s3clone_worker_copies_in_flight 3
# HELP s3clone_worker_throttles_total Throttling answers from S3 (503 SlowDown and the like) to any request, including those retried successfully.
# TYPE s3clone_worker_throttles_total counter
s3clone_worker_throttles_total 1
`
	names := []string{"s3clone_worker_objects_copied_total", "s3clone_worker_bytes_copied_total",
		"s3clone_worker_copies_in_flight", "s3clone_worker_throttles_total"}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.failures.WithLabelValues(string(copier.ReasonVanished))); got != 1 {
		t.Errorf("vanished failures %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("%d latency series, want 1", n)
	}
	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// record is one EMF line as CloudWatch reads it.
type record struct {
	AWS struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
	Values map[string]any `json:"-"`
}

func readRecords(t *testing.T, out []byte) []record {
	t.Helper()
	var recs []record
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("EMF line %q: %v", sc.Text(), err)
		}
		if err := json.Unmarshal(sc.Bytes(), &r.Values); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// check holds a record to the EMF specification's rules CloudWatch applies
// before it extracts anything: one namespace, every dimension and metric a
// root member, metric values numbers, and at most 30 dimensions and 100
// metrics per directive.
func check(t *testing.T, r record) {
	t.Helper()
	if r.AWS.Timestamp <= 0 || len(r.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("record %v: want a timestamp and one directive", r.Values)
	}
	d := r.AWS.CloudWatchMetrics[0]
	if d.Namespace != Namespace || len(d.Metrics) == 0 || len(d.Metrics) > 100 {
		t.Errorf("directive %+v", d)
	}
	for _, set := range d.Dimensions {
		if len(set) > 30 {
			t.Errorf("%d dimensions", len(set))
		}
		for _, dim := range set {
			if _, ok := r.Values[dim].(string); !ok {
				t.Errorf("dimension %s is %v, want a string member", dim, r.Values[dim])
			}
		}
	}
	for _, m := range d.Metrics {
		if _, ok := r.Values[m.Name].(float64); !ok {
			t.Errorf("metric %s is %v, want a number member", m.Name, r.Values[m.Name])
		}
	}
}

func TestEMFSendsIncreasesAndGauges(t *testing.T) {
	m, stats, _ := busyWorker(t)
	var out bytes.Buffer
	e := NewEMF(&out, m, "prod-clone", "w1")
	e.now = func() time.Time { return time.UnixMilli(1_800_000_000_000) }
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	stats.Copied.Add(5)
	m.KeyFailed(copier.ReasonVanished)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run writes its last record at once
	if err := e.Run(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}

	recs := readRecords(t, out.Bytes())
	for _, r := range recs {
		check(t, r)
		if r.Values[DimFleet] != "prod-clone" || r.Values["WorkerId"] != "w1" || r.AWS.Timestamp != 1_800_000_000_000 {
			t.Errorf("record %v: want Fleet prod-clone, WorkerId w1 and the clock's time", r.Values)
		}
	}
	// First flush: the main record and one per reason; the last: the main
	// record and vanished's one new failure.
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5:\n%s", len(recs), out.String())
	}
	first, last := recs[0].Values, recs[3].Values
	for name, want := range map[string]float64{"Workers": 1, "Copies": 7, "Bytes": 700, "Deletes": 1, "Messages": 2,
		"MessagesRetried": 1, "Throttles": 1, "CopiesInFlight": 3, "ConcurrencyLimit": 8, "KeysHeld": 3,
		"Writes": 1, "WritesThrottled": 1, "RateCuts": 1, "KeysWaiting": 1} {
		if first[name] != want {
			t.Errorf("first record %s = %v, want %v", name, first[name], want)
		}
	}
	// Counters are sent as increases; gauges as they are; the last record
	// leaves Workers and the gauges out: the record before gave them for
	// its minute.
	if last["Copies"] != 5.0 || last["Bytes"] != 0.0 || last["CopiesInFlight"] != nil || last["Workers"] != nil {
		t.Errorf("last record %v: want 5 copies, 0 bytes, and neither gauges nor Workers", last)
	}
	reasons := map[string]float64{}
	for _, r := range []record{recs[1], recs[2], recs[4]} {
		if dims := r.AWS.CloudWatchMetrics[0].Dimensions; len(dims) != 1 || strings.Join(dims[0], ",") != DimFleet+","+DimReason {
			t.Errorf("failure record dimensions %v", dims)
		}
		reasons[r.Values[DimReason].(string)] += r.Values["Failures"].(float64)
	}
	if reasons["vanished"] != 2 || reasons["changed"] != 1 || len(reasons) != 2 {
		t.Errorf("failures by reason %v, want vanished 2, changed 1", reasons)
	}
}

// EmittedMetrics is what the dashboard test holds the template to; it must
// be what Flush writes.
func TestEmittedMetricsAreWritten(t *testing.T) {
	m, _, _ := busyWorker(t)
	var out bytes.Buffer
	if err := NewEMF(&out, m, "f", "").Flush(); err != nil {
		t.Fatal(err)
	}
	written := map[string]string{}
	for _, r := range readRecords(t, out.Bytes()) {
		d := r.AWS.CloudWatchMetrics[0]
		for _, metric := range d.Metrics {
			written[metric.Name] = strings.Join(d.Dimensions[0], ",")
		}
	}
	emitted := EmittedMetrics()
	for name, dims := range written {
		if got := strings.Join(emitted[name], ","); got != dims {
			t.Errorf("%s written with dimensions %s, EmittedMetrics says %q", name, dims, got)
		}
	}
	if len(emitted) != len(written) {
		t.Errorf("EmittedMetrics lists %d metrics, Flush wrote %d: %v", len(emitted), len(written), written)
	}
}

func TestServeStopsWithItsContext(t *testing.T) {
	m, _, _ := busyWorker(t)
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := Serve(ctx, "127.0.0.1:0", m.Registry, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/metrics"
	want := "# HELP s3clone_worker_objects_deleted_total Destination objects deleted (plan --diff --delete).\n" +
		"# TYPE s3clone_worker_objects_deleted_total counter\ns3clone_worker_objects_deleted_total 1\n"
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want), "s3clone_worker_objects_deleted_total"); err != nil {
		t.Error(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("still serving 5s after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Serve(context.Background(), addr.String()+"x", m.Registry, zerolog.Nop()); err == nil {
		t.Error("a bad address was accepted")
	}
}

// TestEMFWorkersSumToTheFleetPerMinute: at any interval, a minute's records
// of one worker add up to one worker.
func TestEMFWorkersSumToTheFleetPerMinute(t *testing.T) {
	m, _, _ := busyWorker(t)
	full := make(chan struct{})
	out := &lines{enough: 4, full: full}
	e := NewEMF(out, m, "f", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, 20*time.Millisecond) }()
	<-full // the main record and the failure records of a tick or two
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var sum float64
	periodic := 0
	for _, r := range readRecords(t, out.bytes()) {
		if w, ok := r.Values["Workers"].(float64); ok {
			sum += w
			periodic++
		}
	}
	if want := float64(periodic) * (20 * time.Millisecond).Minutes(); periodic < 1 || math.Abs(sum-want) > 1e-9 {
		t.Errorf("%d periodic records carry Workers %v in all; want %v each", periodic, sum, (20 * time.Millisecond).Minutes())
	}
}

// lines is a writer that closes full once it has taken enough lines.
type lines struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	n      int
	enough int
	full   chan struct{}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n += bytes.Count(p, []byte("\n")); l.n >= l.enough && l.full != nil {
		close(l.full)
		l.full = nil
	}
	return l.buf.Write(p)
}

func (l *lines) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}
