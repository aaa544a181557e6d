package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/fleet"
)

// fakeStacks answers DescribeStacks with one stack's outputs, no stack, or
// an error.
type fakeStacks struct {
	outputs map[string]string // nil: no stack
	err     error
	asked   string
}

func (f *fakeStacks) DescribeStacks(_ context.Context, in *cloudformation.DescribeStacksInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	f.asked = aws.ToString(in.StackName)
	if f.err != nil {
		return nil, f.err
	}
	out := &cloudformation.DescribeStacksOutput{}
	if f.outputs != nil {
		s := cfntypes.Stack{StackName: in.StackName}
		for k, v := range f.outputs {
			s.Outputs = append(s.Outputs, cfntypes.Output{OutputKey: aws.String(k), OutputValue: aws.String(v)})
		}
		out.Stacks = []cfntypes.Stack{s}
	}
	return out, nil
}

func s3cloneOutputs() map[string]string {
	return map[string]string{
		"ClusterName": "s3clone", "PlannerTaskDefinition": "arn:td/s3clone-planner:3", "LogGroupName": "/s3clone/x",
		"RunTaskNetwork": "awsvpcConfiguration={subnets=[subnet-a],securityGroups=[sg-1],assignPublicIp=DISABLED}",
		"ScaleEcs":       "s3clone/workers",
	}
}

// TestTaskPassesOnTheExitCode: planner task exits as the command it ran in
// ECS did.
func TestTaskPassesOnTheExitCode(t *testing.T) {
	t.Parallel()
	o := fleet.TaskOptions{Stack: "s3clone", Command: []string{"cutover", "--workers", "8"}, Poll: time.Millisecond}
	for _, exit := range []int32{0, 1, 2} {
		cfn, tasks := &fakeStacks{outputs: s3cloneOutputs()}, &fakeTasks{exit: aws.Int32(exit)}
		var out bytes.Buffer
		err := o.Run(context.Background(), cfn, tasks, tasks, &out)
		if code := cli.ExitCode(err, io.Discard); code != int(exit) {
			t.Errorf("the command exited %d; planner task: %v, exit %d", exit, err, code)
		}
		var coded *cli.CodeError
		if exit != 0 && (!errors.As(err, &coded) || !strings.Contains(err.Error(), "planner cutover, run as an ECS task, exited")) {
			t.Errorf("exit %d: %v; want a CodeError naming the command", exit, err)
		}
		if want := "task      arn:aws:ecs:us-east-1:123456789012:task/s3clone/abc123: planner cutover exited " + string(rune('0'+exit)) + "\n"; !strings.HasSuffix(out.String(), want) {
			t.Errorf("exit %d: said\n%s\nwant it to end %q", exit, out.String(), want)
		}
		in := tasks.run
		if cfn.asked != "s3clone" || aws.ToString(in.Cluster) != "s3clone" || aws.ToString(in.TaskDefinition) != "arn:td/s3clone-planner:3" ||
			!slices.Equal(in.Overrides.ContainerOverrides[0].Command, []string{"planner", "cutover", "--workers", "8"}) ||
			aws.ToString(in.Overrides.ContainerOverrides[0].Name) != "planner" ||
			!slices.Equal(in.NetworkConfiguration.AwsvpcConfiguration.Subnets, []string{"subnet-a"}) {
			t.Errorf("asked for stack %q; ran %+v", cfn.asked, in)
		}
		if tasks.stream != "planner/planner/abc123" {
			t.Errorf("read the log stream %q, want planner/planner/abc123 in the stack's log group", tasks.stream)
		}
	}
	tasks := &fakeTasks{} // stops without an exit code
	if err := o.Run(context.Background(), &fakeStacks{outputs: s3cloneOutputs()}, tasks, tasks, io.Discard); !errors.Is(err, fleet.ErrTaskFailed) {
		t.Errorf("a task without an exit code: %v, want ErrTaskFailed", err)
	}
}

// TestTaskReadsTheStack: a stack that is missing, unreadable or not an
// s3clone stack is a usage error, and no task is started.
func TestTaskReadsTheStack(t *testing.T) {
	t.Parallel()
	without := func(k string) map[string]string {
		m := s3cloneOutputs()
		delete(m, k)
		return m
	}
	badNet := s3cloneOutputs()
	badNet["RunTaskNetwork"] = "subnets=a"
	for _, c := range []struct {
		cfn  *fakeStacks
		want string
	}{
		{&fakeStacks{err: errors.New("ValidationError: Stack with id nope does not exist")}, "--stack nope: ValidationError: Stack with id nope does not exist (check the name and region, and grant cloudformation:DescribeStacks)"},
		{&fakeStacks{}, "--stack nope: no such stack"},
		{&fakeStacks{outputs: map[string]string{}}, "--stack nope has no ClusterName output: is it an s3clone stack (deploy/s3clone.yaml), fully created?"},
		{&fakeStacks{outputs: without("PlannerTaskDefinition")}, "--stack nope has no PlannerTaskDefinition output"},
		{&fakeStacks{outputs: without("RunTaskNetwork")}, "--stack nope has no RunTaskNetwork output"},
		{&fakeStacks{outputs: without("LogGroupName")}, "--stack nope has no LogGroupName output"},
	} {
		tasks := &fakeTasks{exit: aws.Int32(0)}
		o := fleet.TaskOptions{Stack: "nope", Command: []string{"status"}, Poll: time.Millisecond}
		err := o.Run(context.Background(), c.cfn, tasks, tasks, io.Discard)
		if cli.ExitCode(err, io.Discard) != cli.ExitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v; want a usage error saying %q", err, c.want)
		}
		if tasks.run != nil {
			t.Errorf("a task was started after %v", err)
		}
	}
	tasks := &fakeTasks{exit: aws.Int32(0)}
	o := fleet.TaskOptions{Stack: "s3clone", Command: []string{"status"}, Poll: time.Millisecond}
	if err := o.Run(context.Background(), &fakeStacks{outputs: badNet}, tasks, tasks, io.Discard); err == nil || !strings.Contains(err.Error(), "RunTaskNetwork output") || tasks.run != nil {
		t.Errorf("a malformed RunTaskNetwork: %v, started %v", err, tasks.run != nil)
	}
}

func TestTaskOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"--stack is required", "no command to run: planner task --stack NAME -- cutover [flags]"}},
		{[]string{"--stack", "s", "--", "task", "--stack", "s"}, []string{"planner task runs a command in ECS, not another task"}},
		{[]string{"--stack", "s", "--poll", "10ms", "--", "status"}, []string{"--poll 10ms: at least 100ms"}},
		{[]string{"--stack", "s", "status"}, []string{`unexpected argument "status"`}}, // the command goes after --
		{[]string{"--stack", "s", "--", "cutover", "--workers", "8"}, nil},
	} {
		var o fleet.TaskOptions
		f := cli.NewFlags("planner task", fleet.TaskUsage, io.Discard)
		o.Register(f)
		err := f.Parse(c.args)
		if err == nil {
			o.Command = f.Args()
			var p cli.Problems
			o.Validate(&p)
			err = p.Err()
		}
		if len(c.want) == 0 {
			if err != nil || !slices.Equal(o.Command, []string{"cutover", "--workers", "8"}) || o.Poll != 5*time.Second {
				t.Errorf("%q: %v, command %q, poll %s; want valid, the 5s poll by default", c.args, err, o.Command, o.Poll)
			}
			continue
		}
		if cli.ExitCode(err, io.Discard) != cli.ExitUsage {
			t.Errorf("%q: %v; want a usage error", c.args, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %v\nwant it to say %q", c.args, err, w)
			}
		}
	}
}
