// Package metrics exposes a worker's counters in the Prometheus text format
// on an optional HTTP address (worker --metrics-addr).
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/pace"
	"github.com/s3clone/s3clone/internal/worker"
)

// Worker is the metrics of one worker process. It is the worker's
// Observer; the counts the worker keeps anyway (Stats, the limiter) are read
// when scraped rather than counted twice.
type Worker struct {
	Registry *prometheus.Registry
	latency  prometheus.Histogram
	failures *prometheus.CounterVec
}

var _ worker.Observer = (*Worker)(nil)

// NewWorker registers a worker's metrics; the limiter and the pacer are
// read at each scrape. Pass the result to the worker as its Observer, then hand it the
// worker's Stats with CountStats.
func NewWorker(limiter *worker.Limiter, pacer *pace.Pacer) *Worker {
	m := &Worker{
		Registry: prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "s3clone_worker_copy_duration_seconds",
			Help: "Time each copy took, successful or not (one CopyObject, or a whole multipart copy).",
			// Same-region copies of small objects take tens of milliseconds;
			// large ones and throttled retries take seconds to minutes.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "s3clone_worker_failures_total",
			Help: "Keys not done, by reason: vanished (skipped), changed, archived, needs-customer-key and rejected (failed for good), access-denied and no-such-bucket (blocked: retried, then dead-lettered), credentials-expired and transient (retried).",
		}, []string{"reason"}),
	}
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	m.Registry.MustRegister(
		m.latency, m.failures,
		counter("s3clone_worker_throttles_total", "Throttling answers from S3 (503 SlowDown and the like) to any request, including those retried successfully.", func() int64 { return pacer.Totals().Heard }),
		counter("s3clone_worker_writes_total", "Write requests to the destination (copies, parts, deletes), each attempt paced by its prefix's rate.", func() int64 { return pacer.Totals().Sent }),
		counter("s3clone_worker_writes_throttled_total", "Write requests S3 answered with a throttle (their share of writes_total is the throttled share).", func() int64 { return pacer.Totals().Throttled }),
		counter("s3clone_worker_rate_cuts_total", "Times a throttle cut a prefix's rate.", func() int64 { return pacer.Totals().Cuts }),
		gauge("s3clone_worker_copies_in_flight", "Copies (and delete batches) under way now.", limiter.InUse),
		gauge("s3clone_worker_concurrency_limit", "Copies allowed in flight at once (--concurrency).", limiter.Limit),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3clone_worker_hot_prefix_share", Help: "This worker's share of the write rate of the prefix it writes to most, in requests a second (summed over the fleet: that prefix's rate)."},
			func() float64 { return pacer.Totals().Share }),
		gauge("s3clone_worker_keys_waiting", "Keys being retried after a throttle.", func() int { return pacer.Totals().Waiting }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3clone_worker_longest_wait_seconds", Help: "How long the key retried longest after a throttle has waited so far (0: none)."},
			func() float64 {
				if t := pacer.Totals(); t.Waiting > 0 {
					return time.Since(t.Since).Seconds()
				}
				return 0
			}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// CountStats registers the counts a worker keeps anyway, read at each scrape.
func (m *Worker) CountStats(stats *worker.Stats) {
	m.Registry.MustRegister(
		counter("s3clone_worker_objects_copied_total", "Objects copied.", stats.Copied.Load),
		counter("s3clone_worker_bytes_copied_total", "Bytes of the objects copied (copied server-side: none pass through the worker).", stats.Bytes.Load),
		counter("s3clone_worker_objects_deleted_total", "Destination objects deleted (plan --diff --delete).", stats.Deleted.Load),
		counter("s3clone_worker_messages_done_total", "Work messages finished, recorded in the ledger and deleted.", stats.Messages.Load),
		counter("s3clone_worker_messages_retried_total", "Work messages handed back to the queue to be tried again.", stats.Retried.Load),
		counter("s3clone_worker_messages_malformed_total", "Messages on the work queue that were not s3clone batches.", stats.Malformed.Load),
		counter("s3clone_worker_ledger_errors_total", "Finished messages whose ledger entry could not be written (they come back, are redone, and are counted once).", stats.LedgerErrs.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3clone_worker_keys_held", Help: "Keys received and not yet finished, waiting or in flight."},
			func() float64 { return float64(stats.InFlight.Load()) }),
	)
}

// CountDirect registers the direct copy path's counts, summed over the
// direct paths (one per region) directs returns at each scrape.
func (m *Worker) CountDirect(directs func() []*copier.Direct) {
	sum := func(count func(*copier.Direct) int64) func() int64 {
		return func() int64 {
			var n int64
			for _, d := range directs() {
				n += count(d)
			}
			return n
		}
	}
	m.Registry.MustRegister(
		counter("s3clone_worker_direct_copies_total", "CopyObject requests sent directly, without the SDK's pipeline.", sum((*copier.Direct).Sent)),
		counter("s3clone_worker_direct_fallbacks_total", "Direct copies that were not a clean success and were sent again through the SDK (refusals, throttles, faults).", sum((*copier.Direct).FellBack)),
	)
}

// counter is a counter read from f at each scrape.
func counter(name, help string, f func() int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
}

// CopyTook records one copy's duration.
func (m *Worker) CopyTook(d time.Duration) { m.latency.Observe(d.Seconds()) }

// KeyFailed counts a key not done.
func (m *Worker) KeyFailed(reason copier.Reason) { m.failures.WithLabelValues(string(reason)).Inc() }

// Serve listens on addr and serves /metrics until ctx ends. It returns
// once listening, with the address (useful with port 0), or the listen
// error.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, log zerolog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("metrics server stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	return ln.Addr(), nil
}
