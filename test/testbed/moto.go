package testbed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// moto is the second, independent S3 and SQS of the test bed: the server of
// moto, the AWS mock library (5.2.1, preinstalled with the machine's
// Python), written from AWS's API models rather than from a file system.
// One port serves both. Tests that clone, diff and verify run on it as
// well as on versitygw, so that what passes is S3's behaviour and not one
// server's. It is slow (Flask): hundreds of objects, not thousands. It
// refuses a key with CR LF, and (unlike S3) copies a website redirect under
// a metadata directive; there is no Manners proxy in front of it.
type moto struct {
	once sync.Once
	env  *Env
	err  error
}

// MotoAccount is the account moto puts everything in (and the account
// the Manners proxy's event notifications name for a bucket with no
// owner of its own).
const MotoAccount = "123456789012"

// Moto returns the test bed on moto: its S3 and SQS, started on first use
// and stopped with the rest. Without moto_server installed the test skips
// (or, under $S3CLONE_REQUIRE_TESTBED, fails).
func (e *Env) Moto(t testing.TB) *Env {
	t.Helper()
	e.moto.once.Do(func() { e.moto.env, e.moto.err = e.startMoto() })
	if e.moto.err != nil {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("moto: %v", e.moto.err)
		}
		t.Skipf("moto: %v (it comes with the machine's Python: pip install 'moto[server]==5.2.1')", e.moto.err)
	}
	return e.moto.env
}

func (e *Env) startMoto() (*Env, error) {
	dir := filepath.Join(e.dir, "moto")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := e.spawnMoto(dir, nil)
	if err != nil {
		return nil, err
	}
	m := &Env{Root: e.Root, S3Endpoint: "http://" + addr, S3Direct: "http://" + addr, SQSEndpoint: "http://" + addr, dir: dir}
	m.S3 = m.Client(m.S3Endpoint)
	m.SQS = sqs.New(sqs.Options{
		Region: Region, BaseEndpoint: aws.String(m.SQSEndpoint),
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	return m, nil
}

// spawnMoto starts moto_server on a free loopback port, its log in dir,
// with environ added to its environment, and waits until it listens.
func (e *Env) spawnMoto(dir string, environ []string) (addr string, err error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return "", errors.New("moto_server is not on the PATH")
	}
	if addr, err = freeAddr(); err != nil {
		return "", err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "-H", host, "-p", port)
	cmd.Env = append(os.Environ(), environ...)
	log := filepath.Join(dir, "moto.log")
	if err := e.spawn(cmd, log); err != nil {
		return "", err
	}
	if err := waitTCP(addr, 60*time.Second); err != nil {
		rel, _ := filepath.Rel(e.dir, log)
		return "", fmt.Errorf("%w\n%s", err, e.LogTail(rel))
	}
	return addr, nil
}

// MotoProcess is a moto_server of a test's own, on a free loopback port,
// with every service moto implements and none of the rest of the test bed.
// The stack test bed (stackbed.StartMoto) builds on it: its SDK clients of
// moto's other services (CloudFormation, EC2, IAM, ECS, ...) live there,
// so that the packages testing S3 and SQS alone do not compile them.
type MotoProcess struct {
	// Endpoint is the server's URL, for every service.
	Endpoint string
	env      *Env
}

// StartMotoProcess starts a moto_server, stopped when the test ends.
// environ is added to its environment, e.g.
// "INITIAL_NO_AUTH_ACTION_COUNT=3" to enforce IAM after three requests.
// Under $S3CLONE_UNIT_ONLY the test skips; without moto_server on the PATH
// it skips too (or fails, under $S3CLONE_REQUIRE_TESTBED).
func StartMotoProcess(t testing.TB, environ ...string) *MotoProcess {
	t.Helper()
	if err := unitOnly(); err != nil {
		t.Skip(err)
	}
	p, err := startMotoProcess(environ)
	if err != nil {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("moto: %v", err)
		}
		t.Skipf("moto: %v (it comes with the machine's Python: pip install 'moto[server]==5.2.1')", err)
	}
	t.Cleanup(p.env.Stop)
	return p
}

func startMotoProcess(environ []string) (*MotoProcess, error) {
	dir, err := os.MkdirTemp("", "s3clone-moto-")
	if err != nil {
		return nil, err
	}
	e := &Env{dir: dir}
	addr, err := e.spawnMoto(dir, environ)
	if err != nil {
		e.Stop()
		return nil, err
	}
	return &MotoProcess{Endpoint: "http://" + addr, env: e}, nil
}

// Log is everything the server has written so far: a line per request,
// and its warnings (such as the resource types its CloudFormation skips).
func (p *MotoProcess) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.env.dir, "moto.log")) // a missing log reads as empty
	return string(b)
}

// LogTail is the end of the log, for failure messages.
func (p *MotoProcess) LogTail() string { return p.env.LogTail("moto.log") }
