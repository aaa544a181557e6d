package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// TaskAPI is the part of the ECS client that runs a planner task.
type TaskAPI interface {
	RunTask(ctx context.Context, in *ecs.RunTaskInput, optFns ...func(*ecs.Options)) (*ecs.RunTaskOutput, error)
	DescribeTasks(ctx context.Context, in *ecs.DescribeTasksInput, optFns ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
}

// LogsAPI is the part of the CloudWatch Logs client that reads a task's log.
type LogsAPI interface {
	GetLogEvents(ctx context.Context, in *cloudwatchlogs.GetLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error)
}

var (
	_ TaskAPI = (*ecs.Client)(nil)
	_ LogsAPI = (*cloudwatchlogs.Client)(nil)
)

// Task is a planner command to run as a one-off ECS task from the stack's
// planner task definition, in the stack's network.
type Task struct {
	Cluster, TaskDefinition string
	Subnets, SecurityGroups []string
	AssignPublicIP          bool
	Container               string   // the container to run the command in: planner
	Command                 []string // e.g. planner cutover --diff ...
	// LogGroup and LogStreamPrefix: where the awslogs driver writes the
	// container's output (stream PREFIX/CONTAINER/TASK-ID).
	LogGroup, LogStreamPrefix string
}

// ParseNetwork reads the stack's RunTaskNetwork output,
// awsvpcConfiguration={subnets=[A,B],securityGroups=[SG],assignPublicIp=DISABLED},
// into t.
func (t *Task) ParseNetwork(s string) error {
	m := networkRE.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("the stack's RunTaskNetwork output %q is not awsvpcConfiguration={subnets=[...],securityGroups=[...],assignPublicIp=...}", s)
	}
	t.Subnets, t.SecurityGroups = splitList(m[1]), splitList(m[2])
	t.AssignPublicIP = m[3] == "ENABLED"
	return nil
}

var networkRE = regexp.MustCompile(`subnets=\[([^\]]*)\],securityGroups=\[([^\]]*)\],assignPublicIp=(ENABLED|DISABLED)`)

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// TaskResult is how a task ended.
type TaskResult struct {
	TaskARN       string
	ExitCode      *int32 // the container's; nil when it never ran or ECS does not say
	StopCode      string
	StoppedReason string
	LogLines      int
}

// ErrTaskFailed is wrapped by RunTask's error when the task stopped
// without an exit code of its container (it could not start, or was
// stopped).
var ErrTaskFailed = errors.New("the planner task did not finish")

// RunTask starts t on Fargate (on-demand: a Spot stop would cut a window
// short), copies its log to w as it comes, and returns once the task has
// stopped, with the container's exit code. If ctx ends first the task
// goes on (it is the window's work): RunTask says how to follow or stop
// it and returns ctx's error.
func RunTask(ctx context.Context, api TaskAPI, logs LogsAPI, t Task, w io.Writer, poll time.Duration) (TaskResult, error) {
	assign := types.AssignPublicIpDisabled
	if t.AssignPublicIP {
		assign = types.AssignPublicIpEnabled
	}
	out, err := api.RunTask(ctx, &ecs.RunTaskInput{
		Cluster:                  aws.String(t.Cluster),
		TaskDefinition:           aws.String(t.TaskDefinition),
		CapacityProviderStrategy: []types.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE"), Weight: 1}},
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
			Subnets: t.Subnets, SecurityGroups: t.SecurityGroups, AssignPublicIp: assign,
		}},
		Overrides: &types.TaskOverride{ContainerOverrides: []types.ContainerOverride{{Name: aws.String(t.Container), Command: t.Command}}},
		StartedBy: aws.String("s3clone-planner-task"),
	})
	if err != nil {
		return TaskResult{}, fmt.Errorf("run the planner task (%s in cluster %s): %w (grant ecs:RunTask on it and iam:PassRole on its roles: the stack's OperatorPolicy)", t.TaskDefinition, t.Cluster, err)
	}
	if len(out.Tasks) == 0 {
		reason := "no task started"
		if len(out.Failures) > 0 {
			reason = aws.ToString(out.Failures[0].Reason) + " " + aws.ToString(out.Failures[0].Detail)
		}
		return TaskResult{}, fmt.Errorf("%w: ECS started no task: %s", ErrTaskFailed, reason)
	}
	r := TaskResult{TaskARN: aws.ToString(out.Tasks[0].TaskArn)}
	id := r.TaskARN[strings.LastIndex(r.TaskARN, "/")+1:]
	fmt.Fprintf(w, "task      %s started: aws ecs describe-tasks --cluster %s --tasks %s\n", id, t.Cluster, id)
	tail := logTail{api: logs, group: t.LogGroup, stream: t.LogStreamPrefix + "/" + t.Container + "/" + id, w: w}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(w, "task      %s goes on without this command: its verdict will be in the ledger (planner status); its log is %s %s; to stop it: aws ecs stop-task --cluster %s --task %s (needs ecs:StopTask)\n",
				id, t.LogGroup, tail.stream, t.Cluster, id)
			return r, ctx.Err()
		case <-time.After(poll):
		}
		d, err := api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(t.Cluster), Tasks: []string{r.TaskARN}})
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return r, fmt.Errorf("describe the planner task %s: %w (grant ecs:DescribeTasks)", id, err)
		}
		tail.read(ctx)
		if len(d.Tasks) == 0 || aws.ToString(d.Tasks[0].LastStatus) != "STOPPED" {
			continue
		}
		task := d.Tasks[0]
		// The awslogs driver may deliver the last lines (the verdict) after
		// the task stopped: read until two reads in a row bring nothing.
		for quiet := 0; quiet < 2 && ctx.Err() == nil; {
			before := tail.lines
			tail.read(ctx)
			if tail.lines == before {
				quiet++
			} else {
				quiet = 0
			}
			if quiet < 2 {
				select {
				case <-ctx.Done():
				case <-time.After(poll):
				}
			}
		}
		r.LogLines = tail.lines
		r.StopCode, r.StoppedReason = string(task.StopCode), aws.ToString(task.StoppedReason)
		for _, c := range task.Containers {
			if aws.ToString(c.Name) == t.Container {
				r.ExitCode = c.ExitCode
				if r.StoppedReason == "" {
					r.StoppedReason = aws.ToString(c.Reason)
				}
			}
		}
		if r.ExitCode == nil {
			return r, fmt.Errorf("%w: task %s stopped (%s) without an exit code: %s", ErrTaskFailed, id, r.StopCode, r.StoppedReason)
		}
		return r, nil
	}
}

// logTail copies new events of one log stream to w.
type logTail struct {
	api           LogsAPI
	group, stream string
	w             io.Writer
	token         *string
	lines         int
	warned        bool
}

// read copies what is new. A stream not made yet (the task is still
// starting) is not an error; others are said once, and the task's end is
// still waited for.
func (l *logTail) read(ctx context.Context) {
	for {
		out, err := l.api.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{
			LogGroupName: aws.String(l.group), LogStreamName: aws.String(l.stream),
			StartFromHead: aws.Bool(true), NextToken: l.token,
		})
		if err != nil {
			if !l.warned && !strings.Contains(err.Error(), "ResourceNotFoundException") {
				fmt.Fprintf(l.w, "task      cannot read its log %s %s: %v (grant logs:GetLogEvents)\n", l.group, l.stream, err)
				l.warned = true
			}
			return
		}
		for _, e := range out.Events {
			fmt.Fprintln(l.w, aws.ToString(e.Message))
			l.lines++
		}
		next := out.NextForwardToken
		if next == nil || (l.token != nil && *next == *l.token) {
			return // at the end: the same token comes back
		}
		l.token = next
		if len(out.Events) == 0 {
			return
		}
	}
}
