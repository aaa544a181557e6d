package main

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/metrics"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/worker"
)

const usage = `usage: worker --queue-url URL --ledger s3://BUCKET/PREFIX/ [--concurrency N] [--idle-exit DURATION] [flags]

Drains the work queue a planner filled, copying every key server-side
(CopyObject; UploadPartCopy above --multipart-threshold), and records one
entry per finished message in the run ledger before deleting the message.
SIGTERM stops receiving, lets in-flight copies finish for --grace, and hands
the rest back.`

type options struct {
	queueURL string
	ledger   config.Ledger
	id       string
	metrics  string
	emf      string
	emfEvery time.Duration
	work     config.Work
	conn     config.Connection
}

func parse(args []string) (*options, error) {
	o := &options{}
	f := cli.NewFlags("worker", usage, os.Stderr)
	f.StringVar(&o.queueURL, "queue-url", "", "URL of the work queue (required)")
	o.ledger.Register(f, "where each finished message is recorded (required)")
	f.StringVar(&o.id, "id", "", "worker name in ledger entries (default: hostname-pid)")
	f.StringVar(&o.metrics, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. :9464 (default: no metrics server)")
	f.StringVar(&o.emf, "emf", "", "write metrics to stdout as CloudWatch Embedded Metric Format records, namespace s3clone, dimension Fleet=`FLEET`; on ECS the awslogs driver carries them to CloudWatch (default: none)")
	f.DurationVar(&o.emfEvery, "emf-interval", time.Minute, "how often --emf writes a record (each carries Workers as its share of a minute)")
	o.work.Register(f, true)
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	var p cli.Problems
	if o.queueURL == "" {
		p.Addf("--queue-url is required: the URL of the queue the planner filled")
	}
	config.CheckQueueURL(&p, "queue-url", o.queueURL)
	o.ledger.Validate(&p, true)
	if o.metrics != "" {
		if _, port, err := net.SplitHostPort(o.metrics); err != nil || port == "" {
			p.Addf("--metrics-addr %q: write it as [HOST]:PORT, e.g. :9464 or 127.0.0.1:9464", o.metrics)
		}
	}
	if o.emfEvery < time.Second || o.emfEvery > time.Minute {
		p.Addf("--emf-interval %s: use 1s to 1m (CloudWatch keeps standard metrics per minute: a longer interval leaves minutes empty)", o.emfEvery)
	}
	o.work.Validate(&p)
	o.conn.Validate(&p)
	return o, p.Err()
}

func run(ctx context.Context, args []string) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	// Every throttling answer is counted, from the first request on; the
	// paced writes' also set their prefix's rate (pace.Pacer, below).
	var heard atomic.Int64
	o.conn.AWS.OnThrottle = func() { heard.Add(1) }
	log, awsCfg, err := o.conn.Open(ctx, o.work.Connections())
	if err != nil {
		return err
	}
	sqsClient := o.conn.AWS.SQS(awsCfg)
	src := queue.NewSQS(sqsClient, o.queueURL)
	if err := config.CheckQueue(ctx, src, "queue-url"); err != nil {
		return err
	}
	regions := o.conn.AWS.Regions(awsCfg)
	cfg := o.work.WorkerConfig()
	cfg.ID = o.id
	cfg.Owners = regions.Owners()
	store := o.ledger.Open(ctx, regions)
	journal, err := store.OpenJournal(ctx, worker.DefaultID(o.id), cli.Version())
	if err != nil {
		return config.LedgerError(err, store, "the worker also writes its entries: s3:PutObject on "+config.LedgerARN(store, "runs/*/done/*"))
	}
	log.Info().Str("ledger", store.String()).Str("journal", journal.Name()).Str("version", cli.Version()).Msg("recording finished messages in the ledger")
	// The fleet shares each destination prefix's rate through the ledger.
	paced := o.work.Pacer(journal.Name(), store, &heard, log)
	if err := paced.Start(ctx); err != nil {
		return config.LedgerError(err, store, "the fleet shares its write rates under pace/: s3:ListBucket on arn:aws:s3:::"+store.Bucket()+", and s3:PutObject, s3:GetObject and s3:DeleteObject on "+config.LedgerARN(store, "pace/*")+
			" (the stack's worker role has them from this version on: update the stack)")
	}
	cfg.Pace = paced
	cfg.Limiter = worker.NewLimiter(o.work.Concurrency)
	copies := o.work.Copier(regions, paced.Heard, paced, log)
	var m *metrics.Worker
	if o.metrics != "" || o.emf != "" {
		m = metrics.NewWorker(cfg.Limiter, paced)
		cfg.Observer = m
	}
	w := worker.New(cfg, src, journal, copies, log)
	if m != nil {
		m.CountStats(&w.Stats)
		m.CountDirect(copies.Directs)
	}
	// Metrics are served (and written) until the worker has stopped, grace
	// period included, not just until the stop signal.
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMetrics()
	if o.metrics != "" {
		addr, err := metrics.Serve(metricsCtx, o.metrics, m.Registry, log)
		if err != nil {
			return cli.Usagef("--metrics-addr %s: %v", o.metrics, err)
		}
		log.Info().Str("addr", addr.String()).Msg("serving metrics at /metrics")
	}
	if o.emf != "" {
		emf := metrics.NewEMF(os.Stdout, m, o.emf, journal.Name())
		written := make(chan struct{})
		go func() {
			defer close(written)
			if err := emf.Run(metricsCtx, o.emfEvery); err != nil {
				log.Error().Err(err).Msg("EMF metrics stopped")
			}
		}()
		// The last record, with the counts since the one before, is
		// written once the worker has stopped.
		defer func() { stopMetrics(); <-written }()
		log.Info().Str("fleet", o.emf).Dur("every", o.emfEvery).Msg("writing CloudWatch EMF metrics to stdout")
	}
	// The rates are shared until the worker has stopped, grace included.
	paceCtx, stopPace := context.WithCancel(context.WithoutCancel(ctx))
	paceDone := make(chan struct{})
	go func() { defer close(paceDone); paced.Run(paceCtx) }()
	defer func() { stopPace(); <-paceDone }()
	cli.TuneGCForCopying()
	stop, err := cli.StartCPUProfile(o.work.CPUProfile)
	if err != nil {
		return err
	}
	defer stop()
	return w.Run(ctx)
}
