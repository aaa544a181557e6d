package testbed

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region puts bucket in region: from now on it answers only requests
// signed for that region, and says so as S3 does. The first use of a
// region starts a versitygw for it over the same data.
func (m *Manners) Region(t testing.TB, bucket, region string) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.servers[region]; !ok {
		endpoint, err := m.env.startRegion(region)
		if err != nil {
			t.Fatal(err)
		}
		m.servers[region] = endpoint
	}
	m.regions[bucket] = region
}

func (m *Manners) region(bucket string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.regions[bucket]; ok {
		return r
	}
	return Region
}

func (m *Manners) server(bucket string) string {
	r := m.region(bucket)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.servers[r]
}

// client is a root client of the server holding bucket, signing for its region.
func (m *Manners) client(bucket string) *s3.Client {
	c := m.env.Client(m.server(bucket))
	return s3.New(c.Options(), func(o *s3.Options) { o.Region = m.region(bucket) })
}

// Client is a root client reaching bucket through the proxy, signing for
// the bucket's region: a test's view of S3 as the binaries see it.
func (m *Manners) Client(bucket string) *s3.Client {
	c := m.env.Client(m.URL)
	return s3.New(c.Options(), func(o *s3.Options) { o.Region = m.region(bucket) })
}

// startRegion starts a versitygw serving the testbed's data as region.
func (e *Env) startRegion(region string) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(e.versitygw, "--access", AccessKey, "--secret", SecretKey, "--port", addr, "--region", region,
		"--iam-dir", filepath.Join(e.dir, "iam"), "--iam-cache-disable", "--keep-alive", "--quiet", "posix", "--versioning-dir", e.versions(), filepath.Join(e.dir, "s3"))
	if err := e.spawn(cmd, filepath.Join(e.dir, "versitygw-"+region+".log")); err != nil {
		return "", err
	}
	if err := waitTCP(addr, 30*time.Second); err != nil {
		return "", errors.Join(err, errors.New(e.LogTail("versitygw-"+region+".log")))
	}
	return "http://" + addr, nil
}
