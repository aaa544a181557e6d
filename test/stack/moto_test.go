// Package stack creates the CloudFormation stack (deploy/s3clone.yaml) on
// moto and checks it: every resource and output against moto's services,
// the fleet driven a little, follow's subscription, the stack deleted and
// what it keeps, and the roles' credentials on a moto enforcing IAM; and
// it reads the template with goformation (schema_test.go). `make
// deploy-check` runs it, and `make test`; `make test-unit` leaves it out,
// as its tests need moto_server and its build is the slowest of the
// repository's (the SDK's clients of every service the stack has, and
// goformation's resource types). Its test bed is test/testbed/stackbed;
// deploy's own tests are the unit tests of the template, the permissions
// and the Dockerfile.
package stack

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/s3clone/s3clone/deploy"
	"github.com/s3clone/s3clone/test/testbed"
	"github.com/s3clone/s3clone/test/testbed/cfn"
	"github.com/s3clone/s3clone/test/testbed/stackbed"
)

// motoSkips are the resource types moto 5.2.1's CloudFormation does not
// implement: it logs "No Moto CloudFormation support for TYPE", creates
// nothing and reports the stack complete. stackbed.DeployOnMoto registers
// each through its service's API (its stand-ins). The test fails when a
// type the template uses is skipped and not listed here, and when a type
// listed here is created after all, so the list stays true.
var motoSkips = map[string]bool{
	"AWS::CloudWatch::Alarm":                      true,
	"AWS::ApplicationAutoScaling::ScalableTarget": true,
	"AWS::ApplicationAutoScaling::ScalingPolicy":  true,
	"AWS::SQS::QueuePolicy":                       true,
	// Moto makes topics, not subscriptions. AWS::EC2::VPCEndpoint,
	// AWS::Events::Rule, AWS::IAM::ManagedPolicy and AWS::SNS::Topic it makes.
	"AWS::SNS::Subscription": true,
}

// motoGaps are what moto 5.2.1 does not do as AWS does with a stack it
// reports complete: a property it drops, a behaviour it lacks. Each is
// checked: a gap not listed fails the test, and so does a listed one moto
// has closed (remove it then, and the check holds moto to AWS).
var motoGaps = map[string]string{
	// What moto's CloudFormation drops of the resources it makes.
	"AWS::EC2::SecurityGroup.SecurityGroupEgress":      "the template's egress rules are not made; the default all-traffic rule stays",
	"AWS::EC2::VPCEndpoint.Tags":                       "only moto's aws:cloudformation:* tags, not the template's",
	"AWS::ECS::Cluster.CapacityProviders":              "the cluster has none (Cluster takes only its name)",
	"AWS::ECS::Cluster.ClusterSettings":                "containerInsights stays disabled",
	"AWS::ECS::Cluster.Tags":                           "no tags",
	"AWS::ECS::Service.CapacityProviderStrategy":       "none; the service's launch type is EC2",
	"AWS::ECS::Service.DeploymentConfiguration":        "moto's defaults",
	"AWS::ECS::Service.DesiredCount":                   "a service with no DesiredCount starts at 0 tasks (AWS: 1)",
	"AWS::ECS::Service.NetworkConfiguration":           "no awsvpc configuration (subnets, security group)",
	"AWS::ECS::Service.PlatformVersion":                "dropped",
	"AWS::ECS::Service.PropagateTags":                  "NONE",
	"AWS::ECS::Service.Tags":                           "no tags",
	"AWS::ECS::TaskDefinition.Cpu":                     "dropped",
	"AWS::ECS::TaskDefinition.ExecutionRoleArn":        "dropped",
	"AWS::ECS::TaskDefinition.NetworkMode":             "bridge, not awsvpc",
	"AWS::ECS::TaskDefinition.RequiresCompatibilities": "EC2 only",
	"AWS::ECS::TaskDefinition.RuntimePlatform":         "dropped",
	"AWS::ECS::TaskDefinition.Tags":                    "no tags",
	"AWS::ECS::TaskDefinition.TaskRoleArn":             "dropped",
	"AWS::IAM::Role.Policies":                          "an inline policy is kept as a Python object: GetRolePolicy returns its repr (single quotes, None for each AWS::NoValue statement), which is not JSON and which moto's own IAM enforcement cannot read (stackbed.MotoStack.RepairRolePolicies)",
	"AWS::S3::Bucket.LifecycleConfiguration":           "none: the ledger expires nothing whatever LedgerExpirationDays says",
	"AWS::S3::Bucket.OwnershipControls":                "none",
	"AWS::S3::Bucket.PublicAccessBlockConfiguration":   "none",
	"AWS::SNS::Topic.Tags":                             "no tags",
	// Fn::GetAtt values moto's CloudFormation gives otherwise than AWS.
	"Fn::GetAtt AWS::Logs::LogGroup.Arn": "the group's ARN without the :* AWS's ends in, so a policy on it (the execution role's logs:PutLogEvents) names no log stream",
	// What the stack's deletion leaves on moto (AWS deletes it).
	"kept after delete: AWS::EC2::VPCEndpoint":    "the endpoints stay",
	"kept after delete: AWS::ECS::Cluster":        "the cluster stays ACTIVE",
	"kept after delete: AWS::ECS::Service":        "the service stays ACTIVE",
	"kept after delete: AWS::IAM::ManagedPolicy":  "the managed policies stay",
	"kept after delete: AWS::ECS::TaskDefinition": "the task definitions stay ACTIVE",
	// CloudFormation, ECS and IAM behaviour.
	"CloudFormation.Rules":                 "Rules are not evaluated: a stack they refuse (MinWorkers above MaxWorkers) is created",
	"ECS.RunTask.CapacityProviderStrategy": "RunTask ignores a capacity provider strategy and looks for EC2 container instances (500); stackbed.MotoStack.RunPlanner launches FARGATE",
	"ECS.RunTask.TaskLevelMemory":          "RunTask fails (500, a TypeError) on a task definition whose containers have no memory of their own; stackbed.MotoStack.RunnableTaskDefinition registers one moto runs",
	"ECS.Task.NumericCpuMemory":            "RunTask, DescribeTasks and StopTask give each container's cpu and memory as JSON numbers, where ECS has strings: the Go SDK fails (\"expected string, got 0\"); stackbed.MotoServer.ECSEndpoint is a proxy making them strings",
	"IAM.Condition.s3:prefix":              "of conditions moto evaluates StringEquals alone (and of keys only sts:ExternalId): the ListLedger statement's StringLike on s3:prefix is ignored, so listing the ledger's bucket outside the prefix is allowed",
	"IAM.ECS.Resource":                     "ECS calls are authorized against the resource *, so a grant on the service's ARN (the planner's ecs:DescribeServices, ecs:UpdateService) is refused",
	"IAM.S3.CopySource":                    "CopyObject is checked as s3:PutObject on the destination only; reading the source is not checked",
	"IAM.Signature.PrefixWithSlash":        "moto's signature check refuses a listing whose prefix holds / (SignatureDoesNotMatch, 403)",
	"IAM.TrustPolicy.ServicePrincipal":     "AssumeRole of a role trusting only a service (ecs-tasks.amazonaws.com) fails with 500 (moto compares the caller with a Principal that has no AWS key), not 403; the test lets its administrator assume the roles instead",
}

// gap checks one thing moto may not do as AWS does: ok says whether it
// did. A listed gap is logged; an unlisted failure fails the test.
func gap(t *testing.T, key string, ok bool, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	why, listed := motoGaps[key]
	switch {
	case listed && ok:
		t.Errorf("moto now does %s (%s): remove it from motoGaps", key, msg)
	case listed:
		t.Logf("moto gap %s: %s (%s)", key, why, msg)
	case !ok:
		t.Errorf("%s: %s", key, msg)
	}
}

// TestDeployOnMoto creates the stack on moto as an operator would, in four
// variants of its parameters (follow off, through EventBridge, through S3), checks that every resource is there and
// every output names something real, drives the fleet a little, deletes
// the stack and checks what is kept; then, on a second moto enforcing IAM,
// uses the roles' credentials. `make deploy-check` runs it.
func TestDeployOnMoto(t *testing.T) {
	tpl, err := cfn.Parse(deploy.Template)
	if err != nil {
		t.Fatal(err)
	}
	srv := stackbed.StartMoto(t)
	net := srv.Network(t)
	src, dst := srv.Bucket(t, testbed.Name("source")), srv.Bucket(t, testbed.Name("dest"))
	ownLedger := srv.Bucket(t, testbed.Name("ledger"))
	boundary := managedPolicy(t, srv)
	created, err := srv.Clients().SNS.CreateTopic(context.Background(), &sns.CreateTopicInput{Name: aws.String(testbed.Name("ops"))})
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	topic := aws.ToString(created.TopicArn)
	required := map[string]string{
		"SourceBucket": src, "DestinationBucket": dst, "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/s3clone:test",
		"VpcId": net.VpcID, "Subnets": strings.Join(net.Subnets, ","),
	}
	with := func(more map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range required {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	variants := []struct {
		name   string
		params map[string]string
	}{
		{"defaults", required},
		{"every option", with(map[string]string{
			"AllowDelete": "true", "CannedAcl": "bucket-owner-full-control",
			"SourceKmsKeyArn":      "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
			"DestinationKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/66666666-7777-8888-9999-000000000000",
			"Autoscaling":          "off", "EcrRepository": "", "MaxWorkers": "4", "Concurrency": "64", "WorkerSize": "512-1024",
			"CpuArchitecture": "ARM64", "CapacityProvider": "FARGATE", "MinWorkers": "1", "AssignPublicIp": "ENABLED", "MaxReceiveCount": "5",
			"LedgerExpirationDays": "30", "LogRetentionDays": "30", "AlarmTopicArn": topic, "OldestMessageAlarmMinutes": "60",
			// Each passed only if the template declares it (declared).
			"VpcEndpoints": "create", "RouteTableIds": net.RouteTableID, "PermissionsBoundary": boundary, "AlarmEmail": "ops@example.com",
			// Follow through EventBridge: the stack's rule, and the marks under the source's key.
			"Follow": "eventbridge",
		})},
		// planner follow as a service, the source bucket sending its events itself.
		{"follow", with(map[string]string{"Follow": "s3", "AllowDelete": "true", "SourceAccountId": testbed.MotoAccount})},
		{"own ledger and spot", with(map[string]string{
			"LedgerBucket": ownLedger, "LedgerPrefix": "clones/prod/", "MinWorkers": "2", "MaxWorkers": "8",
			"BacklogPerWorker": "500", "CapacityProvider": "FARGATE_SPOT", "OnDemandBase": "2",
			"LedgerKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
		})},
	}
	exercised, ran := map[string]bool{}, 0
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			ran++
			params := declared(t, tpl, v.params, v.name == "every option")
			for k, val := range params {
				if d, ok := tpl.Parameters[k]["Default"]; ok && d != val {
					exercised[k] = true
				}
			}
			s := stackbed.DeployOnMoto(t, srv, deploy.Template, params)
			checkResources(t, s)
			checkOutputs(t, s)
			checkQueues(t, s)
			checkLedger(t, s)
			checkFleet(t, s)
			checkRoles(t, s)
			checkLogGroups(t, s)
			checkNetwork(t, s, net)
			checkDashboard(t, s)
			checkEndpoints(t, s)
			checkNotifications(t, s)
			checkStandIns(t, s)
			checkFollow(t, s)
			if v.name == "defaults" {
				firstUse(t, s)
			}
			deleteAndCheckKept(t, s)
		})
	}
	for _, name := range slices.Sorted(maps.Keys(tpl.Parameters)) {
		if _, hasDefault := tpl.Parameters[name]["Default"]; hasDefault && !exercised[name] && ran == len(variants) {
			t.Logf("parameter %s is left at its default in every variant", name)
		}
	}
	// What moto said it skipped is what the list says it skips.
	for _, typ := range srv.Unsupported() {
		if !motoSkips[typ] {
			t.Errorf("moto's log: No Moto CloudFormation support for %s, which is not in motoSkips", typ)
		}
	}
	t.Run("rules", func(t *testing.T) { rulesUnchecked(t, srv, tpl, required) })
	t.Run("IAM enforced", func(t *testing.T) { iamEnforced(t, tpl, required) })
}

// rulesUnchecked: a stack the template's Rules refuse (MinWorkers above
// MaxWorkers) is refused before anything is made on AWS; moto does not
// evaluate Rules, so deploy-check cannot catch a rule's mistake.
func rulesUnchecked(t *testing.T, srv *stackbed.MotoServer, tpl *cfn.Template, required map[string]string) {
	if _, ok := tpl.Parameters["MinWorkers"]; !ok {
		t.Skip("no MinWorkers parameter")
	}
	ctx := context.Background()
	var params []cfntypes.Parameter
	for k, v := range required {
		params = append(params, cfntypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(v)})
	}
	params = append(params, cfntypes.Parameter{ParameterKey: aws.String("MinWorkers"), ParameterValue: aws.String("4")},
		cfntypes.Parameter{ParameterKey: aws.String("MaxWorkers"), ParameterValue: aws.String("2")})
	cf := srv.Clients().CFN
	out, err := cf.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String(testbed.Name("refused")), TemplateBody: aws.String(string(deploy.Template)), Parameters: params,
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam, cfntypes.CapabilityCapabilityNamedIam},
	})
	status := ""
	if err == nil {
		d, derr := cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: out.StackId})
		if derr == nil && len(d.Stacks) == 1 {
			status = string(d.Stacks[0].StackStatus)
		}
		if _, err := cf.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: out.StackId}); err != nil {
			t.Errorf("delete the stack: %v", err)
		}
	}
	gap(t, "CloudFormation.Rules", err != nil || status != string(cfntypes.StackStatusCreateComplete), "MinWorkers 4, MaxWorkers 2: %v, %s", err, status)
}

// declared keeps the parameters the template declares; with adapt, a
// parameter it declares that the table does not know gets a value other
// than its default (its first other allowed value), so a new option is
// exercised too. A required parameter the test does not give fails it.
func declared(t *testing.T, tpl *cfn.Template, params map[string]string, adapt bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range params {
		if _, ok := tpl.Parameters[k]; ok {
			out[k] = v
		} else {
			t.Logf("the template declares no parameter %s: not passed", k)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(tpl.Parameters)) {
		p := tpl.Parameters[name]
		if _, ok := out[name]; ok {
			continue
		}
		d, hasDefault := p["Default"]
		if !hasDefault {
			t.Fatalf("parameter %s has no default: give it a value in TestDeployOnMoto", name)
		}
		if !adapt {
			continue
		}
		allowed, _ := p["AllowedValues"].([]any)
		for _, a := range allowed {
			if a != d {
				out[name] = cfn.String(a)
				t.Logf("parameter %s (new to this test): %q", name, out[name])
				break
			}
		}
	}
	return out
}

// managedPolicy creates a managed policy to serve as a permissions boundary.
func managedPolicy(t *testing.T, srv *stackbed.MotoServer) string {
	t.Helper()
	out, err := srv.Clients().IAM.CreatePolicy(context.Background(), &iam.CreatePolicyInput{
		PolicyName:     aws.String(testbed.Name("boundary")),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","sqs:*","ecs:*","logs:*","kms:*"],"Resource":"*"}]}`),
	})
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	return aws.ToString(out.Policy.Arn)
}

// checkResources: every resource the template creates with these
// parameters is CREATE_COMPLETE, or of a type moto skips (then stood in
// for); none is created against its condition, none is extra.
func checkResources(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	made := map[string]string{}
	for _, r := range s.StackResources(t) {
		name := aws.ToString(r.LogicalResourceId)
		made[name] = aws.ToString(r.ResourceType)
		if r.ResourceStatus != "CREATE_COMPLETE" {
			t.Errorf("%s: %s (%s)", name, r.ResourceStatus, aws.ToString(r.ResourceStatusReason))
		}
		if _, ok := s.Template.Resources[name]; !ok {
			t.Errorf("the stack has %s (%s), which the template does not declare", name, made[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Template.Resources)) {
		r := s.Template.Resources[name]
		typ, created := made[name]
		switch exists := s.Exists(t, name); {
		case !exists && created:
			t.Errorf("%s was created though its condition %s is false", name, r.Condition)
		case !exists:
		case created && typ != r.Type:
			t.Errorf("%s is a %s, the template declares a %s", name, typ, r.Type)
		case created && motoSkips[r.Type]:
			t.Errorf("moto now creates %s (%s): remove the type from motoSkips", name, r.Type)
		case !created && !motoSkips[r.Type]:
			t.Errorf("moto did not create %s (%s), a type not in motoSkips; moto's log:\n%s", name, r.Type, grepLog(s.Server, r.Type))
		case !created:
			if _, ok := s.Resources[name]; !ok && slices.Contains(stackbed.MotoStandInTypes(), r.Type) {
				t.Errorf("%s (%s) has no stand-in", name, r.Type)
			}
		}
	}
}

func grepLog(srv *stackbed.MotoServer, word string) string {
	var lines []string
	for _, l := range strings.Split(srv.Log(), "\n") {
		if strings.Contains(l, word) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// checkOutputs: every output the template gives is there and is what the
// template says, resolved against the stack's resources.
func checkOutputs(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(s.Template.Outputs)) {
		o := s.Template.Outputs[name]
		cond, _ := o["Condition"].(string)
		got, present := s.Outputs[name]
		if c, err := s.Resolver.Condition(cond); err != nil {
			t.Fatal(err)
		} else if !c {
			if present {
				t.Errorf("output %s is %q though its condition %s is false", name, got, cond)
			}
			continue
		}
		want, err := s.Resolver.Resolve(o["Value"])
		if err != nil {
			t.Errorf("output %s: %v", name, err)
			continue
		}
		if !present || got == "" || got != cfn.String(want) {
			t.Errorf("output %s is %q (present %v), the template says %q", name, got, present, cfn.String(want))
		}
	}
	for name := range s.Outputs {
		if _, ok := s.Template.Outputs[name]; !ok {
			t.Errorf("the stack outputs %s, which the template does not declare", name)
		}
	}
}

// asMap is an SDK value as plain data (its field names are CloudFormation's
// property names).
func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// subset says whether got holds everything want says (maps: every key of
// want; lists: the same items in order; scalars: the same string).
func subset(want, got any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !subset(v, g[k]) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !subset(w[i], g[i]) {
				return false
			}
		}
		return true
	default:
		return got != nil && cfn.String(want) == cfn.String(got)
	}
}

// tagsWant are a resource's resolved tags as a map.
func tagsWant(props map[string]any) map[string]string {
	out := map[string]string{}
	tags, _ := props["Tags"].([]any)
	for _, tg := range tags {
		kv, _ := tg.(map[string]any)
		out[cfn.String(kv["Key"])] = cfn.String(kv["Value"])
	}
	return out
}

func hasTags(want, got map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// resourcesOf are the logical ids of the resources of a type the stack has.
func resourcesOf(t *testing.T, s *stackbed.MotoStack, typ string) []string {
	t.Helper()
	var out []string
	for _, name := range slices.Sorted(maps.Keys(s.Template.Resources)) {
		if s.Template.Resources[name].Type == typ && s.Exists(t, name) {
			out = append(out, name)
		}
	}
	return out
}

// queueProperties are the AWS::SQS::Queue properties that are queue
// attributes of the same name.
var queueProperties = []string{"VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled", "DelaySeconds",
	"MaximumMessageSize", "ReceiveMessageWaitTimeSeconds", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "FifoQueue", "ContentBasedDeduplication"}

// checkQueues: each queue has the attributes the template gives it; the
// work queue's dead letters go to the dead-letter queue after
// MaxReceiveCount receives.
func checkQueues(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	ctx := context.Background()
	arns := map[string]string{}
	for _, name := range resourcesOf(t, s, "AWS::SQS::Queue") {
		props := s.Properties(t, name)
		out, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(s.Resources[name]), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		if err != nil {
			t.Errorf("queue %s: %v", name, err)
			continue
		}
		attrs := out.Attributes
		arns[s.Resources[name]] = attrs["QueueArn"]
		for k, v := range props {
			switch {
			case slices.Contains(queueProperties, k):
				if attrs[k] != cfn.String(v) {
					t.Errorf("queue %s: %s is %q, the template says %q", name, k, attrs[k], cfn.String(v))
				}
			case k == "RedrivePolicy" || k == "RedriveAllowPolicy":
				var got any
				if err := json.Unmarshal([]byte(attrs[k]), &got); err != nil || !subset(v, got) || !subset(got, v) {
					t.Errorf("queue %s: %s is %s, the template says %s", name, k, attrs[k], cfn.Canonical(v))
				}
			case k == "Tags":
				tags, err := s.SQS.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(s.Resources[name])})
				if err != nil || !hasTags(tagsWant(props), tags.Tags) {
					t.Errorf("queue %s: tags %v (%v), want %v", name, tags, err, tagsWant(props))
				}
			case k == "QueueName":
				if !strings.HasSuffix(s.Resources[name], "/"+cfn.String(v)) {
					t.Errorf("queue %s is %s, not named %v", name, s.Resources[name], v)
				}
			default:
				t.Errorf("queue %s: property %s is not checked here: add it", name, k)
			}
		}
	}
	// What the operator relies on: the outputs' queues and their redrive.
	work, dlq := s.Outputs["WorkQueueUrl"], s.Outputs["DeadLetterQueueUrl"]
	if arns[work] == "" || arns[dlq] == "" {
		t.Fatalf("WorkQueueUrl %q and DeadLetterQueueUrl %q are not the stack's queues (%v)", work, dlq, arns)
	}
	out, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(work), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameRedrivePolicy}})
	if err != nil {
		t.Fatal(err)
	}
	var redrive struct {
		DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(out.Attributes["RedrivePolicy"]), &redrive); err != nil ||
		redrive.DeadLetterTargetArn != arns[dlq] || strings.Trim(string(redrive.MaxReceiveCount), `"`) != s.Params["MaxReceiveCount"] {
		t.Errorf("the work queue's redrive policy is %s; want dead letters to %s after %s receives", out.Attributes["RedrivePolicy"], arns[dlq], s.Params["MaxReceiveCount"])
	}
}

// checkLedger: LedgerUrl is s3://BUCKET/PREFIX of an existing bucket, the
// stack's own (private, encrypted, expiring only when asked) or the one
// LedgerBucket names.
func checkLedger(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(s.Outputs["LedgerUrl"])
	if err != nil || u.Scheme != "s3" || strings.TrimPrefix(u.Path, "/") != s.Params["LedgerPrefix"] {
		t.Fatalf("LedgerUrl %q: want s3://BUCKET/%s", s.Outputs["LedgerUrl"], s.Params["LedgerPrefix"])
	}
	bucket := u.Host
	if _, err := s.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("LedgerUrl's bucket %s: %v", bucket, err)
	}
	if !s.Exists(t, "Ledger") {
		if bucket != s.Params["LedgerBucket"] {
			t.Errorf("LedgerUrl's bucket is %s, LedgerBucket %q", bucket, s.Params["LedgerBucket"])
		}
		return
	}
	if bucket != s.Resources["Ledger"] {
		t.Errorf("LedgerUrl's bucket is %s, the stack's ledger %s", bucket, s.Resources["Ledger"])
	}
	props := s.Properties(t, "Ledger")
	for k, want := range props {
		var got any
		var err error
		switch k {
		case "BucketEncryption":
			var out *s3.GetBucketEncryptionOutput
			if out, err = s.S3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(bucket)}); err == nil {
				rules := []any{}
				for _, r := range out.ServerSideEncryptionConfiguration.Rules {
					m := asMap(t, r)
					m["ServerSideEncryptionByDefault"] = m["ApplyServerSideEncryptionByDefault"] // the API's name for it
					rules = append(rules, m)
				}
				got = map[string]any{"ServerSideEncryptionConfiguration": rules}
			}
		case "PublicAccessBlockConfiguration":
			var out *s3.GetPublicAccessBlockOutput
			if out, err = s.S3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: aws.String(bucket)}); err == nil {
				got = asMap(t, out.PublicAccessBlockConfiguration)
			}
		case "OwnershipControls":
			var out *s3.GetBucketOwnershipControlsOutput
			if out, err = s.S3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: aws.String(bucket)}); err == nil {
				got = asMap(t, out.OwnershipControls)
			}
		case "LifecycleConfiguration":
			var out *s3.GetBucketLifecycleConfigurationOutput
			if out, err = s.S3.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(bucket)}); err == nil {
				rules := []any{}
				for _, r := range out.Rules {
					m := asMap(t, r)
					m["ExpirationInDays"] = m["Expiration"].(map[string]any)["Days"]
					if f, ok := m["Filter"].(map[string]any); ok && f["Prefix"] != nil {
						m["Prefix"] = f["Prefix"]
					}
					m["Id"] = m["ID"]
					rules = append(rules, m)
				}
				got = map[string]any{"Rules": rules}
			}
		case "Tags":
			var out *s3.GetBucketTaggingOutput
			if out, err = s.S3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(bucket)}); err == nil {
				got = asMap(t, out)["TagSet"]
			}
		default:
			t.Errorf("Ledger: property %s is not checked here: add it", k)
			continue
		}
		gap(t, "AWS::S3::Bucket."+k, err == nil && subset(want, got), "Ledger %s: %s is %s (%v), the template says %s", bucket, k, cfn.Canonical(got), err, cfn.Canonical(want))
	}
	if _, ok := props["LifecycleConfiguration"]; !ok {
		if _, err := s.S3.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(bucket)}); err == nil {
			t.Errorf("Ledger %s expires records though LedgerExpirationDays is %s", bucket, s.Params["LedgerExpirationDays"])
		}
	}
}

// checkFleet: the cluster, the worker service (ScaleEcs) and both task
// definitions, with the containers' commands and environments the
// template gives.
func checkFleet(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	ctx := context.Background()
	for _, name := range resourcesOf(t, s, "AWS::ECS::Cluster") {
		props := s.Properties(t, name)
		out, err := s.ECS.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{s.Resources[name]},
			Include: []ecstypes.ClusterField{ecstypes.ClusterFieldSettings, ecstypes.ClusterFieldTags}})
		if err != nil || len(out.Clusters) != 1 || aws.ToString(out.Clusters[0].Status) != "ACTIVE" {
			t.Fatalf("cluster %s: %v %v", name, err, out)
		}
		got := asMap(t, out.Clusters[0])
		for k, want := range props {
			switch k {
			case "ClusterName":
				if got["ClusterName"] != want {
					t.Errorf("cluster %s is named %v, want %v", name, got["ClusterName"], want)
				}
			case "Tags":
				gap(t, "AWS::ECS::Cluster.Tags", subset(want, lowerKeys(got["Tags"])), "tags %v", got["Tags"])
			default:
				gap(t, "AWS::ECS::Cluster."+k, subset(want, got[k]), "%s is %s, the template says %s", k, cfn.Canonical(got[k]), cfn.Canonical(want))
			}
		}
	}
	for _, name := range resourcesOf(t, s, "AWS::ECS::TaskDefinition") {
		props := s.Properties(t, name)
		out, err := s.ECS.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(s.Resources[name]), Include: []ecstypes.TaskDefinitionField{ecstypes.TaskDefinitionFieldTags}})
		if err != nil {
			t.Fatalf("task definition %s: %v", name, err)
		}
		got := asMap(t, out.TaskDefinition)
		for k, want := range props {
			switch k {
			case "ContainerDefinitions":
				// Every container property the template gives, and exactly its
				// command and environment.
				wantC, gotC := want.([]any), got["ContainerDefinitions"].([]any)
				if len(wantC) != len(gotC) {
					t.Errorf("%s has %d containers, the template %d", name, len(gotC), len(wantC))
					continue
				}
				for i := range wantC {
					w, g := wantC[i].(map[string]any), gotC[i].(map[string]any)
					for ck, cv := range w {
						if !subset(cv, g[ck]) && !(ck == "Environment" && sameSet(cv, g[ck])) {
							t.Errorf("%s container %v: %s is %s, the template says %s", name, w["Name"], ck, cfn.Canonical(g[ck]), cfn.Canonical(cv))
						}
					}
				}
			case "Tags":
				gap(t, "AWS::ECS::TaskDefinition.Tags", subset(want, lowerKeys(asMap(t, out)["Tags"])), "tags %v", asMap(t, out)["Tags"])
			default:
				if k == "Volumes" {
					want = lowerKeys(want) // Volumes: [{Name}] → [{name}] as ECS describes them
					got[k] = lowerKeys(got[k])
				}
				if key := "AWS::ECS::TaskDefinition." + k; subset(want, got[k]) {
					gap(t, key, true, "%s", k)
				} else {
					gap(t, key, false, "%s %s: %s, the template says %s", name, k, cfn.Canonical(got[k]), cfn.Canonical(want))
				}
			}
		}
	}
	// The worker service, as ScaleEcs names it.
	svc := s.Service(t)
	cluster, service := s.WorkerService(t)
	if aws.ToString(svc.Status) != "ACTIVE" || aws.ToString(svc.ServiceName) != service || !strings.HasSuffix(aws.ToString(svc.ClusterArn), "/"+cluster) {
		t.Errorf("ScaleEcs %s/%s: service %s in %s, %s", cluster, service, aws.ToString(svc.ServiceName), aws.ToString(svc.ClusterArn), aws.ToString(svc.Status))
	}
	for _, name := range resourcesOf(t, s, "AWS::ECS::Service") {
		if s.Resources[name] != aws.ToString(svc.ServiceArn) {
			continue
		}
		props := s.Properties(t, name)
		got := asMap(t, svc)
		for k, want := range props {
			switch k {
			case "Cluster":
				if !strings.HasSuffix(aws.ToString(svc.ClusterArn), "/"+cfn.String(want)) {
					t.Errorf("%s is in %s, the template says %v", name, aws.ToString(svc.ClusterArn), want)
				}
			case "TaskDefinition":
				if aws.ToString(svc.TaskDefinition) != want {
					t.Errorf("%s runs %s, the template says %v", name, aws.ToString(svc.TaskDefinition), want)
				}
			case "NetworkConfiguration":
				gap(t, "AWS::ECS::Service.NetworkConfiguration", subset(lowerKeys(want), lowerKeys(got[k])), "%s", cfn.Canonical(got[k]))
			case "Tags":
				gap(t, "AWS::ECS::Service.Tags", subset(want, lowerKeys(got["Tags"])), "tags %v", got["Tags"])
			default:
				gap(t, "AWS::ECS::Service."+k, subset(want, got[k]), "%s is %s, the template says %s", k, cfn.Canonical(got[k]), cfn.Canonical(want))
			}
		}
		if _, ok := props["DesiredCount"]; !ok {
			gap(t, "AWS::ECS::Service.DesiredCount", svc.DesiredCount == 1, "desired count %d with none given", svc.DesiredCount)
		}
	}
	// The planner task definition the operator runs.
	td, err := s.ECS.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(s.Outputs["PlannerTaskDefinition"])})
	if err != nil || len(td.TaskDefinition.ContainerDefinitions) != 1 || aws.ToString(td.TaskDefinition.ContainerDefinitions[0].Name) != "planner" {
		t.Errorf("PlannerTaskDefinition %s: %v; want one container, planner", s.Outputs["PlannerTaskDefinition"], err)
	} else if c := td.TaskDefinition.ContainerDefinitions[0]; aws.ToString(c.Image) != s.Params["Image"] || len(c.Command) == 0 || c.Command[0] != "planner" {
		t.Errorf("PlannerTaskDefinition runs %v from %s", c.Command, aws.ToString(c.Image))
	}
}

// lowerKeys turns a value's map keys into ECS's spelling of CloudFormation
// names: first letter lower case ("Key" → "key"), for values whose SDK
// types are spelled differently from the template's.
func lowerKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, c := range x {
			out[strings.ToLower(k[:1])+k[1:]] = lowerKeys(c)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = lowerKeys(c)
		}
		return out
	}
	return v
}

// sameSet: two lists hold the same items, in any order.
func sameSet(a, b any) bool {
	as, _ := a.([]any)
	bs, _ := b.([]any)
	if len(as) != len(bs) {
		return false
	}
	var ka, kb []string
	for i := range as {
		ka, kb = append(ka, cfn.Canonical(as[i])), append(kb, cfn.Canonical(bs[i]))
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// checkRoles: every role exists with the trust policy and exactly the
// inline policies the template gives (each statement, resolved), its tags
// and permissions boundary; the role outputs name them.
func checkRoles(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	ctx := context.Background()
	arns := map[string]bool{}
	for _, name := range resourcesOf(t, s, "AWS::IAM::Role") {
		props := s.Properties(t, name)
		role, err := s.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(s.Resources[name])})
		if err != nil {
			t.Errorf("role %s: %v", name, err)
			continue
		}
		arns[aws.ToString(role.Role.Arn)] = true
		for k, want := range props {
			switch k {
			case "AssumeRolePolicyDocument":
				doc, _ := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
				var got any
				if err := json.Unmarshal([]byte(doc), &got); err != nil || !subset(want, got) {
					t.Errorf("role %s trusts %s, the template says %s", name, doc, cfn.Canonical(want))
				}
			case "Policies":
				checkInlinePolicies(t, s, name, want.([]any))
			case "Tags":
				tags := map[string]string{}
				for _, tg := range role.Role.Tags {
					tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
				}
				if !hasTags(tagsWant(props), tags) {
					t.Errorf("role %s: tags %v, want %v", name, tags, tagsWant(props))
				}
			case "PermissionsBoundary":
				if b := role.Role.PermissionsBoundary; b == nil || aws.ToString(b.PermissionsBoundaryArn) != cfn.String(want) {
					t.Errorf("role %s: permissions boundary %v, want %v", name, b, want)
				}
			case "ManagedPolicyArns":
				out, err := s.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(s.Resources[name])})
				var got []any
				for _, p := range out.AttachedPolicies {
					got = append(got, aws.ToString(p.PolicyArn))
				}
				if err != nil || !sameSet(want, got) {
					t.Errorf("role %s: managed policies %v (%v), want %v", name, got, err, want)
				}
			case "Path", "MaxSessionDuration", "Description", "RoleName":
				if g := asMap(t, role.Role)[k]; !subset(want, g) {
					t.Errorf("role %s: %s is %v, want %v", name, k, g, want)
				}
			default:
				t.Errorf("role %s: property %s is not checked here: add it", name, k)
			}
		}
	}
	for _, name := range resourcesOf(t, s, "AWS::IAM::ManagedPolicy") {
		checkManagedPolicy(t, s, name)
	}
	for _, out := range []string{"WorkerRoleArn", "PlannerRoleArn"} {
		if v, ok := s.Outputs[out]; ok && !arns[v] {
			t.Errorf("output %s is %s, none of the stack's roles", out, v)
		}
	}
}

// checkManagedPolicy: the policy's document is the template's, and it is
// attached where the template says.
func checkManagedPolicy(t *testing.T, s *stackbed.MotoStack, name string) {
	t.Helper()
	ctx := context.Background()
	props := s.Properties(t, name)
	arn := s.Resources[name]
	p, err := s.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if err != nil {
		t.Errorf("managed policy %s: %v", name, err)
		return
	}
	v, err := s.IAM.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: p.Policy.DefaultVersionId})
	if err != nil {
		t.Errorf("managed policy %s: %v", name, err)
		return
	}
	doc, _ := url.QueryUnescape(aws.ToString(v.PolicyVersion.Document))
	var got any
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Errorf("managed policy %s: %v\n%s", name, err, doc)
		return
	}
	comparePolicy(t, "managed policy "+name, got, props["PolicyDocument"])
	for k, want := range props {
		switch k {
		case "PolicyDocument":
		case "Description", "Path", "ManagedPolicyName":
			field := map[string]string{"Description": "Description", "Path": "Path", "ManagedPolicyName": "PolicyName"}[k]
			if g := asMap(t, p.Policy)[field]; !subset(want, g) {
				t.Errorf("managed policy %s: %s is %v, the template says %v", name, k, g, want)
			}
		case "Roles":
			out, err := s.IAM.ListEntitiesForPolicy(ctx, &iam.ListEntitiesForPolicyInput{PolicyArn: aws.String(arn)})
			var got []any
			if err == nil {
				for _, r := range out.PolicyRoles {
					got = append(got, aws.ToString(r.RoleName))
				}
			}
			if !sameSet(want, got) {
				t.Errorf("managed policy %s is attached to the roles %v (%v), the template says %v", name, got, err, want)
			}
		default:
			t.Errorf("managed policy %s: property %s is not checked here: add it", name, k)
		}
	}
}

// comparePolicy compares a policy document moto holds with the template's
// (a log group's ARN as moto's Fn::GetAtt gives it being a known gap).
func comparePolicy(t *testing.T, what string, got, want any) {
	t.Helper()
	gotC, wantC := cfn.Canonical(got), cfn.Canonical(want)
	if motoC := logGroupArn.ReplaceAllString(wantC, `$1"`); gotC != wantC && gotC == motoC {
		gap(t, "Fn::GetAtt AWS::Logs::LogGroup.Arn", false, "%s names log groups without :*", what)
	} else if gotC != wantC {
		t.Errorf("%s:\n got %s\nwant %s", what, gotC, wantC)
	}
}

// logGroupArn is a log group's ARN as Fn::GetAtt gives it on AWS (ending
// in :*), in a canonical policy.
var logGroupArn = regexp.MustCompile(`(arn:aws:logs:[^"]*:log-group:[^"]*):\*"`)

// checkInlinePolicies compares a role's inline policies with the
// template's.
func checkInlinePolicies(t *testing.T, s *stackbed.MotoStack, name string, want []any) {
	t.Helper()
	ctx := context.Background()
	list, err := s.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(s.Resources[name])})
	if err != nil {
		t.Fatalf("role %s: %v", name, err)
	}
	var wantNames []string
	for _, p := range want {
		p := p.(map[string]any)
		wantNames = append(wantNames, cfn.String(p["PolicyName"]))
		out, err := s.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(s.Resources[name]), PolicyName: aws.String(cfn.String(p["PolicyName"]))})
		if err != nil {
			t.Errorf("role %s: policy %v: %v", name, p["PolicyName"], err)
			continue
		}
		doc, _ := url.QueryUnescape(aws.ToString(out.PolicyDocument))
		var got any
		jsonErr := json.Unmarshal([]byte(doc), &got)
		gap(t, "AWS::IAM::Role.Policies", jsonErr == nil, "role %s policy %v is not JSON: %.60s...", name, p["PolicyName"], doc)
		if jsonErr != nil {
			// Read moto's Python repr: the strings here hold no quotes.
			py := strings.NewReplacer(`'`, `"`, "None", "null", "True", "true", "False", "false").Replace(doc)
			if err := json.Unmarshal([]byte(py), &got); err != nil {
				t.Errorf("role %s policy %v: neither JSON nor a Python repr read here: %v\n%s", name, p["PolicyName"], err, doc)
				continue
			}
		}
		if m, ok := got.(map[string]any); ok { // moto keeps each AWS::NoValue statement as null
			if st, ok := m["Statement"].([]any); ok {
				m["Statement"] = slices.DeleteFunc(st, func(x any) bool { return x == nil })
			}
		}
		comparePolicy(t, fmt.Sprintf("role %s policy %v", name, p["PolicyName"]), got, p["PolicyDocument"])
	}
	slices.Sort(wantNames)
	slices.Sort(list.PolicyNames)
	if !slices.Equal(wantNames, list.PolicyNames) {
		t.Errorf("role %s has the inline policies %v, the template gives %v", name, list.PolicyNames, wantNames)
	}
}

// checkLogGroups: each log group exists with the retention and tags the
// template gives; LogGroupName names one.
func checkLogGroups(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	ctx := context.Background()
	names := map[string]bool{}
	for _, name := range resourcesOf(t, s, "AWS::Logs::LogGroup") {
		props := s.Properties(t, name)
		group := s.Resources[name]
		names[group] = true
		out, err := s.Logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(group)})
		if err != nil || len(out.LogGroups) == 0 || aws.ToString(out.LogGroups[0].LogGroupName) != group {
			t.Errorf("log group %s (%s): %v", name, group, err)
			continue
		}
		lg := out.LogGroups[0]
		for k, want := range props {
			switch k {
			case "LogGroupName":
				if group != want {
					t.Errorf("log group %s is %s, the template says %v", name, group, want)
				}
			case "RetentionInDays":
				if fmt.Sprint(aws.ToInt32(lg.RetentionInDays)) != cfn.String(want) {
					t.Errorf("log group %s keeps logs %d days, the template says %v", name, aws.ToInt32(lg.RetentionInDays), want)
				}
			case "Tags":
				tags, err := s.Logs.ListTagsForResource(ctx, &cloudwatchlogs.ListTagsForResourceInput{ResourceArn: aws.String(strings.TrimSuffix(aws.ToString(lg.Arn), ":*"))})
				if err != nil || !hasTags(tagsWant(props), tags.Tags) {
					t.Errorf("log group %s: tags %v (%v), want %v", name, tags, err, tagsWant(props))
				}
			default:
				t.Errorf("log group %s: property %s is not checked here: add it", name, k)
			}
		}
	}
	if g := s.Outputs["LogGroupName"]; !names[g] {
		t.Errorf("LogGroupName %q is none of the stack's log groups %v", g, names)
	}
}

// checkNetwork: the workers' security group is in the VPC with exactly the
// template's egress, and RunTaskNetwork names the subnets and it.
func checkNetwork(t *testing.T, s *stackbed.MotoStack, net stackbed.MotoNetwork) {
	t.Helper()
	ctx := context.Background()
	n := s.RunTaskNetwork(t)
	sgID := s.Outputs["WorkerSecurityGroup"]
	if vpc := n.AwsvpcConfiguration; !slices.Equal(vpc.Subnets, net.Subnets) || !slices.Equal(vpc.SecurityGroups, []string{sgID}) ||
		string(vpc.AssignPublicIp) != s.Params["AssignPublicIp"] {
		t.Errorf("RunTaskNetwork %q: want subnets %v, security group %s, assignPublicIp %s", s.Outputs["RunTaskNetwork"], net.Subnets, sgID, s.Params["AssignPublicIp"])
	}
	for _, name := range resourcesOf(t, s, "AWS::EC2::SecurityGroup") {
		props := s.Properties(t, name)
		out, err := s.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{s.Resources[name]}})
		if err != nil || len(out.SecurityGroups) != 1 {
			t.Errorf("security group %s: %v", name, err)
			continue
		}
		sg := out.SecurityGroups[0]
		if aws.ToString(sg.VpcId) != cfn.String(props["VpcId"]) || aws.ToString(sg.Description) != cfn.String(props["GroupDescription"]) {
			t.Errorf("security group %s: in %s, %q", name, aws.ToString(sg.VpcId), aws.ToString(sg.Description))
		}
		// Without egress rules a group allows all traffic out, as AWS makes it.
		egress := list(props["SecurityGroupEgress"])
		if _, ok := props["SecurityGroupEgress"]; !ok {
			egress = []any{map[string]any{"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}}
		}
		for dir, rules := range map[string][]ec2types.IpPermission{"SecurityGroupIngress": sg.IpPermissions, "SecurityGroupEgress": sg.IpPermissionsEgress} {
			var got, want []string
			for _, p := range rules {
				for _, r := range p.IpRanges {
					got = append(got, fmt.Sprintf("%s %d-%d %s", aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), aws.ToString(r.CidrIp)))
				}
				for _, g := range p.UserIdGroupPairs {
					got = append(got, fmt.Sprintf("%s %d-%d %s", aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), aws.ToString(g.GroupId)))
				}
			}
			templ := list(props[dir])
			if dir == "SecurityGroupEgress" {
				templ = egress
			}
			for _, e := range templ {
				e := e.(map[string]any)
				from, to := cfn.String(e["FromPort"]), cfn.String(e["ToPort"])
				if from == "" {
					from, to = "0", "0"
				}
				peer := cfn.String(e["CidrIp"]) + cfn.String(e["SourceSecurityGroupId"]) + cfn.String(e["DestinationSecurityGroupId"])
				want = append(want, fmt.Sprintf("%s %s-%s %s", e["IpProtocol"], from, to, peer))
			}
			slices.Sort(got)
			slices.Sort(want)
			if _, given := props[dir]; given {
				gap(t, "AWS::EC2::SecurityGroup."+dir, slices.Equal(got, want), "%s: %s %v, the template's %v", name, dir, got, want)
			} else if !slices.Equal(got, want) {
				t.Errorf("%s: %s %v, want AWS's default %v", name, dir, got, want)
			}
		}
	}
}

// checkEndpoints: each VPC endpoint is of the type and service the
// template says, in the VPC, on the route tables (a gateway) or in the
// subnets with the security group (an interface).
func checkEndpoints(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	for _, name := range resourcesOf(t, s, "AWS::EC2::VPCEndpoint") {
		props := s.Properties(t, name)
		out, err := s.EC2.DescribeVpcEndpoints(context.Background(), &ec2.DescribeVpcEndpointsInput{VpcEndpointIds: []string{s.Resources[name]}})
		if err != nil || len(out.VpcEndpoints) != 1 {
			t.Errorf("VPC endpoint %s: %v", name, err)
			continue
		}
		e := out.VpcEndpoints[0]
		var groups []any
		for _, g := range e.Groups {
			groups = append(groups, aws.ToString(g.GroupId))
		}
		got := asMap(t, e)
		got["SecurityGroupIds"] = groups
		for k, want := range props {
			switch k {
			case "RouteTableIds", "SubnetIds", "SecurityGroupIds":
				gap(t, "AWS::EC2::VPCEndpoint."+k, sameSet(want, got[k]), "%s: %s %v, the template's %v", name, k, got[k], want)
			case "Tags":
				tags := map[string]string{}
				for _, tg := range e.Tags {
					tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
				}
				gap(t, "AWS::EC2::VPCEndpoint.Tags", hasTags(tagsWant(props), tags), "%s: tags %v", name, tags)
			default:
				if k == "VpcEndpointType" {
					got[k] = strings.ToLower(cfn.String(got[k])) // moto: "gateway", "interface"
					want = strings.ToLower(cfn.String(want))
				}
				gap(t, "AWS::EC2::VPCEndpoint."+k, subset(want, got[k]), "%s: %s %v, the template's %v", name, k, got[k], want)
			}
		}
	}
}

// checkNotifications: the alarm topic (or AlarmTopicArn's) with the
// e-mail subscription, the rule catching stopped workers with its target
// queue, whose policy lets EventBridge send to it.
func checkNotifications(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	ctx := context.Background()
	for _, name := range resourcesOf(t, s, "AWS::SNS::Topic") {
		props := s.Properties(t, name)
		out, err := s.SNS.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(s.Resources[name])})
		if err != nil {
			t.Errorf("topic %s: %v", name, err)
			continue
		}
		for k, want := range props {
			switch k {
			case "Tags":
				tags, err := s.SNS.ListTagsForResource(ctx, &sns.ListTagsForResourceInput{ResourceArn: aws.String(s.Resources[name])})
				got := map[string]string{}
				if err == nil {
					for _, tg := range tags.Tags {
						got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
					}
				}
				gap(t, "AWS::SNS::Topic.Tags", hasTags(tagsWant(props), got), "%s: tags %v (%v)", name, got, err)
			default:
				gap(t, "AWS::SNS::Topic."+k, out.Attributes[k] == cfn.String(want), "%s: %s %q, the template's %q", name, k, out.Attributes[k], cfn.String(want))
			}
		}
	}
	for _, name := range resourcesOf(t, s, "AWS::SNS::Subscription") {
		props := s.Properties(t, name)
		out, err := s.SNS.GetSubscriptionAttributes(ctx, &sns.GetSubscriptionAttributesInput{SubscriptionArn: aws.String(s.Resources[name])})
		if err != nil || out.Attributes["TopicArn"] != cfn.String(props["TopicArn"]) || out.Attributes["Endpoint"] != cfn.String(props["Endpoint"]) ||
			out.Attributes["Protocol"] != cfn.String(props["Protocol"]) {
			t.Errorf("subscription %s: %v (%v), the template's %v", name, out, err, props)
		}
	}
	for _, name := range resourcesOf(t, s, "AWS::Events::Rule") {
		props := s.Properties(t, name)
		ruleName := s.Resources[name][strings.LastIndexByte(s.Resources[name], '/')+1:]
		out, err := s.Events.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String(ruleName)})
		if err != nil {
			t.Errorf("rule %s: %v", name, err)
			continue
		}
		for k, want := range props {
			switch k {
			case "EventPattern":
				var got any
				err := json.Unmarshal([]byte(aws.ToString(out.EventPattern)), &got)
				if err != nil || cfn.Canonical(got) != cfn.Canonical(want) {
					t.Errorf("rule %s matches %s, the template %s", name, aws.ToString(out.EventPattern), cfn.Canonical(want))
				}
			case "Targets":
				targets, err := s.Events.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String(ruleName)})
				var got []any
				if err == nil {
					for _, tg := range targets.Targets {
						got = append(got, map[string]any{"Id": aws.ToString(tg.Id), "Arn": aws.ToString(tg.Arn)})
					}
				}
				if !sameSet(want, got) {
					t.Errorf("rule %s targets %v (%v), the template %v", name, got, err, want)
				}
			case "Tags":
				arn := aws.ToString(out.Arn)
				tags, err := s.Events.ListTagsForResource(ctx, &eventbridge.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
				got := map[string]string{}
				if err == nil {
					for _, tg := range tags.Tags {
						got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
					}
				}
				gap(t, "AWS::Events::Rule.Tags", hasTags(tagsWant(props), got), "%s: tags %v (%v)", name, got, err)
			default:
				if g := asMap(t, out)[k]; !subset(want, g) {
					t.Errorf("rule %s: %s %v, the template's %v", name, k, g, want)
				}
			}
		}
	}
	for _, name := range resourcesOf(t, s, "AWS::SQS::QueuePolicy") {
		props := s.Properties(t, name)
		for _, q := range list(props["Queues"]) {
			out, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(cfn.String(q)), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNamePolicy}})
			var got any
			if err == nil {
				err = json.Unmarshal([]byte(out.Attributes["Policy"]), &got)
			}
			if err != nil || !subset(props["PolicyDocument"], got) {
				t.Errorf("queue policy %s on %v: %v (%v), the template's %s", name, q, got, err, cfn.Canonical(props["PolicyDocument"]))
			}
		}
	}
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// checkDashboard: the dashboard exists with the template's body.
func checkDashboard(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	for _, name := range resourcesOf(t, s, "AWS::CloudWatch::Dashboard") {
		props := s.Properties(t, name)
		out, err := s.CloudWatch.GetDashboard(context.Background(), &cloudwatch.GetDashboardInput{DashboardName: aws.String(s.Resources[name])})
		if err != nil {
			t.Errorf("dashboard %s: %v", name, err)
			continue
		}
		var got, want any
		if err := json.Unmarshal([]byte(aws.ToString(out.DashboardBody)), &got); err != nil {
			t.Errorf("dashboard %s: %v", name, err)
		}
		if err := json.Unmarshal([]byte(cfn.String(props["DashboardBody"])), &want); err != nil {
			t.Errorf("dashboard %s's body in the template: %v", name, err)
		}
		if cfn.Canonical(got) != cfn.Canonical(want) {
			t.Errorf("dashboard %s's body differs from the template's", name)
		}
		if !strings.HasSuffix(s.Outputs["DashboardUrl"], "#dashboards/dashboard/"+s.Resources[name]) {
			t.Errorf("DashboardUrl %s does not open dashboard %s", s.Outputs["DashboardUrl"], s.Resources[name])
		}
	}
}

// checkStandIns: what the stack would have made where moto's CloudFormation
// skips it is registered, as the template says: the worker service's
// scalable target, its scaling policies, the alarms.
func checkStandIns(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	ctx := context.Background()
	backlog := s.Exists(t, "WorkerScalableTarget")
	target, ok := s.ScalableTarget(t)
	if ok != backlog {
		t.Fatalf("the worker service has a scalable target: %v; want %v (Autoscaling %s)", ok, backlog, s.Params["Autoscaling"])
	}
	if ok && (fmt.Sprint(aws.ToInt32(target.MinCapacity)) != s.Params["MinWorkers"] || fmt.Sprint(aws.ToInt32(target.MaxCapacity)) != s.Params["MaxWorkers"]) {
		t.Errorf("scalable target %d..%d, want MinWorkers %s..MaxWorkers %s", aws.ToInt32(target.MinCapacity), aws.ToInt32(target.MaxCapacity), s.Params["MinWorkers"], s.Params["MaxWorkers"])
	}
	for _, name := range resourcesOf(t, s, "AWS::ApplicationAutoScaling::ScalingPolicy") {
		out, err := s.AutoScaling.DescribeScalingPolicies(ctx, &applicationautoscaling.DescribeScalingPoliciesInput{
			ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceId: target.ResourceId,
		})
		found := false
		for _, p := range out.ScalingPolicies {
			found = found || aws.ToString(p.PolicyARN) == s.Resources[name]
		}
		if err != nil || !found {
			t.Errorf("scaling policy %s (%s) is not registered: %v", name, s.Resources[name], err)
		}
	}
	for _, name := range resourcesOf(t, s, "AWS::CloudWatch::Alarm") {
		props := s.Properties(t, name)
		out, err := s.CloudWatch.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{s.Resources[name]}})
		if err != nil || len(out.MetricAlarms) != 1 {
			t.Errorf("alarm %s: %v", name, err)
			continue
		}
		a := out.MetricAlarms[0]
		var actions []any
		for _, x := range a.AlarmActions {
			actions = append(actions, x)
		}
		if !sameSet(list(props["AlarmActions"]), actions) || fmt.Sprint(aws.ToFloat64(a.Threshold)) != cfn.String(props["Threshold"]) ||
			len(a.Metrics) != len(list(props["Metrics"])) {
			t.Errorf("alarm %s: actions %v, threshold %v, %d metrics; the template says %v, %v, %d", name, a.AlarmActions, aws.ToFloat64(a.Threshold), len(a.Metrics),
				props["AlarmActions"], props["Threshold"], len(list(props["Metrics"])))
		}
	}
}

// firstUse drives the stack as the operator's guide does before a window:
// warm the fleet, suspend scale-in, run the planner task, read its logs.
func firstUse(t *testing.T, s *stackbed.MotoStack) {
	ctx := context.Background()
	if svc := s.SetDesiredCount(t, 3); svc.DesiredCount != 3 {
		t.Errorf("desired count %d after setting 3", svc.DesiredCount)
	} else {
		t.Logf("moto: UpdateService desiredCount 3 → desired %d, running %d, pending %d", svc.DesiredCount, svc.RunningCount, svc.PendingCount)
	}
	before, _ := s.ScalableTarget(t)
	after := s.SuspendScaleIn(t, true)
	if aws.ToInt32(after.MinCapacity) != aws.ToInt32(before.MinCapacity) || aws.ToInt32(after.MaxCapacity) != aws.ToInt32(before.MaxCapacity) {
		t.Errorf("suspending scale-in changed the capacities: %d..%d, were %d..%d", aws.ToInt32(after.MinCapacity), aws.ToInt32(after.MaxCapacity), aws.ToInt32(before.MinCapacity), aws.ToInt32(before.MaxCapacity))
	}
	kept := after.SuspendedState != nil && aws.ToBool(after.SuspendedState.DynamicScalingInSuspended)
	t.Logf("moto: RegisterScalableTarget with SuspendedState{DynamicScalingInSuspended: true} → DescribeScalableTargets reads back %s", cfn.Canonical(asMap(t, after)["SuspendedState"]))
	if !kept {
		t.Errorf("moto: RegisterScalableTarget with DynamicScalingInSuspended: read back %+v", after.SuspendedState)
	} else if ss := after.SuspendedState; aws.ToBool(ss.DynamicScalingOutSuspended) || aws.ToBool(ss.ScheduledScalingSuspended) {
		t.Errorf("moto: suspended more than scale-in: %+v", *ss)
	}
	if resumed := s.SuspendScaleIn(t, false); resumed.SuspendedState != nil && aws.ToBool(resumed.SuspendedState.DynamicScalingInSuspended) {
		t.Errorf("scale-in still suspended after resuming it: %+v", *resumed.SuspendedState)
	}

	// The operator's run-task: the capacity provider strategy the output gives.
	cluster, _ := s.WorkerService(t)
	cp, w, ok := strings.Cut(strings.TrimPrefix(s.Outputs["CapacityProvider"], "capacityProvider="), ",weight=")
	if !ok {
		t.Fatalf("CapacityProvider output %q: want capacityProvider=NAME,weight=N", s.Outputs["CapacityProvider"])
	}
	var weight int32
	fmt.Sscan(w, &weight)
	runnable := s.RunnableTaskDefinition(t, s.Outputs["PlannerTaskDefinition"])
	_, err := s.ECS.RunTask(ctx, &ecs.RunTaskInput{
		Cluster: aws.String(cluster), TaskDefinition: aws.String(runnable), NetworkConfiguration: s.RunTaskNetwork(t),
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: aws.String(cp), Weight: weight}},
	})
	gap(t, "ECS.RunTask.CapacityProviderStrategy", err == nil, "run-task with the capacity provider strategy %s: %v", s.Outputs["CapacityProvider"], err)
	// The task definition as the stack made it.
	_, err = s.ECS.RunTask(ctx, &ecs.RunTaskInput{
		Cluster: aws.String(cluster), TaskDefinition: aws.String(s.Outputs["PlannerTaskDefinition"]), NetworkConfiguration: s.RunTaskNetwork(t),
		LaunchType: ecstypes.LaunchTypeFargate,
	})
	gap(t, "ECS.RunTask.TaskLevelMemory", err == nil, "run-task --launch-type FARGATE of %s: %v", s.Outputs["PlannerTaskDefinition"], err)
	// The SDK reading moto's answer without the proxy's help.
	direct := ecs.NewFromConfig(s.Cfg)
	_, err = direct.RunTask(ctx, &ecs.RunTaskInput{
		Cluster: aws.String(cluster), TaskDefinition: aws.String(runnable), NetworkConfiguration: s.RunTaskNetwork(t), LaunchType: ecstypes.LaunchTypeFargate,
	})
	gap(t, "ECS.Task.NumericCpuMemory", err == nil, "RunTask read by the Go SDK straight from moto: %v", err)

	command := []string{"planner", "status", "--ledger", s.Outputs["LedgerUrl"]}
	task := s.RunPlanner(t, command...)
	arn := aws.ToString(task.TaskArn)
	t.Logf("moto: RunTask → lastStatus %s, desiredStatus %s, launchType %s", aws.ToString(task.LastStatus), aws.ToString(task.DesiredStatus), task.LaunchType)
	var statuses []string
	for range 3 {
		d := s.Task(t, arn)
		statuses = append(statuses, aws.ToString(d.LastStatus))
		if len(d.Overrides.ContainerOverrides) != 1 || !slices.Equal(d.Overrides.ContainerOverrides[0].Command, command) {
			t.Errorf("task %s: overrides %+v, want the command %v", arn, d.Overrides, command)
		}
		if aws.ToString(d.TaskDefinitionArn) != runnable {
			t.Errorf("task %s runs %s", arn, aws.ToString(d.TaskDefinitionArn))
		}
	}
	d := s.Task(t, arn)
	var exits []string
	for _, c := range d.Containers {
		exits = append(exits, fmt.Sprintf("%s: %s exit %d", aws.ToString(c.Name), aws.ToString(c.LastStatus), aws.ToInt32(c.ExitCode)))
	}
	t.Logf("moto: DescribeTasks → lastStatus %v over successive calls; containers %v", statuses, exits)
	stop, err := s.ECS.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(cluster), Task: aws.String(arn), Reason: aws.String("test")})
	if err != nil {
		t.Errorf("moto: StopTask: %v", err)
	} else {
		d := s.Task(t, arn)
		t.Logf("moto: StopTask → %s, then DescribeTasks → lastStatus %s, desiredStatus %s, stoppedReason %q",
			aws.ToString(stop.Task.LastStatus), aws.ToString(d.LastStatus), aws.ToString(d.DesiredStatus), aws.ToString(d.StoppedReason))
		if aws.ToString(d.DesiredStatus) != "STOPPED" {
			t.Errorf("task %s wants %s after StopTask", arn, aws.ToString(d.DesiredStatus))
		}
	}

	// Logs as the awslogs driver writes them: planner/planner/TASKID.
	stream := "planner/planner/" + arn[strings.LastIndexByte(arn, '/')+1:]
	lines := []string{`{"level":"INFO","msg":"status"}`, `{"level":"INFO","msg":"done"}`}
	s.PutLogs(t, stream, lines...)
	if got := s.LogLines(t, stream); !slices.Equal(got, lines) {
		t.Errorf("log stream %s: read back %q, wrote %q", stream, got, lines)
	}
}

// resourceGone tells whether a resource of the stack is gone after its
// deletion (and how it stands).
func resourceGone(t *testing.T, s *stackbed.MotoStack, name string) (gone bool, how string) {
	t.Helper()
	ctx := context.Background()
	ref := s.Resources[name]
	switch typ := s.Template.Resources[name].Type; typ {
	case "AWS::S3::Bucket":
		_, err := s.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(ref)})
		return err != nil, fmt.Sprint(err)
	case "AWS::SQS::Queue":
		_, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(ref)})
		return err != nil, fmt.Sprint(err)
	case "AWS::IAM::Role":
		_, err := s.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(ref)})
		return err != nil, fmt.Sprint(err)
	case "AWS::Logs::LogGroup":
		out, err := s.Logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(ref)})
		return err == nil && (len(out.LogGroups) == 0 || aws.ToString(out.LogGroups[0].LogGroupName) != ref), fmt.Sprint(err)
	case "AWS::ECS::Cluster":
		out, err := s.ECS.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{ref}})
		return err == nil && (len(out.Clusters) == 0 || aws.ToString(out.Clusters[0].Status) == "INACTIVE"), fmt.Sprint(err)
	case "AWS::ECS::Service":
		out, err := s.ECS.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(cfn.String(s.Properties(t, name)["Cluster"])), Services: []string{ref}})
		if err != nil { // the cluster is gone
			return true, err.Error()
		}
		return len(out.Services) == 0 || aws.ToString(out.Services[0].Status) == "INACTIVE", fmt.Sprint(failuresOf(out))
	case "AWS::ECS::TaskDefinition":
		out, err := s.ECS.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(ref)})
		if err != nil {
			return true, err.Error()
		}
		return out.TaskDefinition.Status != ecstypes.TaskDefinitionStatusActive, string(out.TaskDefinition.Status)
	case "AWS::EC2::SecurityGroup":
		_, err := s.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{ref}})
		return err != nil, fmt.Sprint(err)
	case "AWS::CloudWatch::Dashboard":
		_, err := s.CloudWatch.GetDashboard(ctx, &cloudwatch.GetDashboardInput{DashboardName: aws.String(ref)})
		return err != nil, fmt.Sprint(err)
	case "AWS::CloudWatch::Alarm":
		out, err := s.CloudWatch.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{ref}})
		return err == nil && len(out.MetricAlarms) == 0, fmt.Sprint(err)
	case "AWS::ApplicationAutoScaling::ScalableTarget":
		id := strings.Split(ref, "|")
		out, err := s.AutoScaling.DescribeScalableTargets(ctx, &applicationautoscaling.DescribeScalableTargetsInput{ServiceNamespace: aastypes.ServiceNamespace(id[2]), ResourceIds: id[:1]})
		return err == nil && len(out.ScalableTargets) == 0, fmt.Sprint(err)
	case "AWS::ApplicationAutoScaling::ScalingPolicy":
		out, err := s.AutoScaling.DescribeScalingPolicies(ctx, &applicationautoscaling.DescribeScalingPoliciesInput{ServiceNamespace: aastypes.ServiceNamespaceEcs})
		for _, p := range out.ScalingPolicies {
			if aws.ToString(p.PolicyARN) == ref {
				return false, ""
			}
		}
		return err == nil, fmt.Sprint(err)
	case "AWS::IAM::ManagedPolicy":
		_, err := s.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(ref)})
		return err != nil, fmt.Sprint(err)
	case "AWS::SNS::Topic":
		_, err := s.SNS.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(ref)})
		return err != nil, fmt.Sprint(err)
	case "AWS::SNS::Subscription":
		_, err := s.SNS.GetSubscriptionAttributes(ctx, &sns.GetSubscriptionAttributesInput{SubscriptionArn: aws.String(ref)})
		return err != nil, fmt.Sprint(err)
	case "AWS::Events::Rule":
		_, err := s.Events.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String(ref[strings.LastIndexByte(ref, '/')+1:])})
		return err != nil, fmt.Sprint(err)
	case "AWS::SQS::QueuePolicy": // gone: no queue of it has a policy
		queues, err := s.Resolver.Resolve(s.Template.Resources[name].Properties["Queues"])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, q := range list(queues) {
			out, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(cfn.String(q)), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNamePolicy}})
			if err == nil && out.Attributes["Policy"] != "" {
				return false, "queue " + cfn.String(q) + " has a policy"
			}
		}
		return true, ""
	case "AWS::EC2::VPCEndpoint":
		out, err := s.EC2.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{VpcEndpointIds: []string{ref}})
		return err != nil || len(out.VpcEndpoints) == 0 || strings.EqualFold(string(out.VpcEndpoints[0].State), "deleted"), fmt.Sprint(err)
	default:
		t.Errorf("%s: how to tell whether a %s is gone is not known here: add it to resourceGone", name, typ)
		return false, ""
	}
}

func failuresOf(out *ecs.DescribeServicesOutput) []string {
	var f []string
	for _, x := range out.Failures {
		f = append(f, aws.ToString(x.Reason))
	}
	return f
}

// deleteAndCheckKept deletes the stack and checks that what the template
// retains (DeletionPolicy Retain: the ledger) is kept and the rest gone.
func deleteAndCheckKept(t *testing.T, s *stackbed.MotoStack) {
	t.Helper()
	s.Delete(t)
	var kept []string
	for _, name := range slices.Sorted(maps.Keys(s.Resources)) {
		if !s.Exists(t, name) {
			continue
		}
		gone, how := resourceGone(t, s, name)
		retain := s.Template.Resources[name].DeletionPolicy == "Retain"
		switch {
		case retain && gone:
			t.Errorf("%s (DeletionPolicy Retain) is gone with the stack: %s", name, how)
		case retain:
			kept = append(kept, name+" "+s.Resources[name])
		case !retain:
			gap(t, "kept after delete: "+s.Template.Resources[name].Type, gone, "%s (%s) is still there after the stack's deletion", name, s.Resources[name])
		}
	}
	t.Logf("kept after the stack's deletion: %v", kept)
	if s.Exists(t, "Ledger") && !slices.ContainsFunc(kept, func(k string) bool { return strings.HasPrefix(k, "Ledger ") }) {
		t.Error("the ledger bucket is not kept")
	}
}

// iamEnforced: on a moto enforcing IAM, the stack made with an
// administrator's credentials, each role's credentials may make the calls
// it needs and not the ones it must not.
func iamEnforced(t *testing.T, tpl *cfn.Template, required map[string]string) {
	srv := stackbed.StartMotoEnforcingIAM(t)
	net := srv.Network(t)
	src, dst := srv.Bucket(t, testbed.Name("source")), srv.Bucket(t, testbed.Name("dest"))
	params := map[string]string{}
	for k, v := range required {
		params[k] = v
	}
	params["SourceBucket"], params["DestinationBucket"], params["VpcId"], params["Subnets"] = src, dst, net.VpcID, strings.Join(net.Subnets, ",")
	s := stackbed.DeployOnMoto(t, srv, deploy.Template, declared(t, tpl, params, false))
	ctx := context.Background()
	if _, err := s.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String("a/b.txt"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatalf("seed the source as the administrator: %v", err)
	}
	// plan --as-of's reads: a versioned source, and a version no longer current.
	older := func() string {
		if _, err := s.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(src),
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatalf("enable the source's versioning as the administrator: %v", err)
		}
		var first string
		for _, body := range []string{"then", "now"} {
			out, err := s.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String("a/v.txt"), Body: strings.NewReader(body)})
			if err != nil || aws.ToString(out.VersionId) == "" {
				t.Fatalf("seed a versioned key as the administrator: %v (version %q)", err, aws.ToString(out.VersionId))
			}
			first = cmp.Or(first, aws.ToString(out.VersionId))
		}
		return first
	}()

	_, err := s.AssumeRole(t, "WorkerRole")
	gap(t, "IAM.TrustPolicy.ServicePrincipal", isDenied(err), "AssumeRole of WorkerRole (trusting ecs-tasks.amazonaws.com only) by an administrator: %v", err)
	for _, role := range []string{"WorkerRole", "PlannerRole"} {
		// The roles trust ECS's tasks; a test stands in for them.
		trustAdmin(t, s, role)
	}
	worker := roleClients(t, s, "WorkerRole")
	planner := roleClients(t, s, "PlannerRole")
	work := s.Outputs["WorkQueueUrl"]
	// Moto's CloudFormation keeps inline policies as Python objects, which
	// its IAM enforcement cannot read.
	_, err = worker.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(work)})
	gap(t, "AWS::IAM::Role.Policies", err == nil, "the worker's ReceiveMessage under the policies as moto's CloudFormation put them: %v", err)
	s.RepairRolePolicies(t)

	ledger, _ := url.Parse(s.Outputs["LedgerUrl"])
	calls := []struct {
		who   string
		allow bool
		gap   string // a motoGaps key when moto is known to answer otherwise
		call  func() error
	}{
		{"worker CopyObject source → destination", true, "", func() error {
			_, err := worker.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(dst), Key: aws.String("a/b.txt"), CopySource: aws.String(src + "/a/b.txt")})
			return err
		}},
		{"worker ReceiveMessage on the work queue", true, "", func() error {
			_, err := worker.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(work), WaitTimeSeconds: 0})
			return err
		}},
		{"worker PutObject of a ledger entry", true, "", func() error {
			_, err := worker.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(ledger.Host), Key: aws.String(ledger.Path[1:] + "runs/r1/done/m1"), Body: strings.NewReader("{}")})
			return err
		}},
		{"worker PutObject into the source", false, "", func() error {
			_, err := worker.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String("a/b.txt"), Body: strings.NewReader("overwritten")})
			return err
		}},
		{"worker DeleteObject in the destination (AllowDelete false)", false, "", func() error {
			_, err := worker.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(dst), Key: aws.String("a/b.txt")})
			return err
		}},
		{"worker SendMessage to the work queue", false, "", func() error {
			_, err := worker.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(work), MessageBody: aws.String("{}")})
			return err
		}},
		{"planner SendMessage to the work queue", true, "", func() error {
			_, err := planner.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(work), MessageBody: aws.String("{}")})
			return err
		}},
		{"planner ListObjectsV2 of the source", true, "", func() error {
			_, err := planner.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(src)})
			return err
		}},
		{"planner DescribeServices of the worker service", true, "IAM.ECS.Resource", func() error {
			cluster, service := s.WorkerService(t)
			_, err := planner.ECS.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{service}})
			return err
		}},
		{"planner ListObjectsV2 of the ledger's bucket outside its prefix", false, "IAM.Condition.s3:prefix", func() error {
			_, err := planner.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(ledger.Host), Prefix: aws.String("elsewhere")})
			return err
		}},
		{"planner ListObjectsV2 of the ledger under its prefix (which holds a /)", true, "IAM.Signature.PrefixWithSlash", func() error {
			_, err := planner.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(ledger.Host), Prefix: aws.String(ledger.Path[1:])})
			return err
		}},
		{"worker CopyObject from the destination, which it may not read (AllowDelete false)", false, "IAM.S3.CopySource", func() error {
			_, err := worker.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(dst), Key: aws.String("a/c.txt"), CopySource: aws.String(dst + "/a/b.txt")})
			return err
		}},
		{"planner ReceiveMessage on the work queue", false, "", func() error {
			_, err := planner.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(work)})
			return err
		}},
		// plan --as-of: the planner lists the source's versions after checking its versioning;
		// the fleet reads older versions (moto authorizes a GET with a versionId as
		// s3:GetObjectVersion, which the copies of a version need; a HEAD as s3:GetObject).
		{"planner GetBucketVersioning of the source", true, "", func() error {
			_, err := planner.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(src)})
			return err
		}},
		{"planner ListObjectVersions of the source", true, "", func() error {
			_, err := planner.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(src)})
			return err
		}},
		{"planner ListObjectVersions of the destination", false, "", func() error {
			_, err := planner.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(dst)})
			return err
		}},
		{"worker ListObjectVersions of the source", false, "", func() error {
			_, err := worker.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(src)})
			return err
		}},
		{"worker GetObject of an older version of the source", true, "", func() error {
			out, err := worker.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src), Key: aws.String("a/v.txt"), VersionId: aws.String(older)})
			if err == nil {
				out.Body.Close()
			}
			return err
		}},
		{"planner GetObject of an older version of the source", true, "", func() error {
			out, err := planner.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src), Key: aws.String("a/v.txt"), VersionId: aws.String(older)})
			if err == nil {
				out.Body.Close()
			}
			return err
		}},
		{"planner PutObject into the source", false, "", func() error {
			_, err := planner.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(src), Key: aws.String("x"), Body: strings.NewReader("x")})
			return err
		}},
	}
	for _, c := range calls {
		err := c.call()
		ok := (c.allow && err == nil) || (!c.allow && isDenied(err))
		switch {
		case c.gap != "":
			gap(t, c.gap, ok, "%s: %v", c.who, err)
		case c.allow && err != nil:
			t.Errorf("%s: refused: %v", c.who, err)
		case !c.allow && !ok:
			t.Errorf("%s: want 403, got %v", c.who, err)
		default:
			t.Logf("%s: allowed %v (%v)", c.who, err == nil, err)
		}
	}
}

func isDenied(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 403
}

// trustAdmin lets the administrator assume a role, in place of ECS's tasks.
func trustAdmin(t *testing.T, s *stackbed.MotoStack, role string) {
	t.Helper()
	me, err := s.STS.GetCallerIdentity(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":%q},"Action":"sts:AssumeRole"}]}`, aws.ToString(me.Arn))
	if _, err := s.IAM.UpdateAssumeRolePolicy(context.Background(), &iam.UpdateAssumeRolePolicyInput{RoleName: aws.String(s.Resources[role]), PolicyDocument: aws.String(doc)}); err != nil {
		t.Fatalf("trust the administrator with %s: %v", role, err)
	}
}

func roleClients(t *testing.T, s *stackbed.MotoStack, role string) stackbed.MotoClients {
	t.Helper()
	cfg, err := s.AssumeRole(t, role)
	if err != nil {
		t.Fatalf("assume %s: %v", role, err)
	}
	return s.Server.ClientsAs(cfg)
}
