package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// errRefused stands for S3 refusing these credentials; denied says so.
var errRefused = errors.New("AccessDenied")

func denied(err error) bool { return errors.Is(err, errRefused) }

// TestNotifyErrorSaysWhatToDo: an overlap is the operator's to resolve, a
// refusal names the grants, anything else passes as it is.
func TestNotifyErrorSaysWhatToDo(t *testing.T) {
	t.Parallel()
	overlap := fmt.Errorf("%w: a Lambda takes ObjectCreated:Put under images/", ErrOverlap)
	if err := notifyError(overlap, "src", denied); !isUsage(err, overlap.Error()) {
		t.Errorf("overlap: %v", err)
	}
	refused := fmt.Errorf("put notification: %w", errRefused)
	if err := notifyError(refused, "src", denied); !isUsage(err, "put notification: AccessDenied: grant s3:GetBucketNotification and s3:PutBucketNotification on arn:aws:s3:::src, and let the change queue's policy allow s3.amazonaws.com to send from the bucket") {
		t.Errorf("refused: %v", err)
	}
	other := errors.New("connection reset")
	if err := notifyError(other, "src", denied); err != other {
		t.Errorf("other: %v, want it as it was", err)
	}
}

// TestProbeAndNoEventsErrors: a refused probe names the marks' grant;
// events that never came say where to look, by how they were to come.
func TestProbeAndNoEventsErrors(t *testing.T) {
	t.Parallel()
	if err := probeError(nil, "src", denied); err != nil {
		t.Errorf("no error: %v", err)
	}
	if err := probeError(errRefused, "src", denied); !isUsage(err, "AccessDenied: grant s3:PutObject and s3:DeleteObject on arn:aws:s3:::src/.s3clone-marks/* (follow's probe and the cutover's mark; never copied)") {
		t.Errorf("refused: %v", err)
	}
	other := errors.New("slow down")
	if err := probeError(other, "src", denied); err != other {
		t.Errorf("other: %v", err)
	}
	none := fmt.Errorf("%w: none of 3 probes came through", ErrNoEvents)
	if err := noEventsError(none, ViaS3); !isUsage(err, "none of 3 probes came through: check the change queue's policy allows s3.amazonaws.com to send from the bucket") {
		t.Errorf("via s3: %v", err)
	}
	if err := noEventsError(none, ViaEventBridge); !isUsage(err, "check the EventBridge rule sends the bucket's events to the change queue, and the queue's policy allows events.amazonaws.com") {
		t.Errorf("via eventbridge: %v", err)
	}
	if err := noEventsError(other, ViaS3); err != other {
		t.Errorf("other: %v", err)
	}
	if err := noEventsError(nil, ViaS3); err != nil {
		t.Errorf("nil: %v", err)
	}
}

// TestVerdictMapsTheLedgersAnswer: none yet is not given; a verdict is
// given, clean or not; other errors are errors.
func TestVerdictMapsTheLedgersAnswer(t *testing.T) {
	t.Parallel()
	if given, clean, err := verdict(nil, fmt.Errorf("verdict: %w", ledger.ErrNotFound)); given || clean || err != nil {
		t.Errorf("none: %v %v %v", given, clean, err)
	}
	if given, clean, err := verdict(&ledger.Verdict{Clean: true}, nil); !given || !clean || err != nil {
		t.Errorf("clean: %v %v %v", given, clean, err)
	}
	if given, clean, err := verdict(&ledger.Verdict{}, nil); !given || clean || err != nil {
		t.Errorf("not clean: %v %v %v", given, clean, err)
	}
	if _, _, err := verdict(nil, errRefused); err != errRefused {
		t.Errorf("refused: %v", err)
	}
}

// sourceAPI is a source bucket: its notification configuration
// (notifyAPI), and marker objects written and deleted, or refused.
type sourceAPI struct {
	notifyAPI
	mu      sync.Mutex
	putErr  error
	marks   map[string]bool
	deleted []string
}

func (a *sourceAPI) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.putErr != nil {
		return nil, a.putErr
	}
	a.marks[aws.ToString(in.Key)] = true
	return &s3.PutObjectOutput{}, nil
}

func (a *sourceAPI) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.marks, aws.ToString(in.Key))
	a.deleted = append(a.deleted, aws.ToString(in.Key))
	return &s3.DeleteObjectOutput{}, nil
}

var _ SourceAPI = (*sourceAPI)(nil)

// TestUnsubscribeRemovesOnlyFollowsConfiguration: --via s3 removes
// follow's queue configuration, or says there was none; --via eventbridge
// needs the ledger to say follow turned EventBridge on.
func TestUnsubscribeRemovesOnlyFollowsConfiguration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	arn := "arn:aws:sqs:us-east-1:1:changes"
	sub := Subscription{Bucket: "src", Marks: MarksPrefix, QueueARN: arn, ID: SubscriptionID(arn)}
	thumbs := types.LambdaFunctionConfiguration{Id: aws.String("thumbnails"), LambdaFunctionArn: aws.String("arn:aws:lambda:us-east-1:1:function:thumbs"),
		Events: []types.Event{"s3:ObjectCreated:Put"}, Filter: prefixFilter("images/")}
	api := &sourceAPI{notifyAPI: notifyAPI{cfg: types.NotificationConfiguration{LambdaFunctionConfigurations: []types.LambdaFunctionConfiguration{thumbs}}}}
	sub.Prefix = "docs/"
	if _, err := Subscribe(ctx, api, sub); err != nil {
		t.Fatal(err)
	}
	c := Clients{Source: plan.Location{Bucket: "src"}, SourceAPI: api, Denied: denied}
	o := &Options{Unsubscribe: true, Via: ViaS3, ChangesURL: testChangesURL}
	var out bytes.Buffer
	if err := unsubscribe(ctx, o, c, sub.ID, &out); err != nil || len(api.cfg.QueueConfigurations) != 0 || len(api.cfg.LambdaFunctionConfigurations) != 1 {
		t.Fatalf("unsubscribe: %v, configuration %+v", err, api.cfg)
	}
	if err := unsubscribe(ctx, o, c, sub.ID, &out); err != nil {
		t.Fatal(err)
	}
	if want := "unsubscribed s3://src: follow's notification configuration removed, every other left as it is\n" +
		"unsubscribed s3://src: it had no configuration of follow's\n"; out.String() != want {
		t.Errorf("said %q, want %q", out.String(), want)
	}
	o.Via = ViaEventBridge
	if err := unsubscribe(ctx, o, c, sub.ID, &out); !isUsage(err, "needs --ledger") {
		t.Errorf("--via eventbridge without a ledger: %v", err)
	}
}

// TestClientsProbeWritesMarkersAndNamesTheGrant: the Follower's probes
// are marker objects in the source bucket, deleted by Unprobe; a refused
// one says what to grant.
func TestClientsProbeWritesMarkersAndNamesTheGrant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	api := &sourceAPI{marks: map[string]bool{}}
	c := Clients{Source: plan.Location{Bucket: "src"}, SourceAPI: api, Denied: denied, BatchKeys: 7}
	o := &Options{Flush: time.Second, Settle: 2 * time.Second, GoOn: true}
	cfg := c.config(o, "follow-1", ledger.Follow{Via: ViaS3}, time.Time{})
	if cfg.Run != "follow-1" || cfg.ProbeID != "probe-follow-1" || cfg.BatchKeys != 7 || cfg.Flush != time.Second || cfg.Settle != 2*time.Second || !cfg.GoOn {
		t.Errorf("config %+v", cfg)
	}
	if err := cfg.Probe(ctx, "probe-follow-1-1"); err != nil || !api.marks[".s3clone-marks/probe-follow-1-1"] {
		t.Fatalf("probe: %v, marks %v", err, api.marks)
	}
	if err := cfg.Unprobe(ctx, "probe-follow-1-1"); err != nil || len(api.marks) != 0 {
		t.Fatalf("unprobe: %v, marks %v", err, api.marks)
	}
	api.putErr = errRefused
	if err := cfg.Probe(ctx, "probe-follow-1-2"); !isUsage(err, "grant s3:PutObject and s3:DeleteObject on arn:aws:s3:::src/.s3clone-marks/*") {
		t.Errorf("refused probe: %v", err)
	}
}

// TestFollowerGivesUpWhenNoProbeComesBack: with no event reaching the
// change queue, Run ends after ProbeWait with ErrNoEvents, having written
// a probe and deleted it.
func TestFollowerGivesUpWhenNoProbeComesBack(t *testing.T) {
	t.Parallel()
	changes, work := queue.NewMemory(10), queue.NewMemory(10)
	led := &fakeLedger{marks: map[string]ledger.Mark{}}
	var mu sync.Mutex
	var probes, unprobes []string
	cfg := Config{Run: "follow-1", Source: plan.Location{Bucket: "src"}, Dest: plan.Location{Bucket: "dst"}, ProbeID: "probe-follow-1", ProbeWait: 200 * time.Millisecond,
		Probe: func(_ context.Context, id string) error {
			mu.Lock()
			defer mu.Unlock()
			probes = append(probes, id)
			return nil
		},
		Unprobe: func(_ context.Context, id string) error {
			mu.Lock()
			defer mu.Unlock()
			unprobes = append(unprobes, id)
			return nil
		}}
	f := New(cfg, changes, work, led, led, zerolog.Nop())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	err := f.Run(ctx)
	if !errors.Is(err, ErrNoEvents) || !strings.Contains(err.Error(), "none of 1 probes (s3://src/.s3clone-marks/probe-follow-1*) came through within 200ms") {
		t.Fatalf("Run = %v, want ErrNoEvents after 200ms", err)
	}
	if took := time.Since(began); took < 200*time.Millisecond || ctx.Err() != nil {
		t.Errorf("gave up after %s (ctx %v), want ProbeWait", took, ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(probes) != 1 || len(unprobes) != 1 || probes[0] != unprobes[0] {
		t.Errorf("probes written %q, deleted %q; want the one written deleted", probes, unprobes)
	}
	if New(Config{}, changes, work, led, led, zerolog.Nop()).cfg.ProbeWait != ProbeWait {
		t.Errorf("ProbeWait's default is not ProbeWait")
	}
}
