package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/test/testbed"
	"github.com/s3clone/s3clone/test/testbed/stackbed"
)

// checkFollow drives what the stack makes for planner follow (Follow=s3 or
// eventbridge) as the runbook does: the follow service runs the
// FollowCommand output's command; that command, run here against moto,
// subscribes the source bucket to the change queue (its queue
// configuration, or EventBridge delivery) and records its run in the
// ledger; a write to the source then reaches the change queue (through the
// stack's rule, for eventbridge), where follow reads it; the
// UnsubscribeCommand output takes follow's configuration off again.
func checkFollow(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	if !s.Exists(t, "FollowService") {
		for _, out := range []string{"ChangeQueueUrl", "FollowCommand", "FollowServiceName"} {
			if _, ok := s.Outputs[out]; ok {
				t.Errorf("Follow=%s, and the stack outputs %s", s.Params["Follow"], out)
			}
		}
		return
	}
	ctx := context.Background()
	via := s.Params["Follow"]
	changes := s.Outputs["ChangeQueueUrl"]
	attrs, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(changes), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil || attrs.Attributes["QueueArn"] != s.Outputs["ChangeQueueArn"] {
		t.Fatalf("ChangeQueueUrl %s: %v, ARN %v; ChangeQueueArn says %s", changes, err, attrs, s.Outputs["ChangeQueueArn"])
	}

	// The service runs the FollowCommand output's command, once.
	cluster, _ := s.WorkerService(t)
	svcs, err := s.ECS.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{s.Outputs["FollowServiceName"]}})
	if err != nil || len(svcs.Services) != 1 {
		t.Fatalf("FollowServiceName %s in %s: %v", s.Outputs["FollowServiceName"], cluster, err)
	}
	svc := svcs.Services[0]
	if aws.ToString(svc.Status) != "ACTIVE" || svc.DesiredCount != 1 {
		t.Errorf("the follow service: %s, desired %d; want ACTIVE, 1", aws.ToString(svc.Status), svc.DesiredCount)
	}
	td, err := s.ECS.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: svc.TaskDefinition})
	command := strings.Fields(s.Outputs["FollowCommand"])
	if err != nil || len(td.TaskDefinition.ContainerDefinitions) != 1 || !slices.Equal(td.TaskDefinition.ContainerDefinitions[0].Command, command) {
		t.Errorf("the follow service runs %v (%v); FollowCommand says %v", td, err, command)
	}

	bin, err := testbed.BuildBinaries(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	src := s.Params["SourceBucket"]
	var log bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, command[0]), command[1:]...)
	// moto applies a notification configuration at once; S3 takes about
	// five minutes, which follow waits for before it is anchored.
	cmd.Env, cmd.Stdout, cmd.Stderr = append(s.Server.Environ(), "S3CLONE_CONFIG_SETTLE=0s"), &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	subscribed := func() bool {
		out, err := s.S3.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(src)})
		if err != nil {
			return false
		}
		if via == "eventbridge" {
			return out.EventBridgeConfiguration != nil
		}
		return slices.ContainsFunc(out.QueueConfigurations, func(q s3types.QueueConfiguration) bool {
			return aws.ToString(q.QueueArn) == s.Outputs["ChangeQueueArn"] && aws.ToString(q.Id) == follow.SubscriptionID(s.Outputs["ChangeQueueArn"])
		})
	}
	ledger := strings.TrimPrefix(s.Outputs["LedgerUrl"], "s3://")
	ledgerBucket, ledgerPrefix, _ := strings.Cut(ledger, "/")
	recorded := func() bool {
		out, err := s.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(ledgerBucket), Prefix: aws.String(ledgerPrefix + "runs/")})
		return err == nil && slices.ContainsFunc(out.Contents, func(o s3types.Object) bool { return strings.HasSuffix(aws.ToString(o.Key), "/run.json") })
	}
	anchored := func() bool {
		out, err := s.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(ledgerBucket), Prefix: aws.String(ledgerPrefix + "runs/")})
		if err != nil {
			return false
		}
		for _, o := range out.Contents {
			if k := aws.ToString(o.Key); strings.HasSuffix(k, "/follow.json") {
				got, err := s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(ledgerBucket), Key: aws.String(k)})
				if err != nil {
					return false
				}
				var rec struct{ Anchored bool }
				err = json.NewDecoder(got.Body).Decode(&rec)
				got.Body.Close()
				return err == nil && rec.Anchored
			}
		}
		return false
	}
	wait := func(d time.Duration, ok func() bool) bool {
		for end := time.Now().Add(d); ; {
			if ok() {
				return true
			}
			select {
			case err := <-exited:
				t.Fatalf("%s exited: %v\n%s", s.Outputs["FollowCommand"], err, log.String())
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(end) {
				return false
			}
		}
	}
	if !wait(30*time.Second, recorded) {
		cmd.Process.Kill()
		t.Fatalf("%s recorded no run in the ledger within 30s\n%s", s.Outputs["FollowCommand"], log.String())
	}
	if via == "s3" && !subscribed() {
		t.Errorf("%s: the source bucket has no queue configuration of follow's for %s", s.Outputs["FollowCommand"], s.Outputs["ChangeQueueArn"])
	}
	// Anchored: follow's probe went from the source, through the stack's route (and, for
	// eventbridge, the stack's rule and the queue's policy's statement), to follow.
	ok := wait(15*time.Second, anchored)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("follow stopped by SIGTERM: %v\n%s", err, log.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Errorf("follow did not stop within 60s of SIGTERM\n%s", log.String())
	}
	t.Logf("follow on moto (via %s):\n%s", via, log.String())
	if via == "eventbridge" && !ok {
		t.Errorf("follow through EventBridge is not anchored within 15s: the probe's event did not come through the stack's rule")
	}
	gap(t, "Events."+via+".Time", ok, "follow's probe, as moto sends its event through %s, anchors follow", via)

	// Unsubscribe, as the runbook does before Follow=off.
	unsub := strings.Fields(s.Outputs["UnsubscribeCommand"])
	uc := exec.Command(filepath.Join(bin, unsub[0]), unsub[1:]...)
	uc.Env = s.Server.Environ()
	if out, err := uc.CombinedOutput(); err != nil {
		t.Errorf("%s: %v\n%s", s.Outputs["UnsubscribeCommand"], err, out)
	}
	if subscribed() {
		t.Errorf("after %s the bucket still sends follow's events", s.Outputs["UnsubscribeCommand"])
	}
}
