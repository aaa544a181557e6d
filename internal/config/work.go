package config

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ownership"
	"github.com/s3clone/s3clone/internal/pace"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/worker"
)

// Copy is how a run writes its copies: flags of every command that plans
// (the run records them and every message carries them) and of the worker
// (its own, for messages of planners older than that).
type Copy struct {
	StorageClass string
	SSEKMSKeyID  string
	ACL          string
}

// Register defines the copy-option flags.
func (c *Copy) Register(f *cli.Flags) {
	f.StringVar(&c.StorageClass, "storage-class", "", "storage class of every copy, e.g. STANDARD_IA (default: each source object's own class)")
	f.StringVar(&c.SSEKMSKeyID, "sse-kms-key-id", "", "encrypt copies with this KMS key id or ARN (default: the destination bucket's default encryption)")
	f.StringVar(&c.ACL, "acl", "", "canned ACL of every copy, e.g. bucket-owner-full-control (default: none)")
}

// Validate adds a problem for each option S3 cannot take.
func (c *Copy) Validate(p *cli.Problems) {
	if c.StorageClass != "" && !slices.Contains(types.StorageClass("").Values(), types.StorageClass(c.StorageClass)) {
		p.Addf("--storage-class %q: use one of %s", c.StorageClass, joinValues(types.StorageClass("").Values()))
	}
	if c.ACL != "" && !slices.Contains(types.ObjectCannedACL("").Values(), types.ObjectCannedACL(c.ACL)) {
		p.Addf("--acl %q: use one of %s", c.ACL, joinValues(types.ObjectCannedACL("").Values()))
	}
}

// Options are the flags as a run's copy options.
func (c *Copy) Options() plan.Copy {
	return plan.Copy{StorageClass: c.StorageClass, SSEKMSKeyID: c.SSEKMSKeyID, ACL: c.ACL}
}

// Work is how copies are done: the flags of the worker, which the planner's
// one-process `run` shares.
type Work struct {
	Copy
	Concurrency        int
	Visibility         time.Duration
	Grace              time.Duration
	IdleExit           time.Duration
	MultipartThreshold cli.Size
	PartSize           cli.Size
	PartConcurrency    int
	RetryBackoff       time.Duration
	CPUProfile         string
	SDKCopies          bool
	// MaxRate and MaxFleetRate cap the fleet's writes a second, per
	// prefix and in all (0: as fast as S3 takes them).
	MaxRate      float64
	MaxFleetRate float64
}

// Register defines the copy flags. idleExit is false for commands that stop
// on their own.
func (w *Work) Register(f *cli.Flags, queueFlags bool) {
	w.Copy.Register(f)
	f.IntVar(&w.Concurrency, "concurrency", 256, "copies in flight at once (server-side copies wait on latency, not bandwidth)")
	f.SizeVar(&w.MultipartThreshold, "multipart-threshold", copier.MaxCopyObjectSize, "objects larger than this `size` are copied in parts with UploadPartCopy (at most 5GiB, CopyObject's limit)")
	f.SizeVar(&w.PartSize, "part-size", copier.DefaultPartSize, "`size` of each part of a multipart copy, 5MiB to 5GiB (raised as needed to stay within 10,000 parts)")
	f.IntVar(&w.PartConcurrency, "part-concurrency", 8, "parts of one object copied at once")
	f.StringVar(&w.CPUProfile, "cpu-profile", "", "write a pprof CPU profile of the run to this file")
	f.Float64Var(&w.MaxRate, "max-rate", 0, "at most this many write requests a `second` to any one prefix of the destination, by the whole fleet (e.g. to leave room for production writing to the same bucket; 0: as many as S3 takes, learned from its throttling)")
	f.Float64Var(&w.MaxFleetRate, "max-fleet-rate", 0, "at most this many write requests a `second` to the destination, by the whole fleet over all prefixes (0: no cap)")
	f.BoolVar(&w.SDKCopies, "sdk-copies", false, "send every CopyObject through the AWS SDK's full request pipeline rather than the direct path (which hands anything but a clean success to the SDK anyway); costs about twice the CPU per copy")
	if queueFlags {
		f.DurationVar(&w.Visibility, "visibility-timeout", 60*time.Second, "how long a received message stays hidden; extended every half of it while worked on")
		f.DurationVar(&w.Grace, "grace", worker.DefaultGrace, "on SIGTERM, how long in-flight copies may finish before their messages are released")
		f.DurationVar(&w.IdleExit, "idle-exit", 0, "exit 0 after this long with nothing received, e.g. 5s (0: run until stopped)")
		f.DurationVar(&w.RetryBackoff, "retry-backoff", 10*time.Second, "how long a message that failed for now (throttled, access denied) waits before it is tried again, times its receive count (at most 5m)")
	}
}

// Validate adds a problem for each setting S3 or the worker cannot take.
func (w *Work) Validate(p *cli.Problems) {
	if w.Concurrency < 1 || w.Concurrency > 10000 {
		p.Addf("--concurrency %d: use 1 to 10000", w.Concurrency)
	}
	if w.PartConcurrency < 1 || w.PartConcurrency > 1000 {
		p.Addf("--part-concurrency %d: use 1 to 1000", w.PartConcurrency)
	}
	if w.MultipartThreshold < copier.MinPartSize || w.MultipartThreshold > copier.MaxCopyObjectSize {
		p.Addf("--multipart-threshold %s: use 5MiB to 5GiB (S3's smallest part, CopyObject's largest object)", w.MultipartThreshold.String())
	}
	if w.PartSize < copier.MinPartSize || w.PartSize > copier.MaxPartSize {
		p.Addf("--part-size %s: S3 takes parts of 5MiB to 5GiB", w.PartSize.String())
	}
	w.Copy.Validate(p)
	if w.MaxRate < 0 || w.MaxFleetRate < 0 {
		p.Addf("--max-rate %g, --max-fleet-rate %g: must not be negative (0: no cap)", w.MaxRate, w.MaxFleetRate)
	}
	if w.Visibility != 0 && (w.Visibility < 2*time.Second || w.Visibility > 12*time.Hour) {
		p.Addf("--visibility-timeout %s: use 2s to 12h (SQS's range)", w.Visibility)
	}
	if w.Visibility != 0 && w.Visibility%time.Second != 0 {
		p.Addf("--visibility-timeout %s: SQS counts whole seconds", w.Visibility)
	}
	if w.Grace < 0 {
		p.Addf("--grace %s: must not be negative", w.Grace)
	}
	if w.RetryBackoff < 0 {
		p.Addf("--retry-backoff %s: must not be negative", w.RetryBackoff)
	}
	if w.IdleExit < 0 {
		p.Addf("--idle-exit %s: must not be negative (0 runs until stopped)", w.IdleExit)
	}
}

func joinValues[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// CopierOptions are the copier's options from the flags.
func (w *Work) CopierOptions() copier.Options {
	return copier.Options{
		MultipartThreshold: int64(w.MultipartThreshold),
		PartSize:           int64(w.PartSize),
		PartConcurrency:    w.PartConcurrency,
	}
}

// CopyAPI is the S3 client copies go through: client's CopyObject sent
// directly (copier.Direct) unless --sdk-copies. onThrottle hears of the
// throttles the direct path meets; log, of the direct path giving up.
func (w *Work) CopyAPI(client *s3.Client, owners *ownership.Book, onThrottle func(), log zerolog.Logger) copier.API {
	if w.SDKCopies {
		return client
	}
	d := copier.NewDirect(client, onThrottle)
	d.Owners = owners
	d.OnGiveUp = func(err error) {
		log.Warn().Err(err).Msg("direct CopyObject requests keep failing where the SDK's succeed; every copy now goes through the SDK (--sdk-copies does this from the start)")
	}
	return d
}

// Copier is how workers copy: in each bucket's region (found once, or as a
// message names it), through CopyAPI's path, every write paced by pacer
// (nil: not paced).
func (w *Work) Copier(regions *Regions, onThrottle func(), pacer *pace.Pacer, log zerolog.Logger) *copier.Regional {
	c := copier.NewRegional(regions, w.CopierOptions())
	c.API = func(_ string, client *s3.Client) copier.API {
		if pacer == nil {
			return w.CopyAPI(client, regions.Owners(), onThrottle, log)
		}
		api := w.CopyAPI(pacer.Client(client), regions.Owners(), onThrottle, log)
		if d, ok := api.(*copier.Direct); ok {
			d.Pace = pacer
		}
		return api
	}
	return c
}

// Pacer is the pacer of a worker's writes (pace.Pacer), sharing its rates
// on board (nil: this process alone); heard, if set, counts every
// throttling answer the process got (pace.Config.Heard).
func (w *Work) Pacer(id string, board pace.Board, heard *atomic.Int64, log zerolog.Logger) *pace.Pacer {
	return pace.New(pace.Config{Worker: id, MaxRate: w.MaxRate, MaxFleetRate: w.MaxFleetRate, Board: board, Heard: heard, Log: log})
}

// WorkerConfig is the worker's configuration from the flags.
func (w *Work) WorkerConfig() worker.Config {
	return worker.Config{
		Write:        w.Copy.Options(),
		Concurrency:  w.Concurrency,
		Visibility:   w.Visibility,
		Grace:        w.Grace,
		IdleExit:     w.IdleExit,
		RetryBackoff: w.RetryBackoff,
	}
}

// Connections is the HTTP pool size the copies need.
func (w *Work) Connections() int {
	return w.Concurrency + w.PartConcurrency
}
