package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/fleet"
)

const taskUsage = `usage: planner task --stack NAME -- COMMAND [flags]

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

type taskOptions struct {
	stack   string
	command []string
	poll    time.Duration
	conn    config.Connection
}

func (o *taskOptions) parse(args []string) error {
	f := cli.NewFlags("planner task", taskUsage, os.Stderr)
	f.Command = true
	f.StringVar(&o.stack, "stack", "", "the s3clone CloudFormation stack to run in (required)")
	f.DurationVar(&o.poll, "poll", 5*time.Second, "how often to read the task's state and log")
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	o.command = f.Args()
	var p cli.Problems
	if o.stack == "" {
		p.Addf("--stack is required: the name of the s3clone stack (aws cloudformation list-stacks)")
	}
	switch {
	case len(o.command) == 0:
		p.Addf("no command to run: planner task --stack NAME -- cutover [flags]")
	case o.command[0] == "task":
		p.Addf("planner task runs a command in ECS, not another task")
	}
	if o.poll < 100*time.Millisecond {
		p.Addf("--poll %s: at least 100ms", o.poll)
	}
	o.conn.Validate(&p)
	return p.Err()
}

func taskCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o taskOptions
	if err := o.parse(args); err != nil {
		return err
	}
	_, awsCfg, err := o.conn.Open(ctx, 4)
	if err != nil {
		return err
	}
	outputs, err := stackOutputs(ctx, cloudformation.NewFromConfig(awsCfg), o.stack)
	if err != nil {
		return err
	}
	t := fleet.Task{
		Cluster: outputs["ClusterName"], TaskDefinition: outputs["PlannerTaskDefinition"],
		Container: "planner", Command: append([]string{"planner"}, o.command...),
		LogGroup: outputs["LogGroupName"], LogStreamPrefix: "planner",
	}
	if err := t.ParseNetwork(outputs["RunTaskNetwork"]); err != nil {
		return err
	}
	r, err := fleet.RunTask(ctx, ecs.NewFromConfig(awsCfg), cloudwatchlogs.NewFromConfig(awsCfg), t, stdout, o.poll)
	if err != nil {
		return err
	}
	code := int(*r.ExitCode)
	fmt.Fprintf(stdout, "task      %s: planner %s exited %d\n", r.TaskARN, o.command[0], code)
	if code != 0 {
		return &cli.CodeError{Code: code, Err: fmt.Errorf("planner %s, run as an ECS task, exited %d (its log is above)", o.command[0], code)}
	}
	return nil
}

// stackOutputs reads a stack's outputs, and checks it has those a task needs.
func stackOutputs(ctx context.Context, api *cloudformation.Client, stack string) (map[string]string, error) {
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
