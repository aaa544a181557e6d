package main

import (
	"context"
	"net"
	"os"

	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/metrics"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/worker"
)

const usage = `usage: worker --queue-url URL [--report-queue-url URL] [--concurrency N] [--idle-exit DURATION] [flags]

Drains the work queue a planner filled, copying every key server-side
(CopyObject; UploadPartCopy above --multipart-threshold), and sends one
report per finished message to the report queue. SIGTERM stops receiving,
lets in-flight copies finish for --grace, and hands the rest back.`

type options struct {
	queueURL  string
	reportURL string
	id        string
	metrics   string
	work      config.Work
	conn      config.Connection
}

func parse(args []string) (*options, error) {
	o := &options{}
	f := config.NewFlags("worker", usage, os.Stderr)
	f.StringVar(&o.queueURL, "queue-url", "", "URL of the work queue (required)")
	f.StringVar(&o.reportURL, "report-queue-url", "", "URL of the report queue (default: no reports, so planner status has nothing to count)")
	f.StringVar(&o.id, "id", "", "worker name in reports (default: hostname-pid)")
	f.StringVar(&o.metrics, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. :9464 (default: no metrics server)")
	o.work.Register(f, true)
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	var p config.Problems
	if o.queueURL == "" {
		p.Addf("--queue-url is required: the URL of the queue the planner filled")
	}
	config.CheckQueueURL(&p, "queue-url", o.queueURL)
	config.CheckQueueURL(&p, "report-queue-url", o.reportURL)
	if o.metrics != "" {
		if _, port, err := net.SplitHostPort(o.metrics); err != nil || port == "" {
			p.Addf("--metrics-addr %q: write it as [HOST]:PORT, e.g. :9464 or 127.0.0.1:9464", o.metrics)
		}
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
	limiter := worker.NewLimiter(o.work.Concurrency)
	o.conn.AWS.OnThrottle = limiter.Throttled
	log, awsCfg, err := o.conn.Open(ctx, o.work.Connections())
	if err != nil {
		return err
	}
	sqsClient := o.conn.AWS.SQS(awsCfg)
	src := queue.NewSQS(sqsClient, o.queueURL)
	if err := config.CheckQueue(ctx, src, "queue-url"); err != nil {
		return err
	}
	var rep worker.Reporter
	if o.reportURL != "" {
		reports := queue.NewSQS(sqsClient, o.reportURL)
		if err := config.CheckQueue(ctx, reports, "report-queue-url"); err != nil {
			return err
		}
		rep = worker.QueueReporter{Queue: reports}
	} else {
		log.Warn().Msg("no --report-queue-url: finished messages are not reported, so planner status cannot count them")
	}
	cfg := o.work.WorkerConfig()
	cfg.ID = o.id
	cfg.Limiter = limiter
	api := o.work.CopyAPI(o.conn.AWS.S3(awsCfg), limiter.Throttled, log)
	var m *metrics.Worker
	if o.metrics != "" {
		m = metrics.NewWorker(limiter)
		cfg.Observer = m
	}
	w := worker.New(cfg, src, rep, copier.New(api, o.work.CopierOptions()), log)
	if m != nil {
		m.CountStats(&w.Stats)
		if direct, ok := api.(*copier.Direct); ok {
			m.CountDirect(direct)
		}
		// Served until the worker has stopped, grace period included, not
		// just until the stop signal.
		metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
		defer stopMetrics()
		addr, err := metrics.Serve(metricsCtx, o.metrics, m.Registry, log)
		if err != nil {
			return config.Usagef("--metrics-addr %s: %v", o.metrics, err)
		}
		log.Info().Str("addr", addr.String()).Msg("serving metrics at /metrics")
	}
	config.TuneGCForCopying()
	stop, err := config.StartCPUProfile(o.work.CPUProfile)
	if err != nil {
		return err
	}
	defer stop()
	return w.Run(ctx)
}
