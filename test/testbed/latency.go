package testbed

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// WithLatency puts a toxiproxy in front of the S3 server that delays every
// response by ms milliseconds, and returns its endpoint. This kernel has no
// netem, so the delay is added by a TCP proxy. The proxy stops with the
// testbed.
func (e *Env) WithLatency(t testing.TB, ms int) string {
	t.Helper()
	bin := filepath.Join(e.Root, ".tools", "toxiproxy", "server")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("toxiproxy not found at %s: run `make bench-tools`", bin)
	}
	api, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(api)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-host", host, "-port", port)
	if err := e.spawn(cmd, filepath.Join(e.dir, "toxiproxy.log")); err != nil {
		t.Fatal(err)
	}
	e.latency = append(e.latency, cmd)
	if err := waitTCP(api, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	listen, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	upstream := e.S3Direct[len("http://"):] // benchmarks measure the server, not the test bed's manners
	post(t, "http://"+api+"/proxies", map[string]any{"name": "s3", "listen": listen, "upstream": upstream})
	post(t, "http://"+api+"/proxies/s3/toxics", map[string]any{
		"name": "latency", "type": "latency", "stream": "downstream", "attributes": map[string]any{"latency": ms},
	})
	return "http://" + listen
}

func post(t testing.TB, url string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("toxiproxy %s: %s", url, resp.Status)
	}
}

// EnvironFor is Environ with another S3 endpoint, such as a latency proxy.
func (e *Env) EnvironFor(s3Endpoint string) []string {
	return e.environWith("AWS_ENDPOINT_URL_S3", s3Endpoint)
}

// environWith is Environ with the variable name set to value.
func (e *Env) environWith(name, value string) []string {
	env := e.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			env[i] = name + "=" + value
		}
	}
	return env
}
