package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/test/testbed"
)

// bin holds the planner and worker built for this test run.
var bin string

func TestMain(m *testing.M) {
	dir, err := testbed.BuildBinaries(true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	code := testbed.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// lockedBuffer is a buffer a running process writes while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// command prepares one of the binaries with the testbed's environment.
func command(env *testbed.Env, name string, args ...string) (*exec.Cmd, *lockedBuffer, *lockedBuffer) {
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = env.Environ()
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	return cmd, &out, &errb
}

// run runs a binary to the end.
func run(t *testing.T, env *testbed.Env, name string, args ...string) result {
	t.Helper()
	cmd, out, errb := command(env, name, args...)
	return finish(t, name, cmd, out, errb)
}

// runAs runs a binary with another user's credentials.
func runAs(t *testing.T, env *testbed.Env, access, secret, name string, args ...string) result {
	t.Helper()
	cmd, out, errb := command(env, name, args...)
	cmd.Env = env.EnvironAs(access, secret)
	return finish(t, name, cmd, out, errb)
}

func finish(t *testing.T, name string, cmd *exec.Cmd, out, errb *lockedBuffer) result {
	t.Helper()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", name, err)
	}
	return r
}

// mustRun runs a binary and fails the test unless it exits 0.
func mustRun(t *testing.T, env *testbed.Env, name string, args ...string) result {
	t.Helper()
	r := run(t, env, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), r.code, r.stdout, tail(r.stderr))
	}
	return r
}

func tail(s string) string {
	if len(s) > 6000 {
		return "…" + s[len(s)-6000:]
	}
	return s
}

// workers runs n worker processes on a queue until they go idle.
func workers(t *testing.T, env *testbed.Env, n int, args ...string) []result {
	t.Helper()
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = run(t, env, "worker", append([]string{"--id", fmt.Sprintf("w%d", i+1), "--idle-exit", "3s"}, args...)...)
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("worker %d: exit %d\n%s", i+1, r.code, tail(r.stderr))
		}
	}
	return results
}

// status runs planner status --json.
type statusJSON struct {
	Run        string `json:"run"`
	Plan       string `json:"plan"`
	Messages   int64  `json:"messages_done"`
	Sent       int64  `json:"messages_sent"`
	Unrecorded int64  `json:"messages_unrecorded"`
	Copied     int64  `json:"copied"`
	Skipped    int64  `json:"skipped"`
	Failed     int64  `json:"failed"`
	Bytes      int64  `json:"bytes_copied"`
	Complete   bool   `json:"complete"`
	Workers    int    `json:"workers"`
	Deleted    int64  `json:"deleted"`
	Deadline   *struct {
		PerWorkerRate float64 `json:"objects_per_second_per_worker"`
		WorkersNeeded int     `json:"workers_needed"`
	} `json:"deadline"`
	Planned *struct {
		Objects  int64 `json:"objects"`
		Bytes    int64 `json:"bytes"`
		Messages int64 `json:"messages"`
	} `json:"planned"`
	Queue *struct {
		Visible      int64  `json:"visible"`
		InFlight     int64  `json:"in_flight"`
		DeadLettered *int64 `json:"dead_lettered"`
	} `json:"queue"`
	Failures []struct {
		Key    string `json:"key"`
		Reason string `json:"reason"`
	} `json:"failures"`
}

func status(t *testing.T, env *testbed.Env, ledgerURL string, extra ...string) statusJSON {
	t.Helper()
	r := mustRun(t, env, "planner", append([]string{"status", "--ledger", ledgerURL, "--json"}, extra...)...)
	var s statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("status output %q: %v", r.stdout, err)
	}
	return s
}

// ledgerURL makes a bucket for a run ledger and returns its --ledger URL.
func ledgerURL(t *testing.T, env *testbed.Env) string {
	t.Helper()
	return "s3://" + env.Bucket(t) + "/s3clone/"
}

// getBody reads one object whole.
func getBody(t *testing.T, env *testbed.Env, bucket, key string) []byte {
	t.Helper()
	get, err := env.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer get.Body.Close()
	b, err := io.ReadAll(get.Body)
	if err != nil {
		t.Fatalf("read s3://%s/%s: %v", bucket, key, err)
	}
	return b
}

// bucketOf is the bucket of an s3:// URL.
func bucketOf(url string) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(url, "s3://"), "/")
	return b
}

// runID reads the run id from a plan summary.
func runID(t *testing.T, planOut string) string {
	t.Helper()
	for _, line := range strings.Split(planOut, "\n") {
		if id, ok := strings.CutPrefix(line, "run       "); ok {
			return strings.TrimSpace(id)
		}
	}
	t.Fatalf("no run id in plan output:\n%s", planOut)
	return ""
}

// object is everything a clone must keep of one object.
type object struct {
	Size         int64
	MD5          string
	ContentType  string
	CacheControl string
	Metadata     map[string]string
	Tags         map[string]string
}

// snapshot reads every object under prefix with its body digest, and with
// its headers and tags when full is set.
func snapshot(t *testing.T, env *testbed.Env, bucket, prefix string, full bool) map[string]object {
	t.Helper()
	keys := env.Keys(t, bucket, prefix)
	out := make(map[string]object, len(keys))
	var mu sync.Mutex
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for key := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			o := readObject(t, env, bucket, key, full)
			mu.Lock()
			out[strings.TrimPrefix(key, prefix)] = o
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func readObject(t *testing.T, env *testbed.Env, bucket, key string, full bool) object {
	ctx := context.Background()
	get, err := env.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Errorf("get s3://%s/%s: %v", bucket, key, err)
		return object{}
	}
	defer get.Body.Close()
	h := md5.New()
	n, err := io.Copy(h, get.Body)
	if err != nil {
		t.Errorf("read s3://%s/%s: %v", bucket, key, err)
	}
	o := object{Size: n, MD5: hex.EncodeToString(h.Sum(nil))}
	if !full {
		return o
	}
	o.ContentType, o.CacheControl, o.Metadata = aws.ToString(get.ContentType), aws.ToString(get.CacheControl), get.Metadata
	tags, err := env.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Errorf("tags of s3://%s/%s: %v", bucket, key, err)
		return o
	}
	o.Tags = map[string]string{}
	for _, tag := range tags.TagSet {
		o.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	return o
}

// sameObjects fails unless dst holds exactly src's objects, property for
// property.
func sameObjects(t *testing.T, src, dst map[string]object) {
	t.Helper()
	bad := 0
	for k, s := range src {
		d, ok := dst[k]
		switch {
		case !ok:
			t.Errorf("missing in destination: %q", k)
		case s.Size != d.Size || s.MD5 != d.MD5:
			t.Errorf("%q: content differs (size %d vs %d)", k, s.Size, d.Size)
		case s.ContentType != d.ContentType || s.CacheControl != d.CacheControl:
			t.Errorf("%q: headers %q %q vs %q %q", k, s.ContentType, s.CacheControl, d.ContentType, d.CacheControl)
		case !maps.Equal(s.Metadata, d.Metadata) || !maps.Equal(s.Tags, d.Tags):
			t.Errorf("%q: metadata %v tags %v vs %v %v", k, s.Metadata, s.Tags, d.Metadata, d.Tags)
		default:
			continue
		}
		if bad++; bad > 10 {
			t.Fatal("too many differences")
		}
	}
	for k := range dst {
		if _, ok := src[k]; !ok {
			t.Errorf("extra in destination: %q", k)
		}
	}
	if len(src) != len(dst) {
		t.Fatalf("source holds %d objects, destination %d", len(src), len(dst))
	}
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", within, what)
}
