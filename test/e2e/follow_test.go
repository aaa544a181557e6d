package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/s3clone/s3clone/test/testbed"
)

// following is a follow under test: the buckets, queues and ledger, and
// the follow process.
type following struct {
	env                 *testbed.Env
	srcB, dstB, led     string
	work, changes       string
	run                 string // the follow's run id
	follow              *lockedBuffer
	stop                func() result
	writes, writeErrors int
}

// queueARN is a local queue's ARN, as SQS gives it.
func queueARN(t *testing.T, env *testbed.Env, url string) string {
	t.Helper()
	out, err := env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["QueueArn"]
}

// startFollow starts planner follow and waits for its run id.
func (f *following) startFollow(t *testing.T, extra ...string) {
	t.Helper()
	cmd, out, errb := command(f.env, "planner", append([]string{"follow", "--source", "s3://" + f.srcB, "--dest", "s3://" + f.dstB,
		"--queue-url", f.work, "--changes-url", f.changes, "--ledger", f.led, "--flush", "100ms", "--batch-keys", "20", "--config-settle", "0s"}, extra...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		err := cmd.Wait()
		r := result{stdout: out.String(), stderr: errb.String()}
		if err != nil {
			r.code = cmd.ProcessState.ExitCode()
		}
		done <- r
	}()
	var once sync.Once
	var res result
	f.stop = func() result {
		once.Do(func() {
			// A follow that stopped by itself (at a cutover's mark) is left
			// to exit: a signal once its command returned would kill it.
			if !strings.Contains(out.String(), "stopped   run") {
				cmd.Process.Signal(syscall.SIGTERM)
			}
			select {
			case res = <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				res = <-done
				res.code = -1
			}
		})
		return res
	}
	t.Cleanup(func() {
		r := f.stop()
		if t.Failed() {
			t.Logf("follow exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, tail(r.stderr))
		}
	})
	f.follow = out
	re := regexp.MustCompile(`run (\d{8}T\d{6}Z-[0-9a-f]+),`)
	waitFor(t, 30*time.Second, "follow's run id", func() bool {
		m := re.FindStringSubmatch(out.String())
		if m != nil {
			f.run = m[1]
		}
		return m != nil
	})
}

// record reads follow's record from the ledger.
func (f *following) record(t *testing.T) map[string]any {
	t.Helper()
	b, prefix, _ := strings.Cut(strings.TrimPrefix(f.led, "s3://"), "/")
	out, err := f.env.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(prefix + "runs/" + f.run + "/follow.json")})
	if err != nil {
		return nil
	}
	defer out.Body.Close()
	var r map[string]any
	if err := json.NewDecoder(out.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *following) anchored(t *testing.T) bool {
	r := f.record(t)
	return r != nil && r["anchored"] == true
}

// writer changes the source through the proxy (so that S3 events are sent)
// until stop is closed: overwrites, deletions, new keys and keys deleted
// and made again, some with spaces, '+' and non-ASCII in their names.
func (f *following) writer(t *testing.T, keys []string, stop <-chan struct{}, done chan<- struct{}) {
	c := f.env.Manners().Client(f.srcB)
	ctx := context.Background()
	defer close(done)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		k := keys[rand.IntN(len(keys))]
		var err error
		switch i % 5 {
		case 0, 1:
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.srcB), Key: aws.String(k), Body: bytes.NewReader(body(i, 100+i%300))})
		case 2:
			_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.srcB), Key: aws.String(k)})
		case 3:
			k = fmt.Sprintf("new/%d/clé +%d.jpg", i%7, i)
			_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.srcB), Key: aws.String(k), Body: bytes.NewReader(body(i, 50))})
		case 4:
			// Two writes close together: S3 may send one event for both.
			for j := range 2 {
				_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.srcB), Key: aws.String(k), Body: bytes.NewReader(body(i*10+j, 80))})
			}
		}
		f.writes++
		if err != nil {
			f.writeErrors++
		}
	}
}

// newFollowing makes the buckets and queues, seeds the source with n
// objects and sets its event manners.
func newFollowing(t *testing.T, n int) (*following, []string) {
	t.Helper()
	env := testbed.Get(t)
	f := &following{env: env, srcB: env.Bucket(t), dstB: env.Bucket(t), led: ledgerURL(t, env)}
	f.work, _ = env.Queue(t, 5)
	f.changes, _ = env.Queue(t, 0)
	var objs []testbed.Object
	var keys []string
	for i := range n {
		k := fmt.Sprintf("img/%02d/photo %03d+x.jpg", i%10, i)
		objs = append(objs, testbed.Object{Key: k, Body: body(i, 100+i)})
		keys = append(keys, k)
	}
	env.Put(t, f.srcB, objs)
	// S3 delivers at least once, in no order, late, and may send one
	// event for two writes close together.
	env.Manners().Events(f.srcB, testbed.EventManners{Delay: 50 * time.Millisecond, Jitter: 300 * time.Millisecond, Duplicate: 0.2, Coalesce: 30 * time.Millisecond})
	return f, keys
}

// TestFollowThenCutOverWithoutAListing: follow runs from before the bulk
// plan, a writer changes the source all through the bulk copy and on to
// the freeze, through events that come duplicated, reordered and late;
// one key's event is held back past the freeze's mark, and a deletion's
// event comes after the key was made again. cutover --follow marks the
// freeze, waits for follow's work up to the mark, and is clean with no
// listing; the destination is then exactly the source. The bucket's own
// notification configuration is kept beside follow's, and is all that is
// left after --unsubscribe.
func TestFollowThenCutOverWithoutAListing(t *testing.T) {
	t.Parallel()
	f, keys := newFollowing(t, 300)
	env, c := f.env, f.env.Manners().Client(f.srcB)
	ctx := context.Background()
	// The bucket already sends restore events somewhere: kept.
	audit, _ := env.Queue(t, 0)
	existing := types.QueueConfiguration{Id: aws.String("restores"), QueueArn: aws.String(queueARN(t, env, audit)), Events: []types.Event{"s3:ObjectRestore:*"}}
	if _, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(f.srcB),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{existing}}}); err != nil {
		t.Fatal(err)
	}

	f.startFollow(t, "--settle", "3s")
	waitFor(t, time.Minute, "follow anchored (its probe came through)", func() bool { return f.anchored(t) })
	cfg, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(f.srcB)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.QueueConfigurations) != 2 || aws.ToString(cfg.QueueConfigurations[0].Id) != "restores" {
		t.Fatalf("configuration while following: %+v, want the bucket's own kept and follow's beside it", cfg.QueueConfigurations)
	}

	stop, stopped := make(chan struct{}), make(chan struct{})
	go f.writer(t, keys, stop, stopped)
	plan := mustRun(t, env, "planner", "plan", "--source", "s3://"+f.srcB, "--dest", "s3://"+f.dstB, "--queue-url", f.work, "--ledger", f.led, "--batch-keys", "20")
	bulk := runID(t, plan.stdout)
	fr := &frozen{env: env, work: f.work, led: f.led}
	fr.worker(t, "--concurrency", "16")
	fr.worker(t, "--concurrency", "16")
	waitFor(t, 2*time.Minute, "the bulk run", func() bool { return status(t, env, f.led, "--run-id", bulk).Complete })
	time.Sleep(2 * time.Second) // and some more writes while following
	// Status of the follow's run: its state, and the window it predicts.
	st := mustRun(t, env, "planner", "status", "--ledger", f.led, "--run-id", f.run)
	for _, want := range []string{"follow      running, via s3, anchored", "window      about ", "following costs $"} {
		if !strings.Contains(st.stdout, want) {
			t.Errorf("status of the follow lacks %q:\n%s", want, st.stdout)
		}
	}

	// Just before the freeze: a write whose event comes after the mark's,
	// and a key deleted and made again whose deletion's event comes last.
	late, again := keys[1], keys[2]
	env.Manners().HoldNext(f.srcB, late, 1500*time.Millisecond)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.srcB), Key: aws.String(late), Body: bytes.NewReader([]byte("written just before the freeze"))}); err != nil {
		t.Fatal(err)
	}
	env.Manners().HoldNext(f.srcB, again, 1500*time.Millisecond)
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.srcB), Key: aws.String(again)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.srcB), Key: aws.String(again), Body: bytes.NewReader([]byte("made again"))}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-stopped

	// The freeze.
	r := run(t, env, "planner", "cutover", "--follow", f.run, "--ledger", f.led)
	if r.code != 0 || !strings.Contains(r.stdout, "verdict   clean") || !strings.Contains(r.stdout, "predicted about ") {
		t.Fatalf("cutover --follow: exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr))
	}
	// The verdict is the ledger's too: status shows it to anyone.
	if st := mustRun(t, env, "planner", "status", "--ledger", f.led); !strings.Contains(st.stdout, "verdict     cutover CLEAN") {
		t.Errorf("status after the cutover lacks its verdict:\n%s", st.stdout)
	}
	t.Logf("%d writes (%d refused) while following; cutover:\n%s", f.writes, f.writeErrors, r.stdout)
	if f.writes < 100 {
		t.Errorf("only %d writes while following", f.writes)
	}
	sameObjects(t, snapshot(t, env, f.srcB, "", false), snapshot(t, env, f.dstB, "", false))
	if got := string(getBody(t, env, f.dstB, late)); got != "written just before the freeze" {
		t.Errorf("%q = %q: its late event was not waited for", late, got)
	}
	if got := string(getBody(t, env, f.dstB, again)); got != "made again" {
		t.Errorf("%q = %q: a deletion's event deleted a key made again since", again, got)
	}

	// Production writes again: follow, holding at the mark, stops once the
	// verdict is clean, and the destination stays as of the freeze.
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.srcB), Key: aws.String(late), Body: bytes.NewReader([]byte("after the freeze"))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "follow to stop at the cutover's mark", func() bool { return strings.Contains(f.follow.String(), "stopped   run") })
	if !strings.Contains(f.follow.String(), "after its clean verdict") {
		t.Errorf("follow's output lacks where it stopped:\n%s", f.follow.String())
	}
	time.Sleep(2 * time.Second) // any work it had sent, done
	if got := string(getBody(t, env, f.dstB, late)); got != "written just before the freeze" {
		t.Errorf("%q = %q: a write after the freeze reached the clone", late, got)
	}
	if r := f.stop(); r.code != 0 {
		t.Fatalf("follow exit %d\n%s", r.code, tail(r.stderr))
	}
	// Started again (as ECS restarts the stack's service), follow takes
	// nothing until a new bulk plan begins the next clone.
	cmd, out, _ := command(env, "planner", "follow", "--source", "s3://"+f.srcB, "--dest", "s3://"+f.dstB,
		"--queue-url", f.work, "--changes-url", f.changes, "--ledger", f.led)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the restarted follow to wait", func() bool { return strings.Contains(out.String(), "Until then it takes nothing") })
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the waiting follow on SIGTERM: %v\n%s", err, out.String())
	}
	if got := string(getBody(t, env, f.dstB, late)); got != "written just before the freeze" {
		t.Errorf("%q = %q: a follow started again took production's change after the freeze", late, got)
	}
	mustRun(t, env, "planner", "follow", "--unsubscribe", "--source", "s3://"+f.srcB, "--changes-url", f.changes)
	cfg, err = c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(f.srcB)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.QueueConfigurations) != 1 || aws.ToString(cfg.QueueConfigurations[0].Id) != "restores" {
		t.Errorf("configuration after --unsubscribe: %+v, want the bucket's own alone", cfg.QueueConfigurations)
	}
}

// TestFollowStartedAfterTheBulkPlanCatchesUp: the bulk plan begins first,
// with the writer already changing the source, and follow starts after it,
// through EventBridge (a rule standing in for the stack's). Changes made
// between the bulk listing and follow's first event have no event: follow
// waits for the bulk run, lists both buckets once to catch up, and only
// then is anchored; cutover --follow is then clean and the clone exact.
func TestFollowStartedAfterTheBulkPlanCatchesUp(t *testing.T) {
	t.Parallel()
	f, keys := newFollowing(t, 300)
	env := f.env
	env.Manners().EventBridgeRule(f.srcB, f.changes)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go f.writer(t, keys, stop, stopped)
	plan := mustRun(t, env, "planner", "plan", "--source", "s3://"+f.srcB, "--dest", "s3://"+f.dstB, "--queue-url", f.work, "--ledger", f.led, "--batch-keys", "20")
	bulk := runID(t, plan.stdout)
	time.Sleep(time.Second) // changes no event will tell of
	f.startFollow(t, "--via", "eventbridge", "--settle", "2s")
	// Not anchored while the bulk run is not done: a cutover now says so.
	r := run(t, env, "planner", "cutover", "--follow", f.run, "--ledger", f.led)
	if r.code != 1 || !strings.Contains(r.stdout, "is not anchored yet") {
		t.Errorf("cutover before the catch-up: exit %d, want 1 naming the catch-up\n%s\n%s", r.code, r.stdout, tail(r.stderr))
	}
	fr := &frozen{env: env, work: f.work, led: f.led}
	fr.worker(t, "--concurrency", "16")
	waitFor(t, 2*time.Minute, "the bulk run", func() bool { return status(t, env, f.led, "--run-id", bulk).Complete })
	waitFor(t, 2*time.Minute, "follow anchored (the catch-up)", func() bool { return f.anchored(t) })
	rec := f.record(t)
	if rec["via"] != "eventbridge" || rec["bridge_owned"] != true {
		t.Errorf("follow's record %v: want via eventbridge, turned on by follow", rec)
	}
	close(stop)
	<-stopped

	r = run(t, env, "planner", "cutover", "--follow", "latest", "--ledger", f.led, "--verify")
	if r.code != 0 || !strings.Contains(r.stdout, "verdict   clean") {
		t.Fatalf("cutover --follow: exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr))
	}
	waitFor(t, 30*time.Second, "follow to stop at the cutover's mark", func() bool { return strings.Contains(f.follow.String(), "stopped   run") })
	t.Logf("%d writes while following; follow's record %v; cutover:\n%s", f.writes, f.record(t), r.stdout)
	sameObjects(t, snapshot(t, env, f.srcB, "", false), snapshot(t, env, f.dstB, "", false))
	if n, ok := f.record(t)["caught_up"].(float64); !ok || n == 0 {
		t.Errorf("the catch-up took no key (%v): the writer changed keys before follow's events began", f.record(t)["caught_up"])
	}
	// --unsubscribe --via eventbridge turns it off again.
	if r := f.stop(); r.code != 0 {
		t.Fatalf("follow exit %d\n%s", r.code, tail(r.stderr))
	}
	mustRun(t, env, "planner", "follow", "--unsubscribe", "--via", "eventbridge", "--source", "s3://"+f.srcB, "--changes-url", f.changes, "--ledger", f.led)
	cfg, err := env.Manners().Client(f.srcB).GetBucketNotificationConfiguration(context.Background(), &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(f.srcB)})
	if err != nil || cfg.EventBridgeConfiguration != nil {
		t.Errorf("after --unsubscribe: %+v, %v; want EventBridge off", cfg, err)
	}
}

// TestFollowRefusesAnOverlappingConfiguration: the bucket already sends
// its object-created events under images/ to a Lambda function; S3 would
// refuse follow's configuration beside it, so follow says so with exit 2,
// naming it and the way out, and leaves the configuration as it was.
func TestFollowRefusesAnOverlappingConfiguration(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB, led := env.Bucket(t), env.Bucket(t), ledgerURL(t, env)
	work, _ := env.Queue(t, 0)
	changes, _ := env.Queue(t, 0)
	c := env.Manners().Client(srcB)
	ctx := context.Background()
	thumbs := types.LambdaFunctionConfiguration{Id: aws.String("thumbnails"), LambdaFunctionArn: aws.String("arn:aws:lambda:us-east-1:123456789012:function:thumbs"),
		Events: []types.Event{"s3:ObjectCreated:Put"}, Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{
			FilterRules: []types.FilterRule{{Name: types.FilterRuleNamePrefix, Value: aws.String("images/")}}}}}
	if _, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(srcB),
		NotificationConfiguration: &types.NotificationConfiguration{LambdaFunctionConfigurations: []types.LambdaFunctionConfiguration{thumbs}}}); err != nil {
		t.Fatal(err)
	}
	r := run(t, env, "planner", "follow", "--source", "s3://"+srcB, "--dest", "s3://"+dstB, "--queue-url", work, "--changes-url", changes, "--ledger", led)
	if r.code != 2 || !strings.Contains(r.stderr, "thumbnails") || !strings.Contains(r.stderr, "--via eventbridge") && !strings.Contains(r.stderr, "EventBridge") {
		t.Fatalf("follow over an overlapping configuration: exit %d, want 2 naming it\n%s", r.code, tail(r.stderr))
	}
	cfg, err := c.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(srcB)})
	if err != nil || len(cfg.LambdaFunctionConfigurations) != 1 || len(cfg.QueueConfigurations) != 0 {
		t.Errorf("configuration after: %+v, %v; want it unchanged", cfg, err)
	}
}
