package config

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ownership"
	"github.com/s3clone/s3clone/internal/queue"
)

// AWS is how to reach S3 and SQS. Credentials and, unless set here, the
// region come from the SDK's default chain (environment, profile, ECS task
// role, instance role).
type AWS struct {
	Profile     string
	Region      string
	S3Endpoint  string
	SQSEndpoint string
	PathStyle   bool
	// Connections is the size of the HTTP connection pool per endpoint; it
	// should cover every request in flight. Set by the binaries from their
	// concurrency.
	Connections int
	// OnThrottle, when set, is called for every throttling answer (503
	// SlowDown and the like), including those the SDK then retries.
	OnThrottle func()
	// Owners is who must own each bucket and who pays for it: every S3
	// request says so (ExpectedBucketOwner, RequestPayer). Regions makes
	// it when unset.
	Owners *ownership.Book
}

// Register defines the AWS flags.
func (a *AWS) Register(f *cli.Flags) {
	f.StringVar(&a.Profile, "profile", "", "named profile from the AWS config and credentials files, as the aws CLI's --profile (default: $AWS_PROFILE, else default)")
	f.StringVar(&a.Region, "region", "", "AWS region (default: the SDK's chain, $AWS_REGION or the profile's; us-east-1 with a custom endpoint)")
	f.StringVar(&a.S3Endpoint, "s3-endpoint", "", "S3 endpoint URL (default: $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS)")
	f.StringVar(&a.SQSEndpoint, "sqs-endpoint", "", "SQS endpoint URL (default: $AWS_ENDPOINT_URL_SQS, else $AWS_ENDPOINT_URL, else AWS)")
	f.BoolVar(&a.PathStyle, "s3-path-style", false, "address buckets as https://host/bucket (always on with a custom S3 endpoint)")
}

// Validate adds a problem for each malformed setting.
func (a *AWS) Validate(p *cli.Problems) {
	for name, v := range map[string]string{"s3-endpoint": a.S3Endpoint, "sqs-endpoint": a.SQSEndpoint} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Addf("--%s %q is not an endpoint URL: write it as http(s)://host[:port]", name, v)
		}
	}
}

// customS3Endpoint is the S3 endpoint set by flag or environment, "" for AWS.
func (a *AWS) customS3Endpoint() string {
	for _, v := range []string{a.S3Endpoint, os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL")} {
		if v != "" {
			return v
		}
	}
	return ""
}

// customSQSEndpoint is the SQS endpoint set by flag or environment, "" for AWS.
func (a *AWS) customSQSEndpoint() string {
	for _, v := range []string{a.SQSEndpoint, os.Getenv("AWS_ENDPOINT_URL_SQS"), os.Getenv("AWS_ENDPOINT_URL")} {
		if v != "" {
			return v
		}
	}
	return ""
}

// Load resolves the SDK configuration: region, credentials chain, retries
// with backoff (ten attempts, no client-side retry quota: a throttled copy
// waits rather than fails), and a connection pool sized for the workload.
func (a *AWS) Load(ctx context.Context) (aws.Config, error) {
	conns := max(a.Connections, 64)
	client := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = conns * 2
		t.MaxIdleConnsPerHost = conns
		t.IdleConnTimeout = 90 * time.Second
	})
	// The credentials cache, once loaded: a request refused for expired
	// credentials invalidates it, so the retry signs with fresh ones.
	creds := &credentialsRef{}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(client),
		awsconfig.WithRetryer(func() aws.Retryer {
			r := retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 10
				o.MaxBackoff = 20 * time.Second
				o.RateLimiter = ratelimit.None
			})
			return observer{RetryerV2: r, onThrottle: a.OnThrottle, creds: creds}
		}),
	}
	// Every request says who sends it (in S3's and CloudTrail's logs):
	// "app/s3clone" and "s3clone/VERSION" in its User-Agent.
	opts = append(opts, awsconfig.WithAppID("s3clone"),
		awsconfig.WithAPIOptions([]func(*smithymiddleware.Stack) error{awsmiddleware.AddUserAgentKeyValue("s3clone", userAgentVersion())}))
	if a.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(a.Profile))
	}
	if a.Region != "" {
		opts = append(opts, awsconfig.WithRegion(a.Region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, cli.Usagef("AWS configuration: %v", err)
	}
	// Static credentials (the environment's, a profile's keys) cannot be
	// refreshed: a refusal of them is final.
	if cache, ok := cfg.Credentials.(*aws.CredentialsCache); ok && !aws.IsCredentialsProvider(cache, credentials.StaticCredentialsProvider{}) {
		creds.set(cache)
	}
	if cfg.Region == "" {
		if a.customS3Endpoint() == "" && a.customSQSEndpoint() == "" {
			return cfg, cli.Usagef("no AWS region: set $AWS_REGION or --region")
		}
		cfg.Region = "us-east-1" // local servers ignore it, but signing needs one
	}
	return cfg, nil
}

// userAgentVersion is cli.Version as one User-Agent token.
func userAgentVersion() string {
	return strings.NewReplacer(" ", "_", "+", "-").Replace(cli.Version())
}

// observer wraps the SDK's retryer, which it asks about every failed
// attempt. It reports every throttling error (retried ones included), and
// makes a refusal of expired credentials retryable after dropping the
// cached credentials: the retry fetches fresh ones (an assumed role's
// session lasts as little as 15 minutes; a clone can last longer).
type observer struct {
	aws.RetryerV2
	onThrottle func() // nil: nobody listens
	creds      *credentialsRef
	// s3: the retryer is an S3 client's, for which every 503 is a
	// throttle: S3 says SlowDown to a HEAD by its status alone (the
	// answer has no body to name the code).
	s3 bool
}

var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

func (o observer) IsErrorRetryable(err error) bool {
	if o.onThrottle != nil && o.throttled(err) {
		o.onThrottle()
	}
	if Expired(err) && o.creds.invalidate() {
		return true
	}
	return o.RetryerV2.IsErrorRetryable(err)
}

func (o observer) throttled(err error) bool {
	if throttles.IsErrorThrottle(err) == aws.TrueTernary {
		return true
	}
	var re *smithyhttp.ResponseError
	return o.s3 && errors.As(err, &re) && re.HTTPStatusCode() == http.StatusServiceUnavailable
}

// Expired reports an error that refuses credentials as expired or out of
// date, which fresh credentials cure.
func Expired(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired":
		return true
	}
	return false
}

// credentialsRef holds the credentials cache the retryer invalidates; it
// is set once the configuration is loaded. Safe for concurrent use.
type credentialsRef struct {
	mu    sync.Mutex
	cache *aws.CredentialsCache
	last  time.Time // the last invalidation
}

// refreshEvery is the least time between two invalidations: with hundreds
// of requests in flight, the refusals of the old credentials keep arriving
// after fresh ones were fetched, and must not drop those too.
const refreshEvery = 10 * time.Second

func (r *credentialsRef) set(c *aws.CredentialsCache) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cache = c
}

// invalidate drops the cached credentials (at most once every
// refreshEvery), reporting whether a retry may find fresh ones: false for
// static credentials, which cannot be refreshed.
func (r *credentialsRef) invalidate() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		return false
	}
	if time.Since(r.last) >= refreshEvery {
		r.cache.Invalidate()
		r.last = time.Now()
	}
	return true
}

// S3 returns an S3 client for cfg.
func (a *AWS) S3(cfg aws.Config) *s3.Client {
	if a.Owners == nil {
		a.Owners = new(ownership.Book)
	}
	custom := a.customS3Endpoint() != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if a.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(a.S3Endpoint)
		}
		o.UsePathStyle = a.PathStyle || custom
		o.APIOptions = append(o.APIOptions, a.Owners.APIOption)
		if obs, ok := o.Retryer.(observer); ok {
			obs.s3 = true
			o.Retryer = obs
		}
	})
}

// SQS returns an SQS client for cfg.
func (a *AWS) SQS(cfg aws.Config) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if a.SQSEndpoint != "" {
			o.BaseEndpoint = aws.String(a.SQSEndpoint)
		}
	})
}

// CheckQueueURL adds a problem when u cannot be an SQS queue URL.
func CheckQueueURL(p *cli.Problems, flag, u string) {
	if u == "" {
		return
	}
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" || len(parsed.Path) < 2 {
		p.Addf("--%s %q is not a queue URL: it looks like https://sqs.REGION.amazonaws.com/ACCOUNT/NAME", flag, u)
	}
}

// CheckQueue fails with a cli.UsageError when the queue named by --flag does not
// exist, cannot be reached, or refuses these credentials.
func CheckQueue(ctx context.Context, q *queue.SQS, flag string) error {
	err := q.CheckExists(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, queue.ErrNoSuchQueue):
		return cli.Usagef("--%s %s: no such queue; create it first (see docs/operations.md, \"With a fleet, on AWS\") or fix the URL", flag, q.URL())
	case unreachable(err):
		return cli.Usagef("--%s: cannot reach SQS at %s: check the URL, --sqs-endpoint or $AWS_ENDPOINT_URL_SQS, and the network (%v)", flag, q.URL(), err)
	case refused(err):
		return cli.Usagef("--%s: SQS refused these credentials for %s: check $AWS_ACCESS_KEY_ID / the profile or role, and that it grants sqs:GetQueueAttributes", flag, q.URL())
	}
	return fmt.Errorf("--%s: %w", flag, err)
}

// startupCheck makes a check at start-up fail fast: three attempts, not ten.
func startupCheck(o *s3.Options) { o.RetryMaxAttempts = 3 }

// unreachable reports an error from a request that never got an answer.
func unreachable(err error) bool {
	var send *smithyhttp.RequestSendError
	return errors.As(err, &send)
}

// refused reports an answer that rejects the credentials or the access.
func refused(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusForbidden || re.HTTPStatusCode() == http.StatusUnauthorized) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken":
			return true
		}
	}
	return false
}

// CheckBucket fails with a cli.UsageError when bucket does not exist, and with a
// plain error naming the permission when it cannot be read.
func CheckBucket(ctx context.Context, api *s3.Client, flag, bucket string) error {
	_, err := api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}, startupCheck)
	return CheckBucketError(err, flag, bucket)
}

// CheckBucketError is CheckBucket's verdict on a HeadBucket's error (nil
// for none).
func CheckBucketError(err error, flag, bucket string) error {
	if err == nil {
		return nil
	}
	if unreachable(err) {
		return cli.Usagef("--%s: cannot reach S3: check --s3-endpoint or $AWS_ENDPOINT_URL_S3, and the network (%v)", flag, err)
	}
	var nf *s3types.NotFound
	var nb *s3types.NoSuchBucket
	var re *smithyhttp.ResponseError
	switch {
	case errors.As(err, &nf), errors.As(err, &nb), errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		return cli.Usagef("--%s: bucket %q does not exist (or is in another account or partition): check the name", flag, bucket)
	case refused(err):
		return cli.Usagef("--%s: access to bucket %q denied: check $AWS_ACCESS_KEY_ID / the profile or role, that it grants s3:ListBucket on arn:aws:s3:::%s, "+
			"and that --%s-owner, if given, is the account that owns the bucket (S3 refuses a request that expects another owner)", flag, bucket, bucket, flag)
	case errors.As(err, &re) && re.Response != nil && re.Response.Header.Get("X-Amz-Bucket-Region") != "":
		return cli.Usagef("--%s: bucket %q is in region %s, not the one given: fix --%s-region, or leave it out to have it found",
			flag, bucket, re.Response.Header.Get("X-Amz-Bucket-Region"), flag)
	}
	return fmt.Errorf("--%s: check bucket %q: %w", flag, bucket, err)
}
