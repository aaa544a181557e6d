package fleet

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

	"github.com/s3clone/s3clone/internal/cli"
)

// TaskUsage is planner task's usage text.
const TaskUsage = `usage: planner task --stack NAME -- COMMAND [flags]

Runs a planner command as a one-off ECS task in the stack, next to the
buckets and the fleet, and waits for it: listing from inside the region
is faster and cheaper than from a laptop, and a bucket that only allows
its VPC endpoint (aws:SourceVpce) can be listed only from there. The
task definition already names the source, destination, queues and
ledger (the stack's parameters): give only the command and what differs,
e.g.

  planner task --stack s3clone -- cutover --scale-ecs CLUSTER/SERVICE --workers 8

The task's log is printed as it comes, and this command exits with the
command's exit code (0: clean; 1: keys not right, named in the log and
in the ledger, planner status shows them). Interrupting this command
leaves the task running. Needs the stack's OperatorPolicy (ecs:RunTask,
iam:PassRole, ecs:DescribeTasks, logs:GetLogEvents, cloudformation:DescribeStacks).`

// StacksAPI is the part of the CloudFormation client that reads the
// stack's outputs.
type StacksAPI interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, optFns ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

var _ StacksAPI = (*cloudformation.Client)(nil)

// TaskOptions are planner task's flags: a planner command to run as an ECS
// task in an s3clone stack.
type TaskOptions struct {
	Stack   string        // --stack, required
	Command []string      // the planner command and its flags, after "--": the caller sets it from the flags' Args
	Poll    time.Duration // --poll, default 5s
}

// Register defines the flags, and lets the command follow "--".
func (o *TaskOptions) Register(f *cli.Flags) {
	f.Command = true
	f.StringVar(&o.Stack, "stack", "", "the s3clone CloudFormation stack to run in (required)")
	f.DurationVar(&o.Poll, "poll", 5*time.Second, "how often to read the task's state and log")
}

// Validate adds a problem for a missing stack or command, and a poll too
// short.
func (o *TaskOptions) Validate(p *cli.Problems) {
	if o.Stack == "" {
		p.Addf("--stack is required: the name of the s3clone stack (aws cloudformation list-stacks)")
	}
	switch {
	case len(o.Command) == 0:
		p.Addf("no command to run: planner task --stack NAME -- cutover [flags]")
	case o.Command[0] == "task":
		p.Addf("planner task runs a command in ECS, not another task")
	}
	if o.Poll < 100*time.Millisecond {
		p.Addf("--poll %s: at least 100ms", o.Poll)
	}
}

// Run runs the command as a task of the stack's planner task definition,
// in its cluster and network, copies its log to w and waits for it to
// stop. A command that exited non-zero gives a *cli.CodeError with its
// exit code; a stack that is missing or lacks an output the task needs, a
// cli.UsageError.
func (o *TaskOptions) Run(ctx context.Context, cfn StacksAPI, api TaskAPI, logs LogsAPI, w io.Writer) error {
	outputs, err := stackOutputs(ctx, cfn, o.Stack)
	if err != nil {
		return err
	}
	t := Task{
		Cluster: outputs["ClusterName"], TaskDefinition: outputs["PlannerTaskDefinition"],
		Container: "planner", Command: append([]string{"planner"}, o.Command...),
		LogGroup: outputs["LogGroupName"], LogStreamPrefix: "planner",
	}
	if err := t.ParseNetwork(outputs["RunTaskNetwork"]); err != nil {
		return err
	}
	r, err := RunTask(ctx, api, logs, t, w, o.Poll)
	if err != nil {
		return err
	}
	code := int(*r.ExitCode)
	fmt.Fprintf(w, "task      %s: planner %s exited %d\n", r.TaskARN, o.Command[0], code)
	if code != 0 {
		return &cli.CodeError{Code: code, Err: fmt.Errorf("planner %s, run as an ECS task, exited %d (its log is above)", o.Command[0], code)}
	}
	return nil
}

// stackOutputs reads a stack's outputs, and checks it has those a task needs.
func stackOutputs(ctx context.Context, api StacksAPI, stack string) (map[string]string, error) {
	out, err := api.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
	if err != nil {
		return nil, cli.Usagef("--stack %s: %v (check the name and region, and grant cloudformation:DescribeStacks)", stack, err)
	}
	if len(out.Stacks) == 0 {
		return nil, cli.Usagef("--stack %s: no such stack", stack)
	}
	m := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		m[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	for _, k := range []string{"ClusterName", "PlannerTaskDefinition", "RunTaskNetwork", "LogGroupName"} {
		if m[k] == "" {
			return nil, cli.Usagef("--stack %s has no %s output: is it an s3clone stack (deploy/s3clone.yaml), fully created?", stack, k)
		}
	}
	return m, nil
}
