package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// The AWS pages these tests hold the test bed to (the Amazon S3 User Guide):
//   - https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
//   - https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-filtering.html
//   - https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventNotifications.html
//   - https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
//   - https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-mapping-troubleshooting.html

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// ---- Unit tests: no servers. ----

func rule(prefix, suffix string) *struct {
	Rules []filterRule `xml:"S3Key>FilterRule"`
} {
	f := &struct {
		Rules []filterRule `xml:"S3Key>FilterRule"`
	}{}
	if prefix != "" {
		f.Rules = append(f.Rules, filterRule{"prefix", prefix})
	}
	if suffix != "" {
		f.Rules = append(f.Rules, filterRule{"suffix", suffix})
	}
	return f
}

func dest(prefix, suffix string, events ...string) destination {
	return destination{Events: events, Filter: rule(prefix, suffix)}
}

// The valid and invalid configurations of notification-how-to-filtering.html,
// and the event type families of its "same event types".
func TestConfigurationsOverlapAsTheFilteringPageSays(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		a, b destination
		want bool
	}{
		{"images/ and logs/ prefixes", dest("images/", "", "s3:ObjectCreated:Put"), dest("logs/", "", "s3:ObjectCreated:Put"), false},
		{".jpg and .png suffixes", dest("", ".jpg", "s3:ObjectCreated:Put"), dest("", ".png", "s3:ObjectCreated:Put"), false},
		{"one prefix, suffixes apart", dest("images", ".jpg", "s3:ObjectCreated:Put"), dest("images", ".png", "s3:ObjectCreated:Put"), false},
		{"the root prefix overlaps any", dest("", "", "s3:ObjectCreated:*"), dest("images", "", "s3:ObjectCreated:*"), true},
		{"jpg and pg suffixes, * and Put", dest("", "jpg", "s3:ObjectCreated:*"), dest("", "pg", "s3:ObjectCreated:Put"), true},
		{"prefix and suffix vs suffix", dest("images", "jpg", "s3:ObjectCreated:*"), dest("", "jpg", "s3:ObjectCreated:Put"), true},
		{"same filter, other event types", dest("image/", "", "s3:ObjectCreated:Put"), dest("image/", "", "s3:ObjectRemoved:*"), false},
		{"Created:* and Created:Copy", dest("a", "", "s3:ObjectCreated:*"), dest("ab", "", "s3:ObjectCreated:Copy"), true},
		{"Created:Put and Created:Copy", dest("a", "", "s3:ObjectCreated:Put"), dest("a", "", "s3:ObjectCreated:Copy"), false},
		{"Removed:* and DeleteMarkerCreated", dest("", "", "s3:ObjectRemoved:*"), dest("", "", "s3:ObjectRemoved:DeleteMarkerCreated"), true},
		{"one shared type among several", dest("", "", "s3:ObjectTagging:Put", "s3:ObjectCreated:Put"), dest("", "", "s3:ObjectCreated:Put"), true},
		{"prefixes that no key begins with both", dest("ab", "", "s3:ObjectCreated:Put"), dest("ac", "", "s3:ObjectCreated:Put"), false},
	} {
		if got := overlap(c.a, c.b); got != c.want {
			t.Errorf("%s: overlap = %v, want %v", c.name, got, c.want)
		}
		if got := overlap(c.b, c.a); got != c.want {
			t.Errorf("%s (swapped): overlap = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestConfigurationIsValidated(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		cfg  notificationConfig
		want string // "" for valid
	}{
		{"valid", notificationConfig{Queues: []destination{dest("a/", "", "s3:ObjectCreated:*"), dest("b/", "", "s3:ObjectCreated:*")}}, ""},
		{"overlap across kinds", notificationConfig{Queues: []destination{dest("a/", "", "s3:ObjectCreated:*")},
			Topics: []destination{dest("a/b", "", "s3:ObjectCreated:Put")}}, "Configurations overlap. Configurations on the same bucket cannot share a common event type."},
		{"unknown event", notificationConfig{Queues: []destination{dest("", "", "s3:ObjectCreated:Paste")}}, "The event is not supported for notifications"},
		{"no event", notificationConfig{Queues: []destination{{}}}, "The XML you provided was not well-formed or did not validate against our published schema"},
		{"two prefixes", notificationConfig{Queues: []destination{{Events: []string{"s3:ObjectCreated:*"}, Filter: &struct {
			Rules []filterRule `xml:"S3Key>FilterRule"`
		}{Rules: []filterRule{{"prefix", "a"}, {"Prefix", "b"}}}}}}, "Cannot specify more than one prefix rule in a filter."},
		{"bad rule name", notificationConfig{Queues: []destination{{Events: []string{"s3:ObjectCreated:*"}, Filter: &struct {
			Rules []filterRule `xml:"S3Key>FilterRule"`
		}{Rules: []filterRule{{"infix", "a"}}}}}}, "filter rule name must be either prefix or suffix"},
	} {
		err := c.cfg.validate()
		var ref *refusal
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (!errors.As(err, &ref) || ref.message != c.want || ref.status != http.StatusBadRequest):
			t.Errorf("%s: got %v, want 400 %q", c.name, err, c.want)
		}
	}
	cfg := notificationConfig{Queues: []destination{dest("", "", "s3:ObjectCreated:*")}}
	if err := cfg.validate(); err != nil || cfg.Queues[0].ID == "" {
		t.Errorf("a configuration without an Id should get one, as S3 gives: %v %q", err, cfg.Queues[0].ID)
	}
}

func TestFilterMatchesTheEncodedKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		d         destination
		name, key string
		want      bool
	}{
		{dest("images/", "jpg", "s3:ObjectCreated:Put"), "s3:ObjectCreated:Put", "images/a.jpg", true},
		{dest("images/", "jpg", "s3:ObjectCreated:Put"), "s3:ObjectCreated:Copy", "images/a.jpg", false},
		{dest("images/", "jpg", "s3:ObjectCreated:*"), "s3:ObjectCreated:Copy", "images/a.jpg", true},
		{dest("images/", "jpg", "s3:ObjectCreated:*"), "s3:ObjectCreated:Put", "images/a.png", false},
		{dest("images/", "jpg", "s3:ObjectCreated:*"), "s3:ObjectCreated:Put", "logs/a.jpg", false},
		{dest("", "", "s3:ObjectRemoved:*"), "s3:ObjectRemoved:DeleteMarkerCreated", "x", true},
		{dest("", "", "s3:ObjectRemoved:Delete"), "s3:ObjectRemoved:DeleteMarkerCreated", "x", false},
		// A space in a rule is written "+" (notification-how-to-filtering.html).
		{dest("my+dir/", "", "s3:ObjectCreated:*"), "s3:ObjectCreated:Put", "my dir/a", true},
		{dest("my dir/", "", "s3:ObjectCreated:*"), "s3:ObjectCreated:Put", "my dir/a", false},
	} {
		if got := c.d.matches(c.name, c.key); got != c.want {
			t.Errorf("%+v matches(%s, %q) = %v, want %v", c.d, c.name, c.key, got, c.want)
		}
	}
}

// The event message structure page: "The object key name value is URL
// encoded. For example, "red flower.jpg" becomes "red+flower.jpg"".
func TestEventKeyIsFormEncoded(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"red flower.jpg":   "red+flower.jpg",
		"a+b.txt":          "a%2Bb.txt",
		"dir/sub/x y":      "dir/sub/x+y",
		"é":                "%C3%A9",
		"100%":             "100%25",
		"k=v&w":            "k%3Dv%26w",
		"10:47:07.log":     "10%3A47%3A07.log",
		"this im + age.t":  "this+im+%2B+age.t",
		"tab\there\x01ctl": "tab%09here%01ctl",
	} {
		got := eventKey(key)
		if got != want {
			t.Errorf("eventKey(%q) = %q, want %q", key, got, want)
		}
		if back, err := url.QueryUnescape(got); err != nil || back != key {
			t.Errorf("eventKey(%q) = %q decodes to %q, %v", key, got, back, err)
		}
	}
}

func TestSequencersGrowAndCompareAsTheDocsSay(t *testing.T) {
	t.Parallel()
	prev := nextSequencer()
	for range 1000 {
		next := nextSequencer()
		if len(next) != 18 || !regexp.MustCompile(`^[0-9A-F]+$`).MatchString(next) {
			t.Fatalf("sequencer %q: want 18 hexadecimal digits", next)
		}
		if next <= prev || compareSequencers(prev, next) >= 0 {
			t.Fatalf("sequencer %q does not follow %q", next, prev)
		}
		prev = next
	}
	// "The sequencers can be of different lengths. To compare these values,
	// first right pad the shorter value with zeros, and then do a
	// lexicographical comparison."
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"0055AED6DCD90281E5", "0055AED6DCD90281E6", -1},
		{"0055AED6DCD90281E5", "0055AED6DCD90281E5", 0},
		{"617f08299329d189", "617f0837b476e463", -1},
		{"0055AED6DCD90281", "0055AED6DCD90281E5", -1},
		{"0055AED6DCD90282", "0055AED6DCD90281E5", 1},
	} {
		if got := compareSequencers(c.a, c.b); got != c.want {
			t.Errorf("compareSequencers(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestEventOfEachWrite(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		method, target string
		header         []string
		want           string // "" for none
	}{
		{http.MethodPut, "/b/k", nil, "ObjectCreated:Put"},
		{http.MethodPut, "/b/k", []string{"X-Amz-Copy-Source", "/b/src"}, "ObjectCreated:Copy"},
		{http.MethodPost, "/b/k?uploadId=u", nil, "ObjectCreated:CompleteMultipartUpload"},
		{http.MethodPost, "/b/k?uploads", nil, ""},
		{http.MethodPut, "/b/k?partNumber=1&uploadId=u", nil, ""},
		{http.MethodPut, "/b/k?partNumber=1&uploadId=u", []string{"X-Amz-Copy-Source", "/b/src"}, ""},
		{http.MethodPut, "/b/k?tagging", nil, "ObjectTagging:Put"},
		{http.MethodDelete, "/b/k?tagging", nil, "ObjectTagging:Delete"},
		{http.MethodDelete, "/b/k", nil, "ObjectRemoved:Delete"},
		{http.MethodDelete, "/b/k?uploadId=u", nil, ""},
		{http.MethodPut, "/b/k?acl", nil, ""},
		{http.MethodPut, "/b/k?retention", nil, ""},
		{http.MethodGet, "/b/k", nil, ""},
		{http.MethodPut, "/b", nil, ""},
		{http.MethodPost, "/b?delete", nil, ""},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		for i := 0; i+1 < len(c.header); i += 2 {
			r.Header.Set(c.header[i], c.header[i+1])
		}
		got, ok := eventOf(r, parseRequest(r))
		if (c.want == "") == ok || got != c.want {
			t.Errorf("%s %s %v: event %q %v, want %q", c.method, c.target, c.header, got, ok, c.want)
		}
	}
}

func sampleEvent(name string) objectEvent {
	return objectEvent{Name: name, Bucket: "bkt", Key: "a dir/x+y <&>.txt", Region: "eu-west-1", Size: 1024,
		ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "0055AED6DCD90281E5",
		Time: time.Date(2026, 12, 7, 10, 11, 12, 345678901, time.UTC), Requester: "AKIDEXAMPLE", SourceIP: "127.0.0.1",
		RequestID: "C3D13FE58DE4C810", HostID: "host", Account: "111122223333"}
}

// The record of "Example message when an object is created using a PUT
// request", field by field.
func TestS3RecordIsS3s(t *testing.T) {
	t.Parallel()
	body := s3Body(sampleEvent("ObjectCreated:Put"), "testConfigRule")
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	recs := got["Records"].([]any)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1: %s", len(recs), body)
	}
	rec := recs[0].(map[string]any)
	s3m := rec["s3"].(map[string]any)
	obj := s3m["object"].(map[string]any)
	bucket := s3m["bucket"].(map[string]any)
	for field, want := range map[string]any{
		"eventVersion": rec["eventVersion"], "eventSource": rec["eventSource"], "awsRegion": rec["awsRegion"],
		"eventTime": rec["eventTime"], "eventName": rec["eventName"],
		"principalId":      rec["userIdentity"].(map[string]any)["principalId"],
		"sourceIPAddress":  rec["requestParameters"].(map[string]any)["sourceIPAddress"],
		"x-amz-request-id": rec["responseElements"].(map[string]any)["x-amz-request-id"],
		"s3SchemaVersion":  s3m["s3SchemaVersion"], "configurationId": s3m["configurationId"],
		"bucket.name": bucket["name"], "bucket.arn": bucket["arn"],
		"owner": bucket["ownerIdentity"].(map[string]any)["principalId"],
		"key":   obj["key"], "size": obj["size"], "eTag": obj["eTag"], "sequencer": obj["sequencer"],
	} {
		expect := map[string]any{
			"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
			"eventTime": "2026-12-07T10:11:12.345Z", "eventName": "ObjectCreated:Put", "principalId": "AWS:AKIDEXAMPLE",
			"sourceIPAddress": "127.0.0.1", "x-amz-request-id": "C3D13FE58DE4C810", "s3SchemaVersion": "1.0",
			"configurationId": "testConfigRule", "bucket.name": "bkt", "bucket.arn": "arn:aws:s3:::bkt", "owner": "111122223333",
			"key": "a+dir/x%2By+%3C%26%3E.txt", "size": float64(1024), "eTag": "d41d8cd98f00b204e9800998ecf8427e",
			"sequencer": "0055AED6DCD90281E5",
		}[field]
		if want != expect {
			t.Errorf("%s = %v, want %v", field, want, expect)
		}
	}
	if _, ok := obj["versionId"]; ok {
		t.Errorf("versionId on an unversioned bucket's event: %s", body)
	}
	if strings.Contains(body, `\u003c`) {
		t.Errorf("HTML-escaped JSON, which S3 does not write: %s", body)
	}

	del := s3Body(objectEvent{Name: "ObjectRemoved:DeleteMarkerCreated", Bucket: "b", Key: "k", VersionID: "v1", Sequencer: "00AB", Time: time.Now()}, "c")
	var m s3Message
	if err := json.Unmarshal([]byte(del), &m); err != nil {
		t.Fatal(err)
	}
	o := m.Records[0].S3.Object
	if o.Size != nil || o.ETag != "" || o.VersionID != "v1" || o.Sequencer != "00AB" {
		t.Errorf("a delete's object: %+v, want no size or eTag, its version and sequencer", o)
	}
	tag := s3Body(objectEvent{Name: "ObjectTagging:Put", Bucket: "b", Key: "k", ETag: "e", Sequencer: "00AC", Time: time.Now()}, "c")
	m = s3Message{}
	if err := json.Unmarshal([]byte(tag), &m); err != nil {
		t.Fatal(err)
	}
	if r := m.Records[0]; r.EventVersion != "2.3" || r.S3.Object.ETag != "e" || r.S3.Object.Sequencer != "" || r.S3.Object.Size != nil {
		t.Errorf("a tagging event: %s, want version 2.3, its eTag, no size or sequencer", tag)
	}
}

// ev-events.html's "Object created" and "Object deleted" examples.
func TestEventBridgeEventIsEventBridges(t *testing.T) {
	t.Parallel()
	ev := sampleEvent("ObjectCreated:CompleteMultipartUpload")
	ev.VersionID = "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
	var got bridgeEvent
	if err := json.Unmarshal([]byte(bridgeBody(ev)), &got); err != nil {
		t.Fatal(err)
	}
	d := got.Detail
	if got.Version != "0" || got.DetailType != "Object Created" || got.Source != "aws.s3" || got.Account != "111122223333" ||
		got.Time != "2026-12-07T10:11:12Z" || got.Region != "eu-west-1" || !slices.Equal(got.Resources, []string{"arn:aws:s3:::bkt"}) ||
		!regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(got.ID) {
		t.Errorf("envelope: %+v", got)
	}
	if d.Version != "0" || d.Bucket.Name != "bkt" || d.Object.Key != ev.Key || d.Object.Size == nil || *d.Object.Size != 1024 ||
		d.Object.ETag != ev.ETag || d.Object.VersionID != ev.VersionID || d.Object.Sequencer != ev.Sequencer ||
		d.RequestID != ev.RequestID || d.Requester != "111122223333" || d.SourceIP != "127.0.0.1" || d.Reason != "CompleteMultipartUpload" {
		t.Errorf("detail: %+v", d)
	}
	ev = sampleEvent("ObjectRemoved:DeleteMarkerCreated")
	got = bridgeEvent{}
	if err := json.Unmarshal([]byte(bridgeBody(ev)), &got); err != nil {
		t.Fatal(err)
	}
	if got.DetailType != "Object Deleted" || got.Detail.Reason != "DeleteObject" || got.Detail.DeletionType != "Delete Marker Created" || got.Detail.Object.Size != nil {
		t.Errorf("delete marker: %+v", got)
	}
	for name, want := range map[string]string{"ObjectTagging:Put": "Object Tags Added", "ObjectTagging:Delete": "Object Tags Deleted", "ObjectCreated:Copy": "Object Created"} {
		if err := json.Unmarshal([]byte(bridgeBody(sampleEvent(name))), &got); err != nil || got.DetailType != want {
			t.Errorf("%s: detail-type %q, want %q (%v)", name, got.DetailType, want, err)
		}
	}
}

// recorder is a sender that keeps what it was given, in order.
type recorder struct {
	mu   sync.Mutex
	got  []delivery
	fail bool
}

func (r *recorder) send(_ context.Context, queue, body string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("refused")
	}
	r.got = append(r.got, delivery{due: time.Now(), queue: queue, body: body})
	return nil
}

func (r *recorder) sequencers(t *testing.T) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.got {
		var m s3Message
		if err := json.Unmarshal([]byte(d.body), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Records[0].S3.Object.Sequencer)
	}
	return out
}

func hubWithQueue(t *testing.T, rec *recorder, bucket string, k EventManners) *eventHub {
	h := newEventHub(rec.send)
	t.Cleanup(h.close)
	d := dest("", "", "s3:ObjectCreated:*", "s3:ObjectRemoved:*")
	d.ID, d.queueURL = "all", "q"
	h.configure(bucket, &notificationConfig{Queues: []destination{d}})
	h.manners[bucket] = k
	return h
}

func settle(t *testing.T, h *eventHub) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.settled(ctx); err != nil {
		t.Fatal(err)
	}
}

// The delivery knobs, with a recording sender standing in for SQS (the
// integration tests below do the same through the local SQS).
func TestEventHubKnobs(t *testing.T) {
	t.Parallel()
	t.Run("duplicate", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		h := hubWithQueue(t, rec, "b", EventManners{Duplicate: 1})
		for _, k := range []string{"a", "b", "c"} {
			ev := sampleEvent("ObjectCreated:Put")
			ev.Bucket, ev.Key, ev.Sequencer, ev.Time = "b", k, nextSequencer(), time.Now()
			h.emit(ev)
		}
		settle(t, h)
		seqs := rec.sequencers(t)
		if len(seqs) != 6 || h.stats.Sent != 6 {
			t.Fatalf("%d messages (%d counted), want each of 3 twice", len(seqs), h.stats.Sent)
		}
		slices.Sort(seqs)
		if len(slices.Compact(seqs)) != 3 {
			t.Errorf("copies should carry their event's sequencer: %v", seqs)
		}
	})
	t.Run("coalesce and hold", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		h := hubWithQueue(t, rec, "b", EventManners{Coalesce: time.Hour})
		first := sampleEvent("ObjectCreated:Put")
		first.Bucket, first.Key, first.ETag, first.Time = "b", "k", "first", time.Now()
		h.emit(first)
		second := first
		second.ETag, second.Sequencer = "second", nextSequencer()
		h.emit(second)
		versioned := first
		versioned.Key, versioned.VersionID = "v", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
		h.emit(versioned)
		h.emit(versioned)
		// The versioned key's events are due at once: some may be sent
		// already (read under the hub's lock, as its sender writes them).
		h.mu.Lock()
		if st := h.stats; st.Coalesced != 1 || st.Pending+st.Sent+st.Failed != 3 {
			t.Errorf("coalesced %d, pending %d, sent %d, failed %d: want the second write of k coalesced, the versioned key's both kept", st.Coalesced, st.Pending, st.Sent, st.Failed)
		}
		var due time.Duration
		for _, d := range h.due {
			due = max(due, time.Until(d.due))
		}
		h.mu.Unlock()
		if due < 59*time.Minute {
			t.Errorf("the first event is due in %v, want it held until its window closes", due)
		}
	})
	t.Run("hold next", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		h := hubWithQueue(t, rec, "b", EventManners{})
		h.holds["b/a"] = 300 * time.Millisecond
		a := sampleEvent("ObjectCreated:Put")
		a.Bucket, a.Key, a.Sequencer, a.Time = "b", "a", nextSequencer(), time.Now()
		h.emit(a)
		b := a
		b.Key, b.Sequencer, b.Time = "b", nextSequencer(), time.Now()
		h.emit(b)
		settle(t, h)
		if seqs := rec.sequencers(t); !slices.Equal(seqs, []string{b.Sequencer, a.Sequencer}) {
			t.Errorf("sent %v, want b's (%s) before the held a's (%s)", seqs, b.Sequencer, a.Sequencer)
		}
		if _, ok := h.holds["b/a"]; ok {
			t.Error("a hold should apply to the next event only")
		}
	})
	t.Run("failures are counted and settle", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{fail: true}
		h := hubWithQueue(t, rec, "b", EventManners{})
		ev := sampleEvent("ObjectCreated:Put")
		ev.Bucket, ev.Time = "b", time.Now()
		h.emit(ev)
		settle(t, h)
		if h.stats.Failed != 1 || h.stats.Sent != 0 {
			t.Errorf("stats %+v, want one failure", h.stats)
		}
	})
}

// ---- Integration tests: the proxy in front of versitygw, the local SQS. ----

// queueARN is the ARN of a local queue.
func queueARN(t *testing.T, env *Env, queueURL string) string {
	t.Helper()
	out, err := env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}

// drain waits for every event due to be sent, then receives (and deletes)
// every message in the queue, in the order the queue gives them.
func drain(t *testing.T, env *Env, queueURL string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := env.Manners().EventsSettled(ctx); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for {
		out, err := env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, VisibilityTimeout: 300})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return bodies
		}
		for _, msg := range out.Messages {
			bodies = append(bodies, aws.ToString(msg.Body))
			if _, err := env.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: msg.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// records decodes S3 event messages, leaving out test events.
func records(t *testing.T, bodies []string) []s3Record {
	t.Helper()
	var out []s3Record
	for _, b := range bodies {
		if strings.Contains(b, `"s3:TestEvent"`) {
			continue
		}
		var m s3Message
		if err := json.Unmarshal([]byte(b), &m); err != nil || len(m.Records) != 1 {
			t.Fatalf("not one S3 event record (%v): %s", err, b)
		}
		out = append(out, m.Records[0])
	}
	return out
}

// decodedKey is a record's key as it names the object.
func decodedKey(t *testing.T, r s3Record) string {
	t.Helper()
	k, err := url.QueryUnescape(r.S3.Object.Key)
	if err != nil {
		t.Fatalf("key %q: %v", r.S3.Object.Key, err)
	}
	return k
}

func queueTo(arn, id string, prefix, suffix string, events ...s3types.Event) s3types.QueueConfiguration {
	c := s3types.QueueConfiguration{Id: aws.String(id), QueueArn: aws.String(arn), Events: events}
	var rules []s3types.FilterRule
	if prefix != "" {
		rules = append(rules, s3types.FilterRule{Name: s3types.FilterRuleNamePrefix, Value: aws.String(prefix)})
	}
	if suffix != "" {
		rules = append(rules, s3types.FilterRule{Name: s3types.FilterRuleNameSuffix, Value: aws.String(suffix)})
	}
	if rules != nil {
		c.Filter = &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: rules}}
	}
	return c
}

func putNotification(c *s3.Client, bucket string, cfg s3types.NotificationConfiguration) error {
	_, err := c.PutBucketNotificationConfiguration(context.Background(), &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket), NotificationConfiguration: &cfg})
	return err
}

// notifying makes a bucket whose every created, removed and tagging event
// goes to a fresh queue (configuration "all"), the test event drained.
func notifying(t *testing.T, env *Env) (bucket, queueURL string, c *s3.Client) {
	t.Helper()
	bucket, c = env.Bucket(t), env.Manners().Client(bucket)
	queueURL, _ = env.Queue(t, 0)
	cfg := s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{queueTo(queueARN(t, env, queueURL), "all", "", "",
		s3types.EventS3ObjectCreated, s3types.EventS3ObjectRemoved, "s3:ObjectTagging:*")}}
	if err := putNotification(c, bucket, cfg); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, env, queueURL); len(got) != 1 || !strings.Contains(got[0], `"Event":"s3:TestEvent"`) {
		t.Fatalf("after configuring, the queue holds %q, want S3's one test event", got)
	}
	return bucket, queueURL, c
}

func apiError(err error) (code, msg string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	return "", ""
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) *s3.PutObjectOutput {
	t.Helper()
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return out
}

func TestNotificationConfigurationAsS3KeepsIt(t *testing.T) {
	env := Get(t)
	t.Parallel()
	ctx := context.Background()
	m := env.Manners()
	bucket := env.Bucket(t)
	c := m.Client(bucket)
	get := func() *s3.GetBucketNotificationConfigurationOutput {
		t.Helper()
		out, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := get(); len(out.QueueConfigurations)+len(out.TopicConfigurations)+len(out.LambdaFunctionConfigurations) != 0 || out.EventBridgeConfiguration != nil {
		t.Fatalf("a new bucket's configuration: %+v, want S3's empty one", out)
	}

	q, _ := env.Queue(t, 0)
	arn := queueARN(t, env, q)
	want := s3types.NotificationConfiguration{
		QueueConfigurations: []s3types.QueueConfiguration{
			queueTo(arn, "images", "img/", ".jpg", s3types.EventS3ObjectCreated),
			queueTo(arn, "removed", "img/", "", s3types.EventS3ObjectRemoved),
		},
		TopicConfigurations: []s3types.TopicConfiguration{{Id: aws.String("topic"), TopicArn: aws.String("arn:aws:sns:us-east-1:123456789012:t"),
			Events: []s3types.Event{"s3:ObjectTagging:*"}}},
		LambdaFunctionConfigurations: []s3types.LambdaFunctionConfiguration{{Id: aws.String("fn"), LambdaFunctionArn: aws.String("arn:aws:lambda:us-east-1:123456789012:function:f"),
			Events: []s3types.Event{s3types.EventS3ObjectRestoreCompleted}}},
		EventBridgeConfiguration: &s3types.EventBridgeConfiguration{},
	}
	if err := putNotification(c, bucket, want); err != nil {
		t.Fatal(err)
	}
	got := get()
	if len(got.QueueConfigurations) != 2 || len(got.TopicConfigurations) != 1 || len(got.LambdaFunctionConfigurations) != 1 || got.EventBridgeConfiguration == nil {
		t.Fatalf("GET answered %+v, want what was put", got)
	}
	for i, qc := range got.QueueConfigurations {
		w := want.QueueConfigurations[i]
		if aws.ToString(qc.Id) != aws.ToString(w.Id) || aws.ToString(qc.QueueArn) != arn || !slices.Equal(qc.Events, w.Events) ||
			qc.Filter == nil || len(qc.Filter.Key.FilterRules) != len(w.Filter.Key.FilterRules) {
			t.Errorf("queue configuration %d: %+v, want %+v", i, qc, w)
			continue
		}
		for j, r := range qc.Filter.Key.FilterRules {
			if r.Name != w.Filter.Key.FilterRules[j].Name || aws.ToString(r.Value) != aws.ToString(w.Filter.Key.FilterRules[j].Value) {
				t.Errorf("queue configuration %d rule %d: %s=%s", i, j, r.Name, aws.ToString(r.Value))
			}
		}
	}
	if tc := got.TopicConfigurations[0]; aws.ToString(tc.TopicArn) != "arn:aws:sns:us-east-1:123456789012:t" || aws.ToString(tc.Id) != "topic" {
		t.Errorf("topic configuration: %+v", tc)
	}
	if fc := got.LambdaFunctionConfigurations[0]; aws.ToString(fc.LambdaFunctionArn) != "arn:aws:lambda:us-east-1:123456789012:function:f" ||
		!slices.Equal(fc.Events, []s3types.Event{s3types.EventS3ObjectRestoreCompleted}) {
		t.Errorf("function configuration: %+v", fc)
	}
	// One test event to the queue, which two configurations name.
	bodies := drain(t, env, q)
	var test testEvent
	if len(bodies) != 1 || json.Unmarshal([]byte(bodies[0]), &test) != nil || test.Event != "s3:TestEvent" || test.Service != "Amazon S3" || test.Bucket != bucket {
		t.Fatalf("queue holds %q, want one s3:TestEvent for %s", bodies, bucket)
	}

	refused := func(cfg s3types.NotificationConfiguration, wantMsg string) {
		t.Helper()
		err := putNotification(c, bucket, cfg)
		if code, msg := apiError(err); code != "InvalidArgument" || !strings.HasPrefix(msg, wantMsg) {
			t.Errorf("put %+v: %v, want 400 InvalidArgument %q", cfg, err, wantMsg)
		}
		if now := get(); len(now.QueueConfigurations) != 2 {
			t.Errorf("a refused PUT changed the configuration: %+v", now)
		}
	}
	refused(s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{
		queueTo(arn, "a", "logs/", "", s3types.EventS3ObjectCreated),
		queueTo(arn, "b", "logs/2026/", "", s3types.EventS3ObjectCreatedPut),
	}}, "Configurations overlap. Configurations on the same bucket cannot share a common event type.")
	refused(s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{
		queueTo("arn:aws:sqs:us-east-1:123456789012:"+Name("missing"), "a", "", "", s3types.EventS3ObjectCreated),
	}}, "Unable to validate the following destination configurations")

	// Overlapping prefixes with suffixes apart are valid; a PUT replaces all.
	if err := putNotification(c, bucket, s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{
		queueTo(arn, "jpg", "images", ".jpg", s3types.EventS3ObjectCreatedPut),
		queueTo(arn, "png", "images", ".png", s3types.EventS3ObjectCreatedPut),
	}}); err != nil {
		t.Fatal(err)
	}
	if now := get(); len(now.QueueConfigurations) != 2 || aws.ToString(now.QueueConfigurations[0].Id) != "jpg" || len(now.TopicConfigurations) != 0 || now.EventBridgeConfiguration != nil {
		t.Errorf("after a second PUT: %+v, want it alone", now)
	}
	// The empty configuration turns events off.
	if err := putNotification(c, bucket, s3types.NotificationConfiguration{}); err != nil {
		t.Fatal(err)
	}
	if now := get(); len(now.QueueConfigurations) != 0 {
		t.Errorf("after an empty PUT: %+v", now)
	}
	drain(t, env, q)
	put(t, c, bucket, "images/a.jpg", "x")
	if got := drain(t, env, q); len(got) != 0 {
		t.Errorf("a bucket without configuration sent %q", got)
	}

	// Only the root caller, here; a user without rights is refused.
	env.User(t, "EVENTSUSER", "events-user-secret")
	user := s3.New(c.Options(), func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("EVENTSUSER", "events-user-secret", "")
	})
	_, err := user.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	if code, _ := apiError(err); code != "AccessDenied" {
		t.Errorf("a user without rights: %v, want 403 AccessDenied", err)
	}
	_, err = c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(Name("nobucket"))})
	if code, _ := apiError(err); code != "NoSuchBucket" {
		t.Errorf("a missing bucket: %v, want NoSuchBucket", err)
	}
}

// Every kind of write, each making its event, with awkward keys.
func TestEventsForEveryWrite(t *testing.T) {
	env := Get(t)
	t.Parallel()
	ctx := context.Background()
	start := time.Now().Add(-time.Second)
	bucket, q, c := notifying(t, env)
	keys := []string{"plain.txt", "with space.txt", "a+b=c&d.txt", "dir/sub/é ü.txt", "100%/x", "tilde~(1)*.txt", "dup"}
	type want struct {
		name string
		size int64
		etag string
	}
	wants := map[string][]want{}
	for i, k := range keys {
		body := strings.Repeat("x", 10+i)
		out := put(t, c, bucket, k, body)
		wants[k] = append(wants[k], want{"ObjectCreated:Put", int64(len(body)), strings.Trim(aws.ToString(out.ETag), `"`)})
	}
	out := put(t, c, bucket, "dup", "second body")
	wants["dup"] = append(wants["dup"], want{"ObjectCreated:Put", 11, strings.Trim(aws.ToString(out.ETag), `"`)})

	copied := "copies/of plain+one.txt"
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String(copied),
		CopySource: aws.String(bucket + "/" + url.PathEscape(keys[0]))}); err != nil {
		t.Fatal(err)
	}
	wants[copied] = append(wants[copied], want{"ObjectCreated:Copy", 10, wants[keys[0]][0].etag})

	big := "multi part/ü.bin"
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(big)})
	if err != nil {
		t.Fatal(err)
	}
	var parts []s3types.CompletedPart
	for i, size := range []int{5 << 20, 1000} {
		p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(big), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(make([]byte, size))})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s3types.CompletedPart{ETag: p.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(big),
		UploadId: up.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		t.Fatal(err)
	}
	wants[big] = append(wants[big], want{"ObjectCreated:CompleteMultipartUpload", 5<<20 + 1000, strings.Trim(aws.ToString(done.ETag), `"`)})

	tagged := keys[1]
	if _, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(tagged),
		Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(tagged)}); err != nil {
		t.Fatal(err)
	}
	wants[tagged] = append(wants[tagged], want{"ObjectTagging:Put", -1, wants[tagged][0].etag}, want{"ObjectTagging:Delete", -1, wants[tagged][0].etag})

	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(keys[2])}); err != nil {
		t.Fatal(err)
	}
	for _, quiet := range []bool{false, true} {
		ks := keys[3:5]
		if quiet {
			ks = keys[5:6]
		}
		var ids []s3types.ObjectIdentifier
		for _, k := range ks {
			ids = append(ids, s3types.ObjectIdentifier{Key: aws.String(k)})
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket), Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(quiet)}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Errors) != 0 || quiet != (len(out.Deleted) == 0) {
			t.Errorf("DeleteObjects quiet=%v answered %d deleted, %v: the proxy must answer as asked", quiet, len(out.Deleted), out.Errors)
		}
	}
	for _, k := range append([]string{keys[2]}, keys[3:6]...) {
		wants[k] = append(wants[k], want{"ObjectRemoved:Delete", -1, ""})
	}

	recs := records(t, drain(t, env, q))
	got := map[string][]s3Record{}
	for _, r := range recs {
		k := decodedKey(t, r)
		if r.S3.Object.Key != eventKey(k) {
			t.Errorf("key %q sent as %q, want %q", k, r.S3.Object.Key, eventKey(k))
		}
		got[k] = append(got[k], r)
	}
	for _, raw := range []string{"with+space.txt", "a%2Bb%3Dc%26d.txt", "dir/sub/%C3%A9+%C3%BC.txt", "100%25/x"} {
		if !slices.ContainsFunc(recs, func(r s3Record) bool { return r.S3.Object.Key == raw }) {
			t.Errorf("no event names the key as S3 encodes it, %q", raw)
		}
	}
	total := 0
	for k, ws := range wants {
		total += len(ws)
		// Creates and deletes in sequencer order, then tagging events
		// (which have none) by name.
		rs := got[k]
		tagFirst := func(name string) bool { return strings.HasPrefix(name, "ObjectTagging:") }
		slices.SortFunc(rs, func(a, b s3Record) int {
			if c := compareSequencers(a.S3.Object.Sequencer, b.S3.Object.Sequencer); c != 0 || !tagFirst(a.EventName) {
				return c
			}
			return strings.Compare(a.EventName, b.EventName)
		})
		slices.SortStableFunc(ws, func(a, b want) int {
			switch {
			case tagFirst(a.name) && tagFirst(b.name):
				return strings.Compare(a.name, b.name)
			case tagFirst(a.name):
				return -1
			case tagFirst(b.name):
				return 1
			}
			return 0
		})
		if len(rs) != len(ws) {
			t.Errorf("%q: %d events, want %d", k, len(rs), len(ws))
			continue
		}
		for i, w := range ws {
			r, o := rs[i], rs[i].S3.Object
			if r.EventName != w.name || o.ETag != w.etag || (w.size >= 0) != (o.Size != nil) || o.Size != nil && *o.Size != w.size {
				t.Errorf("%q event %d (in sequencer order): %s size %v eTag %q, want %s size %d eTag %q", k, i, r.EventName, o.Size, o.ETag, w.name, w.size, w.etag)
			}
			tagging := strings.HasPrefix(w.name, "ObjectTagging:")
			if (o.Sequencer == "") != tagging || o.VersionID != "" {
				t.Errorf("%q %s: sequencer %q version %q, want a sequencer on creates and deletes, no version", k, r.EventName, o.Sequencer, o.VersionID)
			}
			when, err := time.Parse("2006-01-02T15:04:05.000Z", r.EventTime)
			if err != nil || when.Before(start) || when.After(time.Now()) || r.EventVersion != map[bool]string{true: "2.3", false: "2.1"}[tagging] ||
				r.EventSource != "aws:s3" || r.AWSRegion != Region || r.S3.SchemaVersion != "1.0" || r.S3.ConfigurationID != "all" ||
				r.S3.Bucket.Name != bucket || r.S3.Bucket.ARN != "arn:aws:s3:::"+bucket || r.UserIdentity.PrincipalID != "AWS:"+AccessKey ||
				r.RequestParameters.SourceIPAddress != "127.0.0.1" || r.ResponseElements.RequestID == "" {
				t.Errorf("%q: record %+v", k, r)
			}
		}
	}
	if len(recs) != total {
		t.Errorf("%d events, want %d", len(recs), total)
	}
}

func TestEventsOnAVersionedBucket(t *testing.T) {
	env := Get(t)
	t.Parallel()
	ctx := context.Background()
	bucket, q, c := notifying(t, env)
	if _, err := env.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	// Every write of a versioned object makes its event: no coalescing.
	env.Manners().Events(bucket, EventManners{Coalesce: time.Minute})
	v1 := put(t, c, bucket, "k", "one")
	v2 := put(t, c, bucket, "k", "two!")
	marker, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), VersionId: v1.VersionId}); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(v1.VersionId) == "" || !aws.ToBool(marker.DeleteMarker) {
		t.Fatalf("versitygw did not version the bucket: %v %v", aws.ToString(v1.VersionId), marker.DeleteMarker)
	}
	recs := records(t, drain(t, env, q))
	slices.SortFunc(recs, func(a, b s3Record) int { return compareSequencers(a.S3.Object.Sequencer, b.S3.Object.Sequencer) })
	want := []struct{ name, version string }{
		{"ObjectCreated:Put", aws.ToString(v1.VersionId)},
		{"ObjectCreated:Put", aws.ToString(v2.VersionId)},
		{"ObjectRemoved:DeleteMarkerCreated", aws.ToString(marker.VersionId)},
		{"ObjectRemoved:Delete", aws.ToString(v1.VersionId)},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		if recs[i].EventName != w.name || recs[i].S3.Object.VersionID != w.version {
			t.Errorf("event %d: %s version %q, want %s version %q", i, recs[i].EventName, recs[i].S3.Object.VersionID, w.name, w.version)
		}
	}
}

func TestEventsFollowTheFilters(t *testing.T) {
	env := Get(t)
	t.Parallel()
	ctx := context.Background()
	bucket := env.Bucket(t)
	c := env.Manners().Client(bucket)
	qa, _ := env.Queue(t, 0)
	qb, _ := env.Queue(t, 0)
	a, b := queueARN(t, env, qa), queueARN(t, env, qb)
	if err := putNotification(c, bucket, s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{
		queueTo(a, "jpegs", "img/", ".jpg", s3types.EventS3ObjectCreatedPut),
		queueTo(a, "spaced", "my+dir/", "", s3types.EventS3ObjectCreated), // a space in a rule is "+"
		queueTo(b, "logs", "log/", "", s3types.EventS3ObjectCreated),
		queueTo(b, "gone", "img/", "", s3types.EventS3ObjectRemovedDelete),
	}}); err != nil {
		t.Fatal(err)
	}
	drain(t, env, qa)
	drain(t, env, qb)
	for _, k := range []string{"img/a.jpg", "img/a.png", "log/x", "other/y.jpg", "my dir/a"} {
		put(t, c, bucket, k, "x")
	}
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String("img/c.jpg"),
		CopySource: aws.String(bucket + "/img/a.jpg")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("img/a.jpg")}); err != nil {
		t.Fatal(err)
	}
	seen := func(q string) []string {
		var out []string
		for _, r := range records(t, drain(t, env, q)) {
			out = append(out, r.S3.ConfigurationID+" "+r.EventName+" "+decodedKey(t, r))
		}
		slices.Sort(out)
		return out
	}
	if got, want := seen(qa), []string{"jpegs ObjectCreated:Put img/a.jpg", "spaced ObjectCreated:Put my dir/a"}; !slices.Equal(got, want) {
		t.Errorf("queue a got %q, want %q", got, want)
	}
	if got, want := seen(qb), []string{"gone ObjectRemoved:Delete img/a.jpg", "logs ObjectCreated:Put log/x"}; !slices.Equal(got, want) {
		t.Errorf("queue b got %q, want %q", got, want)
	}
}

func TestEventMannersThroughSQS(t *testing.T) {
	env := Get(t)
	t.Parallel()
	m := env.Manners()
	t.Run("duplicate", func(t *testing.T) {
		t.Parallel()
		bucket, q, c := notifying(t, env)
		m.Events(bucket, EventManners{Duplicate: 1})
		for _, k := range []string{"a", "b", "c"} {
			put(t, c, bucket, k, k)
		}
		recs := records(t, drain(t, env, q))
		count := map[string]int{}
		for _, r := range recs {
			count[decodedKey(t, r)+" "+r.S3.Object.Sequencer]++
		}
		if len(recs) != 6 || len(count) != 3 {
			t.Errorf("%d messages, %d distinct events: want each of 3 events twice, %v", len(recs), len(count), count)
		}
	})
	t.Run("coalesce", func(t *testing.T) {
		t.Parallel()
		bucket, q, c := notifying(t, env)
		m.Events(bucket, EventManners{Coalesce: 1500 * time.Millisecond})
		first := put(t, c, bucket, "k", "first")
		put(t, c, bucket, "k", "second, longer")
		put(t, c, bucket, "other", "x")
		coalesced := m.EventStats().Coalesced
		recs := records(t, drain(t, env, q))
		if len(recs) != 2 {
			t.Fatalf("%d events, want one for k and one for other: %+v", len(recs), recs)
		}
		for _, r := range recs {
			if decodedKey(t, r) == "k" && (r.S3.Object.ETag != strings.Trim(aws.ToString(first.ETag), `"`) || *r.S3.Object.Size != 5) {
				t.Errorf("the coalesced event carries eTag %q size %d, want the first write's %s, 5", r.S3.Object.ETag, *r.S3.Object.Size, aws.ToString(first.ETag))
			}
		}
		if coalesced < 1 {
			t.Errorf("coalesced count %d, want at least this test's one", coalesced)
		}
	})
	t.Run("hold next", func(t *testing.T) {
		t.Parallel()
		bucket, q, c := notifying(t, env)
		m.HoldNext(bucket, "a", 500*time.Millisecond)
		put(t, c, bucket, "a", "1")
		put(t, c, bucket, "b", "2")
		put(t, c, bucket, "a", "3") // after the held one: not held
		if m.EventsPending() == 0 {
			t.Error("nothing pending while an event is held")
		}
		recs := records(t, drain(t, env, q))
		var order []string
		for _, r := range recs {
			order = append(order, decodedKey(t, r))
		}
		if !slices.Equal(order, []string{"b", "a", "a"}) || compareSequencers(recs[2].S3.Object.Sequencer, recs[1].S3.Object.Sequencer) >= 0 {
			t.Errorf("arrived %v (%+v), want b, then a's second event, then its first, held", order, recs)
		}
	})
	t.Run("delay and jitter", func(t *testing.T) {
		t.Parallel()
		bucket, q, c := notifying(t, env)
		m.Events(bucket, EventManners{Delay: 300 * time.Millisecond, Jitter: 200 * time.Millisecond})
		start := time.Now()
		keys := []string{"j0", "j1", "j2", "j3", "j4", "j5", "j6", "j7"}
		for _, k := range keys {
			put(t, c, bucket, k, k)
		}
		out, err := env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(q), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) < 300*time.Millisecond && len(out.Messages) != 0 {
			t.Errorf("%d events arrived before their delay", len(out.Messages))
		}
		var got []string
		for _, r := range records(t, drain(t, env, q)) {
			got = append(got, decodedKey(t, r))
		}
		slices.Sort(got)
		if !slices.Equal(got, keys) {
			t.Errorf("got events for %v, want one for each of %v", got, keys)
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Error("every event settled before its delay")
		}
	})
}

func TestEventBridgeEventsReachTheRulesQueue(t *testing.T) {
	env := Get(t)
	t.Parallel()
	ctx := context.Background()
	m := env.Manners()
	bucket := env.Bucket(t)
	c := m.Client(bucket)
	q, _ := env.Queue(t, 0)
	m.EventBridgeRule(bucket, q)
	key := "dir/a b+c:d é.txt"
	other, _ := env.Queue(t, 0)
	if err := putNotification(c, bucket, s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{
		queueTo(queueARN(t, env, other), "q", "", "", s3types.EventS3ObjectCreated)}}); err != nil {
		t.Fatal(err)
	}
	put(t, c, bucket, key, "before")
	if got := drain(t, env, q); len(got) != 0 {
		t.Fatalf("events before EventBridge was enabled: %q", got)
	}
	if got := records(t, drain(t, env, other)); len(got) != 1 {
		t.Fatalf("the queue configuration got %d events, want 1", len(got))
	}
	if err := putNotification(c, bucket, s3types.NotificationConfiguration{EventBridgeConfiguration: &s3types.EventBridgeConfiguration{}}); err != nil {
		t.Fatal(err)
	}
	out := put(t, c, bucket, key, "hello")
	if _, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	bodies := drain(t, env, q)
	var evs []bridgeEvent
	for _, b := range bodies {
		var e bridgeEvent
		if err := json.Unmarshal([]byte(b), &e); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		evs = append(evs, e)
	}
	types := map[string]bridgeEvent{}
	for _, e := range evs {
		types[e.DetailType] = e
		d := e.Detail
		if e.Source != "aws.s3" || e.Version != "0" || e.Region != Region || !slices.Equal(e.Resources, []string{"arn:aws:s3:::" + bucket}) ||
			d.Bucket.Name != bucket || d.Object.Key != key || d.Version != "0" || d.RequestID == "" {
			t.Errorf("event %+v", e)
		}
	}
	if len(evs) != 4 || len(types) != 4 {
		t.Fatalf("%d events of %d types, want Object Created, Tags Added, Tags Deleted, Deleted: %q", len(evs), len(types), bodies)
	}
	created, deleted := types["Object Created"].Detail, types["Object Deleted"].Detail
	if created.Reason != "PutObject" || created.Object.Size == nil || *created.Object.Size != 5 || created.Object.ETag != strings.Trim(aws.ToString(out.ETag), `"`) {
		t.Errorf("Object Created: %+v", created)
	}
	if deleted.Reason != "DeleteObject" || deleted.DeletionType != "Permanently Deleted" || compareSequencers(created.Object.Sequencer, deleted.Object.Sequencer) >= 0 {
		t.Errorf("Object Deleted: %+v, want a permanent delete sequenced after the create (%s)", deleted, created.Object.Sequencer)
	}
	if tags := types["Object Tags Added"].Detail; tags.Object.ETag != created.Object.ETag || tags.Reason != "" {
		t.Errorf("Object Tags Added: %+v", tags)
	}
}
