// Package stackbed is the test bed of the CloudFormation stack: a
// moto_server of a test's own with every service moto implements
// (StartMoto), SDK clients of each (MotoClients), and the stack of
// deploy/s3clone.yaml created on it and made whole (DeployOnMoto), with
// the operator's steps as methods. test/stack's tests use it. It is apart
// from package testbed, which the S3 and SQS tests use, because its SDK
// clients (EC2, IAM, CloudFormation, ECS, CloudWatch, SNS, EventBridge,
// ...) take longer to compile than everything those tests need.
package stackbed

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/s3clone/s3clone/test/testbed"
)

// MotoServer is a moto_server of a test's own, with every service moto
// implements on one loopback port (CloudFormation, IAM, STS, ECS,
// Application Auto Scaling, CloudWatch, CloudWatch Logs, S3, SQS, EC2, ...),
// and none of the rest of the test bed: the stack's tests create stacks on
// it (DeployOnMoto). testbed.Env.Moto is the other way to reach moto, as a
// second S3 and SQS next to versitygw.
type MotoServer struct {
	// Endpoint is the server's URL, for every service.
	Endpoint string
	// ECSEndpoint is a proxy of Endpoint for ECS (MotoClients.ECS uses
	// it; a binary takes it as AWS_ENDPOINT_URL_ECS): moto answers
	// RunTask, DescribeTasks and StopTask with each container's cpu and
	// memory as numbers, which the ECS API has as strings and the Go SDK
	// refuses to read ("expected string, got 0"); the proxy makes them
	// strings.
	ECSEndpoint string
	// Cfg reaches every service at Endpoint with the root credentials
	// (testbed.AccessKey, testbed.SecretKey; moto's account 123456789012),
	// in testbed.Region. An S3 client made from it needs path-style
	// addressing (MotoClients.S3 has it).
	Cfg  aws.Config
	proc *testbed.MotoProcess
}

// StartMoto starts a moto_server on a free loopback port, stopped when the
// test ends. environ is added to its environment, e.g.
// "INITIAL_NO_AUTH_ACTION_COUNT=3" to enforce IAM after three requests.
// Without moto_server on the PATH the test skips (or fails, under
// $S3CLONE_REQUIRE_TESTBED); under $S3CLONE_UNIT_ONLY it skips.
func StartMoto(t testing.TB, environ ...string) *MotoServer {
	t.Helper()
	p := testbed.StartMotoProcess(t, environ...)
	m := &MotoServer{
		Endpoint: p.Endpoint,
		Cfg:      MotoConfig(p.Endpoint, testbed.AccessKey, testbed.SecretKey, ""),
		proc:     p,
	}
	target, _ := url.Parse(m.Endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = fixMotoECS
	srv := httptest.NewServer(proxy) // on 127.0.0.1
	t.Cleanup(srv.Close)
	m.ECSEndpoint = srv.URL
	return m
}

// fixMotoECS turns the numbers moto writes for a task's and its
// containers' cpu and memory into the strings the ECS API has.
func fixMotoECS(resp *http.Response) error {
	op := resp.Request.Header.Get("X-Amz-Target")
	if !strings.HasSuffix(op, ".RunTask") && !strings.HasSuffix(op, ".DescribeTasks") && !strings.HasSuffix(op, ".StopTask") {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var doc map[string]any
	if json.Unmarshal(body, &doc) == nil {
		stringify := func(m map[string]any) {
			for _, k := range []string{"cpu", "memory", "memoryReservation"} {
				if n, ok := m[k].(float64); ok {
					m[k] = strconv.FormatFloat(n, 'f', -1, 64)
				}
			}
		}
		tasks, _ := doc["tasks"].([]any)
		if task, ok := doc["task"]; ok {
			tasks = append(tasks, task)
		}
		for _, task := range tasks {
			task, _ := task.(map[string]any)
			stringify(task)
			containers, _ := task["containers"].([]any)
			for _, c := range containers {
				c, _ := c.(map[string]any)
				stringify(c)
			}
		}
		if fixed, err := json.Marshal(doc); err == nil {
			body = fixed
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// MotoConfig is an SDK configuration that reaches every service at endpoint
// with these credentials (a session token for a role's).
func MotoConfig(endpoint, access, secret, token string) aws.Config {
	return aws.Config{
		Region:       testbed.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, token),
		// A connection moto's server dropped is tried again; an answer (a
		// 500 of moto's too) is taken as it is, not hidden by retries.
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.Retryables = []retry.IsErrorRetryable{retry.RetryableConnectionError{}}
			})
		},
	}
}

// Log is everything the server has written so far: a line per request,
// and its warnings (such as the resource types its CloudFormation skips).
func (m *MotoServer) Log() string { return m.proc.Log() }

// LogTail is the end of the log, for failure messages.
func (m *MotoServer) LogTail() string { return m.proc.LogTail() }

var motoUnsupported = regexp.MustCompile(`No Moto CloudFormation support for (\S+)`)

// Unsupported are the resource types moto's CloudFormation has said, so
// far, that it does not implement (it logs each and creates nothing for
// it, reporting the stack complete all the same), sorted.
func (m *MotoServer) Unsupported() []string {
	var out []string
	for _, match := range motoUnsupported.FindAllStringSubmatch(m.Log(), -1) {
		out = append(out, match[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Environ is the environment a child process (planner, worker, aws CLI)
// needs to reach every service on this server with the root credentials.
func (m *MotoServer) Environ() []string {
	return testbed.ChildEnviron("AWS_ENDPOINT_URL="+m.Endpoint, "AWS_ENDPOINT_URL_ECS="+m.ECSEndpoint) // every service; ECS through the fixing proxy
}

// StartMotoEnforcingIAM starts a moto_server that checks every request
// against IAM (moto's INITIAL_NO_AUTH_ACTION_COUNT) once it has made an
// administrator: an IAM user allowed everything, whose access key is then
// the server's Cfg. Moto checks only IAM users' and assumed roles'
// identity policies (no resource policies), and its signature check
// refuses some valid requests (a listing whose prefix holds "/", non-ASCII
// keys).
func StartMotoEnforcingIAM(t testing.TB) *MotoServer {
	t.Helper()
	// The three requests below are the ones moto lets through unchecked.
	m := StartMoto(t, "INITIAL_NO_AUTH_ACTION_COUNT=3")
	c := m.Clients().IAM
	ctx := context.Background()
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("administrator")}); err != nil {
		t.Fatalf("create the administrator: %v", err)
	}
	if _, err := c.PutUserPolicy(ctx, &iam.PutUserPolicyInput{
		UserName: aws.String("administrator"), PolicyName: aws.String("everything"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`),
	}); err != nil {
		t.Fatalf("the administrator's policy: %v", err)
	}
	key, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("administrator")})
	if err != nil {
		t.Fatalf("the administrator's access key: %v", err)
	}
	m.Cfg = MotoConfig(m.Endpoint, aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey), "")
	return m
}
