// Package testbed starts the real local servers the tests run against,
// versitygw for S3 and local-aws-sqs for SQS, on loopback addresses, and
// gives tests clients, fresh buckets and fresh queues. `make tools` installs
// both at the versions the Makefile pins.
package testbed

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Credentials of the local S3 server.
const (
	AccessKey = "S3CLONETESTACCESSKEY"
	SecretKey = "s3clone-test-secret-do-not-log-5up3r"
	Region    = "us-east-1"
)

// Env is a running pair of servers.
type Env struct {
	Root string // the repository root
	// S3Endpoint is where the binaries reach S3: the Manners proxy, which
	// answers as Amazon S3 does where versitygw is more forgiving.
	S3Endpoint string
	// S3Direct is versitygw itself, for set-up and benchmarks.
	S3Direct    string
	adminAddr   string // versitygw's admin API, for users
	SQSEndpoint string
	// S3 is a client of S3Direct with the root credentials, for set-up.
	S3         *s3.Client
	SQS        *sqs.Client
	procs      []*exec.Cmd
	latency    []*exec.Cmd // toxiproxy servers started by WithLatency
	dir        string
	versitygw  string
	manners    *Manners
	mannersSrv *httptest.Server
	moto       moto // the test bed on moto (moto.go), started on first use
}

var (
	current *Env
	missing error // why Main started no servers
	counter atomic.Int64
)

// RequireEnv is the environment variable that makes missing servers an
// error instead of a reason to skip: `make test` sets it, so CI runs every
// integration test or fails.
const RequireEnv = "S3CLONE_REQUIRE_TESTBED"

// UnitEnv is the environment variable that runs the unit tests alone: no
// server is started (installed or not) and every integration test skips.
// `make test-unit` sets it.
const UnitEnv = "S3CLONE_UNIT_ONLY"

// unitOnly reports whether $S3CLONE_UNIT_ONLY asks for the unit tests alone.
func unitOnly() error {
	if os.Getenv(UnitEnv) != "" {
		return fmt.Errorf("$%s is set: unit tests only", UnitEnv)
	}
	return nil
}

// Main starts the servers, runs the package's tests and stops the servers.
// Use it from TestMain: os.Exit(testbed.Main(m)). Without the servers
// installed, the package's unit tests still run and its integration tests
// (those calling Get) skip, saying how to get the servers; with
// $S3CLONE_REQUIRE_TESTBED set, missing servers fail the package instead.
func Main(m *testing.M) int {
	if err := unitOnly(); err != nil {
		missing = err
		return m.Run()
	}
	env, err := Start()
	if err != nil {
		if os.Getenv(RequireEnv) != "" {
			fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
			return 1
		}
		missing = err
		skipLine(fmt.Sprintf("testbed: %v; this package's integration tests skip (make test runs them all)\n", err))
		return m.Run()
	}
	current = env
	code := m.Run()
	env.Stop()
	return code
}

// Get returns the servers started by Main; without them it skips the test.
func Get(t testing.TB) *Env {
	t.Helper()
	if current == nil {
		if missing != nil {
			t.Skipf("no local servers (%v): run `make tools`, or `make test`", missing)
		}
		t.Fatal("testbed not started: call testbed.Main from TestMain")
	}
	return current
}

// RepoRoot finds the directory holding go.mod above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start starts versitygw and local-aws-sqs on free loopback ports.
func Start() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "s3clone-testbed-")
	if err != nil {
		return nil, err
	}
	env := &Env{Root: root, dir: dir}
	if err := env.startS3(); err != nil {
		env.Stop()
		return nil, err
	}
	env.startManners()
	if err := env.startSQS(); err != nil {
		env.Stop()
		return nil, err
	}
	env.S3 = env.Client(env.S3Direct)
	env.SQS = sqs.New(sqs.Options{
		Region: Region, BaseEndpoint: aws.String(env.SQSEndpoint),
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	return env, nil
}

func (e *Env) startS3() error {
	bin := os.Getenv("S3CLONE_VERSITYGW")
	if bin == "" {
		bin = filepath.Join(e.Root, ".tools", "bin", "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("versitygw not found at %s: run `make tools`", bin)
	}
	e.versitygw = bin
	data := filepath.Join(e.dir, "s3")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	iam := filepath.Join(e.dir, "iam")
	for _, d := range []string{iam, e.versions()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	if e.adminAddr, err = freeAddr(); err != nil {
		return err
	}
	// --keep-alive: versitygw closes every connection after one request
	// unless told otherwise; S3 keeps them, and so must a fair benchmark.
	// --versioning-dir: as in S3, a bucket with Object Lock is versioned
	// and a write over a locked object makes a new version (without it
	// versitygw refuses the write); other buckets stay unversioned.
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", addr,
		"--admin-port", e.adminAddr, "--iam-dir", iam, "--keep-alive", "--quiet", "posix", "--versioning-dir", e.versions(), data)
	if err := e.spawn(cmd, filepath.Join(e.dir, "versitygw.log")); err != nil {
		return err
	}
	e.S3Direct = "http://" + addr
	return waitTCP(addr, 30*time.Second)
}

// versions is where versitygw keeps the versions of versioned buckets.
func (e *Env) versions() string { return filepath.Join(e.dir, "versions") }

func (e *Env) startSQS() error {
	script := filepath.Join(e.Root, "test", "sqsd", "server.mjs")
	if _, err := os.Stat(filepath.Join(e.Root, "test", "sqsd", "node_modules", "local-aws-sqs")); err != nil {
		return fmt.Errorf("local-aws-sqs not installed in test/sqsd: run `make tools`")
	}
	cmd := exec.Command("node", script, "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := e.spawn(cmd, filepath.Join(e.dir, "sqsd.log")); err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				ready <- u
			}
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			return fmt.Errorf("local-aws-sqs exited before listening; see %s", filepath.Join(e.dir, "sqsd.log"))
		}
		e.SQSEndpoint = u
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("local-aws-sqs did not start within 30s")
	}
}

// spawn starts cmd in its own process group with stderr to logPath.
func (e *Env) spawn(cmd *exec.Cmd, logPath string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	if cmd.Stdout == nil {
		cmd.Stdout = logf
	}
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	e.procs = append(e.procs, cmd)
	return nil
}

// Stop ends the servers and removes their data.
func (e *Env) Stop() {
	if e.mannersSrv != nil {
		e.mannersSrv.Close()
		e.manners.events.close()
	}
	for _, p := range e.procs {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL) // already gone is fine
		_ = p.Wait()                                      // its exit status means nothing here
	}
	os.RemoveAll(e.dir)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitTCP(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listening on %s after %s", addr, within)
}

// Name returns a name unique within this test process, usable as a bucket
// or queue name.
func Name(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%100000, counter.Add(1))
}

// Bucket creates a fresh bucket.
func (e *Env) Bucket(t testing.TB) string {
	t.Helper()
	name := Name("b")
	if _, err := e.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// LockedBucket creates a fresh bucket with Object Lock enabled (and so
// versioning, as S3 requires).
func (e *Env) LockedBucket(t testing.TB) string {
	t.Helper()
	name := Name("lk")
	if _, err := e.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("create bucket %s with Object Lock: %v", name, err)
	}
	return name
}

// Queue creates a fresh queue; with maxReceives > 0 it gets a dead-letter
// queue after that many receives, whose URL is returned second.
func (e *Env) Queue(t testing.TB, maxReceives int) (url, dlq string) {
	t.Helper()
	ctx := context.Background()
	attrs := map[string]string{}
	if maxReceives > 0 {
		d, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(Name("dlq"))})
		if err != nil {
			t.Fatalf("create dead-letter queue: %v", err)
		}
		dlq = aws.ToString(d.QueueUrl)
		a, err := e.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: d.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatalf("dead-letter queue arn: %v", err)
		}
		attrs["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, a.Attributes["QueueArn"], maxReceives)
	}
	q, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(Name("q")), Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	return aws.ToString(q.QueueUrl), dlq
}

// User creates an S3 user with the "user" role: it owns no bucket and may do
// only what bucket policies grant it.
func (e *Env) User(t testing.TB, access, secret string) {
	t.Helper()
	bin := filepath.Join(e.Root, ".tools", "bin", "versitygw")
	cmd := exec.Command(bin, "admin", "--access", AccessKey, "--secret", SecretKey, "--endpoint-url", "http://"+e.adminAddr,
		"create-user", "--access", access, "--secret", secret, "--role", "user")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("create user %s: %v\n%s", access, err, out)
	}
	e.manners.mu.Lock()
	e.manners.secrets[access] = secret
	e.manners.mu.Unlock()
}

// Grant sets a bucket policy allowing user the actions on the bucket and
// its objects.
func (e *Env) Grant(t testing.TB, bucket, user string, actions ...string) {
	t.Helper()
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":[%q]},"Action":%s,"Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"]}]}`,
		user, jsonList(actions), bucket, bucket)
	if _, err := e.S3.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("policy on %s: %v", bucket, err)
	}
}

// SetPolicy sets a bucket's policy document as is.
func (e *Env) SetPolicy(t testing.TB, bucket, policy string) {
	t.Helper()
	if _, err := e.S3.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("policy on %s: %v\n%s", bucket, err, policy)
	}
}

func jsonList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(quoted, ",") + "]"
}

// EnvironAs is Environ with another user's credentials.
func (e *Env) EnvironAs(access, secret string) []string {
	env := e.Environ()
	for i, kv := range env {
		switch {
		case strings.HasPrefix(kv, "AWS_ACCESS_KEY_ID="):
			env[i] = "AWS_ACCESS_KEY_ID=" + access
		case strings.HasPrefix(kv, "AWS_SECRET_ACCESS_KEY="):
			env[i] = "AWS_SECRET_ACCESS_KEY=" + secret
		}
	}
	return env
}

// Environ is the environment a child process (planner, worker, aws CLI)
// needs to reach the servers.
func (e *Env) Environ() []string {
	return ChildEnviron("AWS_ENDPOINT_URL_S3="+e.S3Endpoint, "AWS_ENDPOINT_URL_SQS="+e.SQSEndpoint)
}

// ChildEnviron is this process's environment without any AWS_ or
// S3CLONE_ variable (nothing from the developer's own AWS setup leaks
// in), with the test bed's credentials and region, and endpoints
// ("AWS_ENDPOINT_URL_S3=..."): what a child process (planner, worker, aws
// CLI) runs with.
func ChildEnviron(endpoints ...string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "S3CLONE_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"AWS_ACCESS_KEY_ID="+AccessKey,
		"AWS_SECRET_ACCESS_KEY="+SecretKey,
		"AWS_REGION="+Region,
		"AWS_EC2_METADATA_DISABLED=true",
	)
	return append(env, endpoints...)
}

// LogTail returns the end of a server's log, for failure messages.
func (e *Env) LogTail(name string) string {
	f, err := os.Open(filepath.Join(e.dir, name))
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f) // a partial log is still worth showing
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Object is a test object to upload.
type Object struct {
	Key          string
	Body         []byte
	ContentType  string
	CacheControl string
	Metadata     map[string]string
	Tagging      string // URL-encoded, e.g. "a=1&b=two"
	Redirect     string // x-amz-website-redirect-location
}

// Put uploads objects with 32 uploads in flight.
func (e *Env) Put(t testing.TB, bucket string, objs []Object) {
	t.Helper()
	ctx := context.Background()
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(objs))
	for _, o := range objs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key), Body: bytes.NewReader(o.Body), Metadata: o.Metadata}
			if o.ContentType != "" {
				in.ContentType = aws.String(o.ContentType)
			}
			if o.CacheControl != "" {
				in.CacheControl = aws.String(o.CacheControl)
			}
			if o.Tagging != "" {
				in.Tagging = aws.String(o.Tagging)
			}
			if o.Redirect != "" {
				in.WebsiteRedirectLocation = aws.String(o.Redirect)
			}
			if _, err := e.S3.PutObject(ctx, in); err != nil {
				errs <- fmt.Errorf("put %q: %w", o.Key, err)
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Keys lists every key in bucket under prefix with one plain sequential
// listing: the reference the tests compare against.
// Keys are URL-encoded in the answer (through the Manners proxy), so keys
// that XML cannot carry are listed too. Buckets in another region are
// listed there.
func (e *Env) Keys(t testing.TB, bucket, prefix string) map[string]s3types.Object {
	t.Helper()
	out := map[string]s3types.Object{}
	client := e.S3
	if e.manners != nil {
		client = e.manners.Client(bucket)
	}
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket), Prefix: aws.String(prefix), EncodingType: s3types.EncodingTypeUrl,
	})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list s3://%s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key, err := url.QueryUnescape(aws.ToString(o.Key))
			if err != nil {
				t.Fatalf("list s3://%s/%s: key %q: %v", bucket, prefix, aws.ToString(o.Key), err)
			}
			o.Key = aws.String(key)
			out[key] = o
		}
	}
	return out
}

// BuildBinaries builds the planner and the worker into a new temporary
// directory and returns it; race adds the race detector. The caller removes
// the directory.
func BuildBinaries(race bool) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "s3clone-bin-")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + "/"}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/planner", "./cmd/worker")...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build planner and worker: %w", err)
	}
	return dir, nil
}

// ServerCPU is the CPU time the S3 server has used so far (user + system),
// read from /proc: the server's share of a benchmark on a shared machine.
func (e *Env) ServerCPU() (time.Duration, error) {
	if len(e.procs) == 0 {
		return 0, fmt.Errorf("no server running")
	}
	return ProcessCPU(e.procs[0].Process.Pid)
}

// ServerPID is the S3 server's process id, for tools that watch it.
func (e *Env) ServerPID() int { return e.procs[0].Process.Pid }

// SQSServerCPU is the CPU time the SQS server (local-aws-sqs) has used so far.
func (e *Env) SQSServerCPU() (time.Duration, error) {
	if len(e.procs) < 2 {
		return 0, fmt.Errorf("no SQS server running")
	}
	return ProcessCPU(e.procs[1].Process.Pid)
}

// ProxyCPU is the CPU time the latency proxies (WithLatency) have used so
// far: on a shared machine they compete with the tools they delay.
func (e *Env) ProxyCPU() (time.Duration, error) {
	var sum time.Duration
	for _, p := range e.latency {
		d, err := ProcessCPU(p.Process.Pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// ProcessCPU is a live process's CPU time so far (user + system), from /proc.
func ProcessCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat: %q", data)
	}
	var utime, stime int64
	if _, err := fmt.Sscan(fields[11], &utime); err != nil {
		return 0, err
	}
	if _, err := fmt.Sscan(fields[12], &stime); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// userHZ is the unit of /proc's CPU times on Linux (USER_HZ).
const userHZ = 100

// PeakRSS is a process's peak resident set (VmHWM) in KiB, read from /proc;
// pid 0 means this process. It is 0 when the process is gone or unreadable.
func PeakRSS(pid int) int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err != nil {
				return 0
			}
			return kb
		}
	}
	return 0
}

// skipLine says why integration tests skip. go test shows a passing
// package's output only with -v, so the line also goes to the terminal, if
// there is one: a person running a plain go test ./... sees one line per
// package that skipped, and why.
func skipLine(line string) {
	fmt.Fprint(os.Stderr, line)
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprint(tty, line)
		tty.Close()
	}
}
