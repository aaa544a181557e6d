package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/s3clone/s3clone/internal/fleet"
)

// fakeTasks plays ECS and CloudWatch Logs for one task: it stops after a
// few DescribeTasks, and its last log line arrives only after it stopped
// (as the awslogs driver may deliver it). moto's RunTask cannot run the
// stack's planner task definition (test/stack's TestDeployOnMoto says why), so the
// logic is tested here.
type fakeTasks struct {
	mu        sync.Mutex
	run       *ecs.RunTaskInput
	describes int
	exit      *int32
	lines     []string // written so far
	stream    string
	afterStop int // log reads since the task stopped
}

func (f *fakeTasks) RunTask(_ context.Context, in *ecs.RunTaskInput, _ ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.run = in
	return &ecs.RunTaskOutput{Tasks: []types.Task{{TaskArn: aws.String("arn:aws:ecs:us-east-1:123456789012:task/s3clone/abc123")}}}, nil
}

func (f *fakeTasks) DescribeTasks(_ context.Context, in *ecs.DescribeTasksInput, _ ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes++
	status := "RUNNING"
	switch f.describes {
	case 1:
		f.lines = append(f.lines, "run       R1")
	case 2:
		f.lines = append(f.lines, "plan done")
	default:
		status = "STOPPED"
	}
	t := types.Task{TaskArn: aws.String(in.Tasks[0]), LastStatus: aws.String(status)}
	if status == "STOPPED" {
		t.StopCode = types.TaskStopCodeEssentialContainerExited
		t.Containers = []types.Container{{Name: aws.String("planner"), ExitCode: f.exit}}
	}
	return &ecs.DescribeTasksOutput{Tasks: []types.Task{t}}, nil
}

func (f *fakeTasks) GetLogEvents(_ context.Context, in *cloudwatchlogs.GetLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stream = aws.ToString(in.LogStreamName)
	if f.describes >= 3 {
		// The last line arrives at the third read after the stop, after
		// two reads that found nothing new.
		if f.afterStop++; f.afterStop == 3 {
			f.lines = append(f.lines, "verdict   CLEAN")
		}
	}
	from := 0
	if in.NextToken != nil {
		from = int((*in.NextToken)[0] - '0')
	}
	var out []logtypes.OutputLogEvent
	for _, l := range f.lines[from:] {
		out = append(out, logtypes.OutputLogEvent{Message: aws.String(l)})
	}
	return &cloudwatchlogs.GetLogEventsOutput{Events: out, NextForwardToken: aws.String(string(rune('0' + len(f.lines))))}, nil
}

func TestRunTask(t *testing.T) {
	task := fleet.Task{Cluster: "s3clone", TaskDefinition: "arn:td/s3clone-planner:3", Container: "planner",
		Command: []string{"planner", "cutover"}, LogGroup: "/s3clone/x", LogStreamPrefix: "planner"}
	if err := task.ParseNetwork("awsvpcConfiguration={subnets=[subnet-a,subnet-b],securityGroups=[sg-1],assignPublicIp=ENABLED}"); err != nil {
		t.Fatal(err)
	}
	for _, exit := range []*int32{aws.Int32(0), aws.Int32(1), nil} {
		f := &fakeTasks{exit: exit}
		var w bytes.Buffer
		r, err := fleet.RunTask(context.Background(), f, f, task, &w, time.Millisecond)
		switch {
		case exit == nil:
			if !errors.Is(err, fleet.ErrTaskFailed) {
				t.Errorf("a task stopped without an exit code: %v, want ErrTaskFailed", err)
			}
		case err != nil || r.ExitCode == nil || *r.ExitCode != *exit:
			t.Errorf("exit %d: RunTask = %+v, %v", *exit, r, err)
		}
		if !strings.Contains(w.String(), "run       R1\nplan done\nverdict   CLEAN\n") {
			t.Errorf("the task's log, the line written after it stopped included, not printed in order:\n%s", w.String())
		}
		in := f.run
		net := in.NetworkConfiguration.AwsvpcConfiguration
		if aws.ToString(in.TaskDefinition) != task.TaskDefinition || !slices.Equal(in.Overrides.ContainerOverrides[0].Command, task.Command) ||
			aws.ToString(in.CapacityProviderStrategy[0].CapacityProvider) != "FARGATE" || len(in.CapacityProviderStrategy) != 1 ||
			!slices.Equal(net.Subnets, []string{"subnet-a", "subnet-b"}) || !slices.Equal(net.SecurityGroups, []string{"sg-1"}) || net.AssignPublicIp != types.AssignPublicIpEnabled {
			t.Errorf("RunTask asked for %+v", in)
		}
		if f.stream != "planner/planner/abc123" {
			t.Errorf("read log stream %q, want the awslogs driver's planner/planner/abc123", f.stream)
		}
	}
	var bad fleet.Task
	if err := bad.ParseNetwork("subnets=a"); err == nil {
		t.Error("ParseNetwork took a malformed RunTaskNetwork")
	}
}
