package testbed

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// PartialSendProxy is an SQS proxy that lets the first SendMessageBatch
// calls through, then half-fails one of at least two entries: the first
// half of its entries reach the queue, the rest come back in Failed as a
// sender fault, which SQS answers for entries it refuses. Every other call
// passes untouched.
type PartialSendProxy struct {
	URL string
	// Accepted and Refused count the entries of the half-failed call.
	Accepted, Refused atomic.Int64
	calls             atomic.Int64
	done              atomic.Bool
}

// PartialSend starts a PartialSendProxy in front of the SQS server that
// half-fails the first SendMessageBatch call of two entries or more after
// the first after calls.
func (e *Env) PartialSend(t testing.TB, after int) *PartialSendProxy {
	t.Helper()
	upstream, err := url.Parse(e.SQSEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &PartialSendProxy{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(upstream)
		r.Out.Host = r.In.Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), "SendMessageBatch") || p.calls.Add(1) <= int64(after) || p.done.Load() {
			proxy.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req struct{ Entries []json.RawMessage }
		if json.Unmarshal(body, &req) != nil || len(req.Entries) < 2 || !p.done.CompareAndSwap(false, true) {
			r.Body = io.NopCloser(bytes.NewReader(body))
			proxy.ServeHTTP(w, r)
			return
		}
		p.halfFail(t, w, r, body, upstream)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// halfFail forwards the first half of a SendMessageBatch's entries and
// answers for all of them. (local-aws-sqs does not check signatures, so the
// shortened request need not be signed again.)
func (p *PartialSendProxy) halfFail(t testing.TB, w http.ResponseWriter, r *http.Request, body []byte, upstream *url.URL) {
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	entries, _ := req["Entries"].([]any)
	keep := max(1, len(entries)/2)
	req["Entries"] = entries[:keep]
	short, _ := json.Marshal(req) // it was just unmarshalled from JSON
	out, err := http.NewRequest(http.MethodPost, upstream.String()+r.URL.Path, bytes.NewReader(short))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out.Header = r.Header.Clone()
	out.Header.Set("Content-Length", strconv.Itoa(len(short)))
	out.ContentLength = int64(len(short))
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("partial send: upstream answered %s (%v)", resp.Status, err)
		http.Error(w, "upstream failed", http.StatusBadGateway)
		return
	}
	failed, _ := answer["Failed"].([]any)
	for _, e := range entries[keep:] {
		id, _ := e.(map[string]any)["Id"].(string)
		failed = append(failed, map[string]any{"Id": id, "SenderFault": true, "Code": "InvalidParameterValue", "Message": "refused by the test bed"})
	}
	answer["Failed"] = failed
	p.Accepted.Add(int64(keep))
	p.Refused.Add(int64(len(entries) - keep))
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if err := json.NewEncoder(w).Encode(answer); err != nil {
		t.Errorf("partial send: %v", err)
	}
}

// EnvironForSQS is Environ with another SQS endpoint.
func (e *Env) EnvironForSQS(sqsEndpoint string) []string {
	return e.environWith("AWS_ENDPOINT_URL_SQS", sqsEndpoint)
}
