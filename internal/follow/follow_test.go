package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// s3Body is an S3 event notification of one record, as the S3 user guide's
// "Event message structure" shows it (the key already URL-encoded).
func s3Body(bucket, name, encodedKey string, at time.Time, seq string) []byte {
	return fmt.Appendf(nil, `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
"eventTime":%q,"eventName":%q,"userIdentity":{"principalId":"AWS:X"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},
"responseElements":{"x-amz-request-id":"R","x-amz-id-2":"H"},"s3":{"s3SchemaVersion":"1.0","configurationId":"c",
"bucket":{"name":%q,"ownerIdentity":{"principalId":"O"},"arn":"arn:aws:s3:::%s"},
"object":{"key":%q,"size":5,"eTag":"e","sequencer":%q}}}]}`, at.UTC().Format("2006-01-02T15:04:05.000Z"), name, bucket, bucket, encodedKey, seq)
}

func TestDecodeReadsS3sEventsTestEventAndEventBridge(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 10, 0, 0, 123e6, time.UTC)
	got, test, err := Decode(s3Body("b", "ObjectCreated:Put", "photos/red+flower%21%2B.jpg", at, "0055AED6DCD90281E5"))
	if err != nil || test || len(got) != 1 {
		t.Fatalf("Decode = %v, %v, %v", got, test, err)
	}
	want := Change{Bucket: "b", Key: "photos/red flower!+.jpg", Name: "ObjectCreated:Put", Time: at, Sequencer: "0055AED6DCD90281E5", ETag: "e", Size: 5}
	if got[0] != want {
		t.Errorf("got %+v, want %+v", got[0], want)
	}
	got, _, _ = Decode(s3Body("b", "LifecycleExpiration:Delete", "k", at, "1"))
	if len(got) != 1 || !got[0].Removed {
		t.Errorf("a lifecycle expiration is a removal: %+v", got)
	}
	got, _, _ = Decode(s3Body("b", "ObjectRestore:Completed", "k", at, "1"))
	if len(got) != 0 {
		t.Errorf("a restore changes nothing a clone holds: %+v", got)
	}
	if _, test, err := Decode([]byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-07T10:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}`)); !test || err != nil {
		t.Errorf("the test event: test %v, err %v", test, err)
	}
	bridge := `{"version":"0","id":"1","detail-type":"Object Deleted","source":"aws.s3","account":"1","time":"2026-12-07T10:00:00Z",
"region":"us-east-1","resources":["arn:aws:s3:::b"],"detail":{"version":"0","bucket":{"name":"b"},"object":{"key":"a+b","sequencer":"617f"},
"request-id":"r","requester":"1","reason":"DeleteObject","deletion-type":"Permanently Deleted"}}`
	got, _, err = Decode([]byte(bridge))
	if err != nil || len(got) != 2 || got[0].Key != "a+b" || got[1].Key != "a b" || !got[0].Removed || got[0].Sequencer != "617f" {
		t.Errorf("EventBridge: %+v, %v; want the key as given and as URL-decoded", got, err)
	}
	got, _, _ = Decode([]byte(strings.Replace(bridge, `"key":"a+b"`, `"key":"dir/plain.jpg"`, 1)))
	if len(got) != 1 || got[0].Key != "dir/plain.jpg" {
		t.Errorf("EventBridge, a key encoding cannot change: %+v", got)
	}
	// moto writes its event time without a zone: UTC. A time nobody can
	// read leaves the key, with no time.
	got, _, err = Decode(bytes.ReplaceAll(s3Body("b", "ObjectCreated:Put", "k", at, "1"), []byte("2026-12-07T10:00:00.123Z"), []byte("2026-12-07T10:00:00.123000")))
	if err != nil || len(got) != 1 || !got[0].Time.Equal(at) {
		t.Errorf("a time without a zone: %+v, %v", got, err)
	}
	got, _, err = Decode(bytes.ReplaceAll(s3Body("b", "ObjectCreated:Put", "k", at, "1"), []byte("2026-12-07T10:00:00.123Z"), []byte("yesterday")))
	if err != nil || len(got) != 1 || got[0].Key != "k" || !got[0].Time.IsZero() {
		t.Errorf("an unreadable time: %+v, %v; want the key kept", got, err)
	}
	for _, body := range []string{`{"v":5,"run":"r"}`, `hello`, `{"Records":[{"eventSource":"aws:sqs"}]}`} {
		if _, _, err := Decode([]byte(body)); !errors.Is(err, ErrForeign) {
			t.Errorf("Decode(%s) = %v, want ErrForeign", body, err)
		}
	}
}

func TestLaterComparesSequencersAsS3Says(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b  string
		later bool
	}{
		{"0055AED6DCD90281E5", "0055AED6DCD90281E4", true},
		{"55AED6DCD90281E5", "0055AED6DCD90281E4", true}, // padded with leading zeros first
		{"A", "09", true},
		{"a", "9", true},
		{"1", "1", false},
		{"0F", "10", false},
	} {
		if got := Later(c.a, c.b); got != c.later {
			t.Errorf("Later(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

// notifyAPI keeps a bucket's notification configuration as S3 would.
type notifyAPI struct {
	cfg  types.NotificationConfiguration
	puts int
}

func (n *notifyAPI) GetBucketNotificationConfiguration(context.Context, *s3.GetBucketNotificationConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketNotificationConfigurationOutput, error) {
	return &s3.GetBucketNotificationConfigurationOutput{QueueConfigurations: n.cfg.QueueConfigurations, TopicConfigurations: n.cfg.TopicConfigurations,
		LambdaFunctionConfigurations: n.cfg.LambdaFunctionConfigurations, EventBridgeConfiguration: n.cfg.EventBridgeConfiguration}, nil
}

func (n *notifyAPI) PutBucketNotificationConfiguration(_ context.Context, in *s3.PutBucketNotificationConfigurationInput, _ ...func(*s3.Options)) (*s3.PutBucketNotificationConfigurationOutput, error) {
	n.cfg = *in.NotificationConfiguration
	n.puts++
	return &s3.PutBucketNotificationConfigurationOutput{}, nil
}

func prefixFilter(p string) *types.NotificationConfigurationFilter {
	return &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: "Prefix", Value: aws.String(p)}}}}
}

func TestSubscribeKeepsWhatIsThereAndRefusesAnOverlap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	thumbs := types.LambdaFunctionConfiguration{Id: aws.String("thumbnails"), LambdaFunctionArn: aws.String("arn:aws:lambda:us-east-1:1:function:thumbs"),
		Events: []types.Event{"s3:ObjectCreated:Put"}, Filter: prefixFilter("images/")}
	api := &notifyAPI{cfg: types.NotificationConfiguration{LambdaFunctionConfigurations: []types.LambdaFunctionConfiguration{thumbs}}}
	arn := "arn:aws:sqs:us-east-1:1:changes"
	sub := Subscription{Bucket: "b", Prefix: "", Marks: MarksPrefix, QueueARN: arn, ID: SubscriptionID(arn)}
	if _, err := Subscribe(ctx, api, sub); !errors.Is(err, ErrOverlap) || api.puts != 0 {
		t.Fatalf("Subscribe over a Lambda taking ObjectCreated:Put under images/: %v (%d writes), want ErrOverlap and nothing written", err, api.puts)
	}
	sub.Prefix = "docs/"
	added, err := Subscribe(ctx, api, sub)
	if err != nil || !added {
		t.Fatalf("Subscribe under docs/: %v, %v", added, err)
	}
	// Two configurations: the source prefix, and the markers outside it.
	if len(api.cfg.LambdaFunctionConfigurations) != 1 || len(api.cfg.QueueConfigurations) != 2 ||
		aws.ToString(api.cfg.QueueConfigurations[0].Id) != "s3clone-follow-changes" || filterPrefix(api.cfg.QueueConfigurations[1].Filter) != MarksPrefix {
		t.Fatalf("configuration after: %+v", api.cfg)
	}
	if added, err := Subscribe(ctx, api, sub); added || err != nil || api.puts != 1 {
		t.Errorf("a second Subscribe: %v, %v, %d writes; want nothing done", added, err, api.puts)
	}
	if removed, err := Unsubscribe(ctx, api, "b", sub.ID); !removed || err != nil {
		t.Fatalf("Unsubscribe: %v, %v", removed, err)
	}
	if len(api.cfg.LambdaFunctionConfigurations) != 1 || len(api.cfg.QueueConfigurations) != 0 {
		t.Errorf("after Unsubscribe: %+v, want the Lambda alone", api.cfg)
	}
	if on, err := SubscribeBridge(ctx, api, "b"); !on || err != nil || api.cfg.EventBridgeConfiguration == nil || len(api.cfg.LambdaFunctionConfigurations) != 1 {
		t.Errorf("SubscribeBridge: %v, %v, %+v", on, err, api.cfg)
	}
}

func TestEventsOverlapAsS3Judges(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"s3:ObjectCreated:*", "s3:ObjectCreated:Put", true},
		{"s3:ObjectCreated:Copy", "s3:ObjectCreated:Put", false},
		{"s3:ObjectRemoved:*", "s3:ObjectCreated:*", false},
		{"s3:ObjectTagging:Put", "s3:ObjectTagging:*", true},
	} {
		if got := eventsOverlap(c.a, c.b); got != c.want {
			t.Errorf("eventsOverlap(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

// fakeLedger records what follow writes, calling each then at once.
type fakeLedger struct {
	mu     sync.Mutex
	sent   []int64
	marks  map[string]ledger.Mark
	record ledger.Follow
}

func (l *fakeLedger) Sent(seqs []int64, _ ledger.Totals, then func()) {
	l.mu.Lock()
	l.sent = append(l.sent, seqs...)
	l.mu.Unlock()
	if then != nil {
		then()
	}
}

func (l *fakeLedger) PutFollow(_ context.Context, f ledger.Follow) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.record = f
	return nil
}

func (l *fakeLedger) PutMark(_ context.Context, m ledger.Mark) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.marks[m.ID] = m
	return nil
}

func (l *fakeLedger) mark(id string) (ledger.Mark, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.marks[id]
	return m, ok
}

// drain reads every work message sent so far.
func drain(t *testing.T, q *queue.Memory) []*plan.Batch {
	t.Helper()
	var out []*plan.Batch
	for {
		msgs, err := q.Receive(context.Background(), 10, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return out
		}
		for _, m := range msgs {
			b, err := plan.Decode(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		if err := q.Delete(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFollowerSendsEachKeyOnceAndClosesMarks: events of one key, of
// another bucket, outside the prefix and of a marker; the keys go out as
// sync work, once each per flush; the mark closes after its settle time
// with a number covering every key received before; an event dated before
// the mark that comes after it closed is sent and recorded as late; every
// event is deleted once its work is recorded.
func TestFollowerSendsEachKeyOnceAndClosesMarks(t *testing.T) {
	t.Parallel()
	changes, work := queue.NewMemory(100), queue.NewMemory(100)
	led := &fakeLedger{marks: map[string]ledger.Mark{}}
	src, dst := plan.Location{Bucket: "src", Prefix: "in/"}, plan.Location{Bucket: "dst", Prefix: "out/"}
	f := New(Config{Run: "follow-1", Source: src, Dest: dst, Flush: 50 * time.Millisecond, Settle: 300 * time.Millisecond, BatchKeys: 2},
		changes, work, led, led, zerolog.New(zerolog.NewTestWriter(t)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t0 := time.Now().Add(-time.Minute)
	send := func(bodies ...[]byte) {
		t.Helper()
		var out []queue.Outgoing
		for _, b := range bodies {
			out = append(out, queue.Outgoing{Body: b})
		}
		if err := changes.Send(context.Background(), out); err != nil {
			t.Fatal(err)
		}
	}
	send(s3Body("src", "ObjectCreated:Put", "in/a", t0, "01"),
		s3Body("src", "ObjectCreated:Put", "in/a", t0.Add(time.Millisecond), "02"),
		s3Body("src", "ObjectRemoved:Delete", "in/b+c", t0, "01"),
		s3Body("other", "ObjectCreated:Put", "in/x", t0, "01"),
		s3Body("src", "ObjectCreated:Put", "elsewhere/y", t0, "01"),
		s3Body("src", "ObjectCreated:Put", "in/d", t0, "01"))
	var batches []*plan.Batch
	waitFor(t, "the first keys' work", func() bool { batches = append(batches, drain(t, work)...); return len(batches) >= 2 })
	var keys []string
	for _, b := range batches {
		if b.Op != plan.OpSync || b.Run != "follow-1" || b.Source != src || b.Dest != dst || len(b.Entries) > 2 {
			t.Errorf("batch %+v", b)
		}
		for _, e := range b.Entries {
			keys = append(keys, e.Key)
		}
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"in/a", "in/b c", "in/d"}) {
		t.Errorf("keys sent %q, want each key of the source prefix once", keys)
	}
	// The mark: a marker object's creation, then its removal.
	markAt := t0.Add(10 * time.Second)
	send(s3Body("src", "ObjectCreated:Put", "in/e", markAt.Add(-time.Second), "01"),
		s3Body("src", "ObjectCreated:Put", ".s3clone-marks/cut-1", markAt, "01"))
	waitFor(t, "the mark", func() bool { _, ok := led.mark("cut-1"); return ok })
	m, _ := led.mark("cut-1")
	if m.Seq < 3 || m.Closed.Sub(m.Seen) < 300*time.Millisecond || !m.EventTime.Equal(markAt.UTC().Truncate(time.Millisecond)) {
		t.Errorf("mark %+v: want it closed after its settle time, covering in/e's message", m)
	}
	batches = drain(t, work)
	if len(batches) != 1 || batches[0].Entries[0].Key != "in/e" || batches[0].Seq > m.Seq {
		t.Errorf("after the mark: %+v", batches)
	}
	// An event dated before the mark, come after it closed.
	send(s3Body("src", "ObjectCreated:Put", "in/late", markAt.Add(-2*time.Second), "01"))
	waitFor(t, "the late key recorded", func() bool { m, _ := led.mark("cut-1"); return len(m.Late) == 1 && m.Late[0].Seq > 0 })
	m, _ = led.mark("cut-1")
	if m.Late[0].Key != "in/late" || m.Late[0].Seq <= m.Seq {
		t.Errorf("late %+v (mark seq %d)", m.Late, m.Seq)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if msgs, _ := changes.Receive(context.Background(), 10, 0, time.Minute); len(msgs) != 0 {
		t.Errorf("%d events left on the change queue", len(msgs))
	}
	if r := led.record; r.Events != 9 || r.Ignored != 2 || r.Keys != 5 || r.LastSeq != m.Late[0].Seq || r.Stopped.IsZero() {
		t.Errorf("record %+v", r)
	}
}

func TestChunksKeepBodiesWithinSQSsLimit(t *testing.T) {
	t.Parallel()
	escaped := strings.Repeat("\x01", 1024) // each byte written as \u0001
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("%s%04d", escaped[:1020], i))
	}
	got := chunks(keys, 1000)
	n := 0
	for _, c := range got {
		n += len(c)
		b, err := plan.Encode(plan.Batch{Version: plan.SchemaVersion, Run: "r", Op: plan.OpSync, Entries: entries(c)})
		if err != nil || len(b) > plan.MaxBodyBytes {
			t.Fatalf("a body of %d bytes (%v), over %d", len(b), err, plan.MaxBodyBytes)
		}
	}
	if n != 300 || len(got) < 2 {
		t.Errorf("%d keys in %d chunks", n, len(got))
	}
	if got := chunks([]string{"a", "b", "c"}, 2); len(got) != 2 || len(got[0]) != 2 {
		t.Errorf("chunks of 2: %q", got)
	}
}

func entries(keys []string) []plan.Entry {
	out := make([]plan.Entry, len(keys))
	for i, k := range keys {
		out[i] = plan.Entry{Key: k}
	}
	return out
}

// TestFollowerHoldsAtACutoversMarkAndStopsOnACleanVerdict: after a
// cutover's mark closes, events dated after it are not sent and their
// messages stay on the queue; an event dated before it is sent; a verdict
// that is not clean sets follow following again, and the next cutover's
// clean verdict stops it, at that mark. A rehearsal's mark does not hold.
func TestFollowerHoldsAtACutoversMarkAndStopsOnACleanVerdict(t *testing.T) {
	t.Parallel()
	changes, work := queue.NewMemory(100), queue.NewMemory(100)
	led := &fakeLedger{marks: map[string]ledger.Mark{}}
	var mu sync.Mutex
	verdicts := map[string]bool{} // run -> clean
	src, dst := plan.Location{Bucket: "src"}, plan.Location{Bucket: "dst"}
	f := New(Config{Run: "follow-1", Source: src, Dest: dst, Flush: 20 * time.Millisecond, Settle: 100 * time.Millisecond,
		Visibility: 2 * time.Second, ReceiveWait: 200 * time.Millisecond, VerdictEvery: 200 * time.Millisecond,
		Verdict: func(_ context.Context, run string) (bool, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			clean, given := verdicts[run]
			return given, clean, nil
		}}, changes, work, led, led, zerolog.New(zerolog.NewTestWriter(t)))
	done := make(chan error, 1)
	go func() { done <- f.Run(context.Background()) }()
	send := func(bodies ...[]byte) {
		t.Helper()
		var out []queue.Outgoing
		for _, b := range bodies {
			out = append(out, queue.Outgoing{Body: b})
		}
		if err := changes.Send(context.Background(), out); err != nil {
			t.Fatal(err)
		}
	}
	keys := func() []string {
		var out []string
		for _, b := range drain(t, work) {
			for _, e := range b.Entries {
				out = append(out, e.Key)
			}
		}
		slices.Sort(out)
		return out
	}
	t0 := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	// A rehearsal's mark, then a change after it: sent.
	send(s3Body("src", "ObjectCreated:Put", ".s3clone-marks/rehearsal-r1", t0, "1"))
	waitFor(t, "the rehearsal's mark", func() bool { _, ok := led.mark("rehearsal-r1"); return ok })
	send(s3Body("src", "ObjectCreated:Put", "a", t0.Add(time.Second), "1"))
	waitFor(t, "a", func() bool { return slices.Equal(keys(), []string{"a"}) })

	// A cutover's mark: a change dated after it is held back, one dated
	// before it is sent.
	mark := t0.Add(10 * time.Second)
	send(s3Body("src", "ObjectCreated:Put", ".s3clone-marks/c1", mark, "1"))
	waitFor(t, "the cutover's mark", func() bool { _, ok := led.mark("c1"); return ok })
	send(s3Body("src", "ObjectCreated:Put", "after", mark.Add(time.Second), "2"),
		s3Body("src", "ObjectCreated:Put", "before", mark.Add(-time.Second), "3"))
	waitFor(t, "the late key", func() bool { m, _ := led.mark("c1"); return len(m.Late) == 1 && m.Late[0].Seq > 0 })
	if got := keys(); !slices.Equal(got, []string{"before"}) {
		t.Fatalf("sent %q while holding, want the key dated before the mark alone", got)
	}
	// Not clean: following again; "after" is sent at once, not when the
	// queue shows it again (the visibility here is 2 s; follow reads the
	// verdict every 200 ms).
	mu.Lock()
	verdicts["c1"] = false
	mu.Unlock()
	var got []string
	deadline := time.Now().Add(1000 * time.Millisecond)
	for !slices.Contains(got, "after") && time.Now().Before(deadline) {
		got = append(got, keys()...)
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Contains(got, "after") {
		t.Fatalf("the held key was not sent within 1 s of a verdict that is not clean (sent %q)", got)
	}

	// The next cutover, clean: follow stops at its mark.
	send(s3Body("src", "ObjectCreated:Put", ".s3clone-marks/c2", mark.Add(time.Minute), "4"))
	waitFor(t, "the second cutover's mark", func() bool { _, ok := led.mark("c2"); return ok })
	send(s3Body("src", "ObjectCreated:Put", "production-again", mark.Add(2*time.Minute), "5"))
	mu.Lock()
	verdicts["c2"] = true
	mu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not stop after the cutover's clean verdict")
	}
	if m := f.StoppedAt(); m == nil || m.ID != "c2" {
		t.Errorf("stopped at %+v, want c2", m)
	}
	if got := keys(); len(got) != 0 {
		t.Errorf("sent %q after the clean cutover's mark", got)
	}
	// The change production made after the freeze waits on the queue.
	time.Sleep(2100 * time.Millisecond) // its visibility
	msgs, _ := changes.Receive(context.Background(), 10, 0, time.Minute)
	if len(msgs) != 1 {
		t.Fatalf("%d events left on the change queue, want production's one", len(msgs))
	}
	if c, _, _ := Decode(msgs[0].Body); len(c) != 1 || c[0].Key != "production-again" {
		t.Errorf("left on the queue: %+v", c)
	}
}
