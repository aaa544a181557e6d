// Package drain is the worker command: it drains the work queue a planner
// filled, with the ledger, the fleet's shared rates and the metrics the
// flags ask for, and stops them in order once the worker has stopped.
package drain

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/metrics"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/worker"
)

// Usage is the worker's usage text.
const Usage = `usage: worker --queue-url URL --ledger s3://BUCKET/PREFIX/ [--concurrency N] [--idle-exit DURATION] [flags]

Drains the work queue a planner filled, copying every key server-side
(CopyObject; UploadPartCopy above --multipart-threshold), and records one
entry per finished message in the run ledger before deleting the message.
SIGTERM stops receiving, lets in-flight copies finish for --grace, and hands
the rest back.`

// Options are the worker's flags.
type Options struct {
	QueueURL string
	Ledger   config.Ledger
	ID       string
	Metrics  string        // --metrics-addr
	EMF      string        // --emf, the fleet's name
	EMFEvery time.Duration // --emf-interval
	Work     config.Work
	Conn     config.Connection
}

// Register defines the worker's flags.
func (o *Options) Register(f *cli.Flags) {
	f.StringVar(&o.QueueURL, "queue-url", "", "URL of the work queue (required)")
	o.Ledger.Register(f, "where each finished message is recorded (required)")
	f.StringVar(&o.ID, "id", "", "worker name in ledger entries (default: hostname-pid)")
	f.StringVar(&o.Metrics, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. :9464 (default: no metrics server)")
	f.StringVar(&o.EMF, "emf", "", "write metrics to stdout as CloudWatch Embedded Metric Format records, namespace s3clone, dimension Fleet=`FLEET`; on ECS the awslogs driver carries them to CloudWatch (default: none)")
	f.DurationVar(&o.EMFEvery, "emf-interval", time.Minute, "how often --emf writes a record (each carries Workers as its share of a minute)")
	o.Work.Register(f, true)
	o.Conn.Register(f)
}

// Validate names every flag that is missing or malformed.
func (o *Options) Validate() error {
	var p cli.Problems
	if o.QueueURL == "" {
		p.Addf("--queue-url is required: the URL of the queue the planner filled")
	}
	config.CheckQueueURL(&p, "queue-url", o.QueueURL)
	o.Ledger.Validate(&p, true)
	if o.Metrics != "" {
		if _, port, err := net.SplitHostPort(o.Metrics); err != nil || port == "" {
			p.Addf("--metrics-addr %q: write it as [HOST]:PORT, e.g. :9464 or 127.0.0.1:9464", o.Metrics)
		}
	}
	if o.EMFEvery < time.Second || o.EMFEvery > time.Minute {
		p.Addf("--emf-interval %s: use 1s to 1m (CloudWatch keeps standard metrics per minute: a longer interval leaves minutes empty)", o.EMFEvery)
	}
	o.Work.Validate(&p)
	o.Conn.Validate(&p)
	return p.Err()
}

// Run drains the queue until it is idle for --idle-exit or ctx ends (then
// in-flight copies get --grace). The metrics and the fleet's shared rates
// go on until the worker has stopped, grace period included.
func Run(ctx context.Context, o *Options) error {
	// Every throttling answer is counted, from the first request on; the
	// paced writes' also set their prefix's rate (pace.Pacer, below).
	var heard atomic.Int64
	o.Conn.AWS.OnThrottle = func() { heard.Add(1) }
	log, awsCfg, err := o.Conn.Open(ctx, o.Work.Connections())
	if err != nil {
		return err
	}
	src := queue.NewSQS(o.Conn.AWS.SQS(awsCfg), o.QueueURL)
	if err := config.CheckQueue(ctx, src, "queue-url"); err != nil {
		return err
	}
	regions := o.Conn.AWS.Regions(awsCfg)
	cfg := o.Work.WorkerConfig()
	cfg.ID = o.ID
	cfg.Owners = regions.Owners()
	store := o.Ledger.Open(ctx, regions)
	journal, err := store.OpenJournal(ctx, worker.DefaultID(o.ID), cli.Version())
	if err != nil {
		return config.LedgerError(err, store, "the worker also writes its entries: s3:PutObject on "+config.LedgerARN(store, "runs/*/done/*"))
	}
	log.Info().Str("ledger", store.String()).Str("journal", journal.Name()).Str("version", cli.Version()).Msg("recording finished messages in the ledger")
	// The fleet shares each destination prefix's rate through the ledger.
	paced := o.Work.Pacer(journal.Name(), store, &heard, log)
	if err := paced.Start(ctx); err != nil {
		return config.LedgerError(err, store, "the fleet shares its write rates under pace/: s3:ListBucket on arn:aws:s3:::"+store.Bucket()+", and s3:PutObject, s3:GetObject and s3:DeleteObject on "+config.LedgerARN(store, "pace/*")+
			" (the stack's worker role has them from this version on: update the stack)")
	}
	cfg.Pace = paced
	cfg.Limiter = worker.NewLimiter(o.Work.Concurrency)
	copies := o.Work.Copier(regions, paced.Heard, paced, log)
	var m *metrics.Worker
	if o.Metrics != "" || o.EMF != "" {
		m = metrics.NewWorker(cfg.Limiter, paced)
		cfg.Observer = m
	}
	w := worker.New(cfg, src, journal, copies, log)
	if m != nil {
		m.CountStats(&w.Stats)
		m.CountDirect(copies.Directs)
	}
	// What runs beside the worker ends after it, in the reverse order of
	// its start: the rates, then the last EMF record (with the counts since
	// the one before), then the metrics server.
	var beside alongside
	defer beside.stop()
	if o.Metrics != "" {
		metricsCtx := beside.context(ctx)
		addr, err := metrics.Serve(metricsCtx, o.Metrics, m.Registry, log)
		if err != nil {
			return cli.Usagef("--metrics-addr %s: %v", o.Metrics, err)
		}
		log.Info().Str("addr", addr.String()).Msg("serving metrics at /metrics")
	}
	if o.EMF != "" {
		emf := metrics.NewEMF(os.Stdout, m, o.EMF, journal.Name())
		beside.start(ctx, func(ctx context.Context) {
			if err := emf.Run(ctx, o.EMFEvery); err != nil {
				log.Error().Err(err).Msg("EMF metrics stopped")
			}
		})
		log.Info().Str("fleet", o.EMF).Dur("every", o.EMFEvery).Msg("writing CloudWatch EMF metrics to stdout")
	}
	beside.start(ctx, paced.Run)
	cli.TuneGCForCopying()
	stopProfile, err := cli.StartCPUProfile(o.Work.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	return w.Run(ctx)
}

// alongside runs what goes on beside the worker, each with a context that
// does not end with the worker's (so it goes on through the grace period)
// but when stop is called. stop ends them in the reverse order of their
// start, waiting for each to return.
type alongside struct {
	mu    sync.Mutex
	stops []func()
}

// context is a context that ends at stop (for what stops by itself when
// its context ends, as the metrics server does).
func (a *alongside) context(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	a.push(cancel)
	return ctx
}

// start runs fn in a goroutine until stop.
func (a *alongside) start(parent context.Context, fn func(context.Context)) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	a.push(func() { cancel(); <-done })
}

func (a *alongside) push(stop func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stops = append(a.stops, stop)
}

// stop ends everything started, the last first.
func (a *alongside) stop() {
	a.mu.Lock()
	stops := a.stops
	a.stops = nil
	a.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}
