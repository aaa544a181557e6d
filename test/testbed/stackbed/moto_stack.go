package stackbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/s3clone/s3clone/test/testbed"
	"github.com/s3clone/s3clone/test/testbed/cfn"
)

// MotoClients are SDK clients of every service a stack on moto uses, all
// reaching the one server with the same credentials.
type MotoClients struct {
	CFN         *cloudformation.Client
	S3          *s3.Client // path-style addressing
	SQS         *sqs.Client
	ECS         *ecs.Client
	IAM         *iam.Client
	STS         *sts.Client
	EC2         *ec2.Client
	AutoScaling *applicationautoscaling.Client
	// CloudWatch speaks AWS JSON 1.0: moto 5.2.1 does not know the RPC v2
	// CBOR protocol the SDK uses by default (it answers 404).
	CloudWatch *cloudwatch.Client
	Logs       *cloudwatchlogs.Client
	SNS        *sns.Client
	Events     *eventbridge.Client
}

// NewMotoClients makes the clients from a configuration (MotoConfig); ECS
// goes through ecsEndpoint (MotoServer.ECSEndpoint) if not empty.
func NewMotoClients(cfg aws.Config, ecsEndpoint string) MotoClients {
	ecsCfg := cfg.Copy()
	if ecsEndpoint != "" {
		ecsCfg.BaseEndpoint = aws.String(ecsEndpoint)
	}
	return MotoClients{
		CFN:         cloudformation.NewFromConfig(cfg),
		S3:          s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		SQS:         sqs.NewFromConfig(cfg),
		ECS:         ecs.NewFromConfig(ecsCfg),
		IAM:         iam.NewFromConfig(cfg),
		STS:         sts.NewFromConfig(cfg),
		EC2:         ec2.NewFromConfig(cfg),
		AutoScaling: applicationautoscaling.NewFromConfig(cfg),
		CloudWatch: cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
			o.Protocol = awsjson.New10(cwschemas.GraniteServiceVersion20100801)
		}),
		Logs:   cloudwatchlogs.NewFromConfig(cfg),
		SNS:    sns.NewFromConfig(cfg),
		Events: eventbridge.NewFromConfig(cfg),
	}
}

// Clients are the server's clients with the root credentials.
func (m *MotoServer) Clients() MotoClients { return m.ClientsAs(m.Cfg) }

// ClientsAs are the server's clients with other credentials (a role's).
func (m *MotoServer) ClientsAs(cfg aws.Config) MotoClients { return NewMotoClients(cfg, m.ECSEndpoint) }

// MotoNetwork is what a stack's network parameters take: a VPC with two
// subnets (in two zones) and a route table associated with both, made by a
// small CloudFormation stack of its own.
type MotoNetwork struct {
	VpcID        string
	Subnets      []string
	RouteTableID string
}

const motoNetworkTemplate = `AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    # DNS hostnames: interface endpoints with private DNS need them, and
    # moto gives an awsvpc task a network interface only with them.
    Properties: { CidrBlock: 10.42.0.0/16, EnableDnsHostnames: true, EnableDnsSupport: true }
  SubnetA:
    Type: AWS::EC2::Subnet
    Properties: { VpcId: !Ref Vpc, CidrBlock: 10.42.1.0/24, AvailabilityZone: us-east-1a }
  SubnetB:
    Type: AWS::EC2::Subnet
    Properties: { VpcId: !Ref Vpc, CidrBlock: 10.42.2.0/24, AvailabilityZone: us-east-1b }
  RouteTable:
    Type: AWS::EC2::RouteTable
    Properties: { VpcId: !Ref Vpc }
  RouteA:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: { SubnetId: !Ref SubnetA, RouteTableId: !Ref RouteTable }
  RouteB:
    Type: AWS::EC2::SubnetRouteTableAssociation
    Properties: { SubnetId: !Ref SubnetB, RouteTableId: !Ref RouteTable }
Outputs:
  VpcId: { Value: !Ref Vpc }
  Subnets: { Value: !Join [",", [!Ref SubnetA, !Ref SubnetB]] }
  RouteTableId: { Value: !Ref RouteTable }
`

// Network creates a VPC, two subnets and a route table on the server.
func (m *MotoServer) Network(t testing.TB) MotoNetwork {
	t.Helper()
	c := m.Clients()
	ctx := context.Background()
	out, err := c.CFN.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String(testbed.Name("network")), TemplateBody: aws.String(motoNetworkTemplate),
	})
	if err != nil {
		t.Fatalf("network stack: %v", err)
	}
	stack, err := waitStack(ctx, c.CFN, aws.ToString(out.StackId), cfntypes.StackStatusCreateComplete)
	if err != nil {
		t.Fatalf("network stack: %v\n%s", err, m.LogTail())
	}
	o := stackOutputs(stack)
	n := MotoNetwork{VpcID: o["VpcId"], Subnets: strings.Split(o["Subnets"], ","), RouteTableID: o["RouteTableId"]}
	if !strings.HasPrefix(n.VpcID, "vpc-") || len(n.Subnets) != 2 || !strings.HasPrefix(n.RouteTableID, "rtb-") {
		t.Fatalf("network stack's outputs: %v", o)
	}
	// Moto's CloudFormation drops EnableDnsHostnames: set it through EC2.
	if _, err := c.EC2.ModifyVpcAttribute(ctx, &ec2.ModifyVpcAttributeInput{VpcId: aws.String(n.VpcID), EnableDnsHostnames: &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}}); err != nil {
		t.Fatalf("DNS hostnames in %s: %v", n.VpcID, err)
	}
	return n
}

// Bucket creates a bucket on the server.
func (m *MotoServer) Bucket(t testing.TB, name string) string {
	t.Helper()
	if _, err := m.Clients().S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

func stackOutputs(s cfntypes.Stack) map[string]string {
	out := map[string]string{}
	for _, o := range s.Outputs {
		out[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return out
}

// waitStack waits for a stack (by id: a deleted stack is found only so) to
// reach want, and fails with its events if it reaches another final state.
func waitStack(ctx context.Context, c *cloudformation.Client, id string, want cfntypes.StackStatus) (cfntypes.Stack, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(id)})
		if err != nil {
			return cfntypes.Stack{}, err
		}
		if len(out.Stacks) != 1 {
			return cfntypes.Stack{}, fmt.Errorf("stack %s: DescribeStacks found %d", id, len(out.Stacks))
		}
		s := out.Stacks[0]
		status := string(s.StackStatus)
		switch {
		case s.StackStatus == want:
			return s, nil
		case strings.HasSuffix(status, "_FAILED") || strings.HasSuffix(status, "_COMPLETE") || time.Now().After(deadline):
			return s, fmt.Errorf("stack %s is %s (%s), want %s; its events:\n%s", id, status, aws.ToString(s.StackStatusReason), want, stackEvents(ctx, c, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func stackEvents(ctx context.Context, c *cloudformation.Client, id string) string {
	out, err := c.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String(id)})
	if err != nil {
		return fmt.Sprintf("(no events: %v)", err)
	}
	var b strings.Builder
	for _, e := range out.StackEvents {
		fmt.Fprintf(&b, "  %s %s %s %s\n", aws.ToString(e.LogicalResourceId), aws.ToString(e.ResourceType), e.ResourceStatus, aws.ToString(e.ResourceStatusReason))
	}
	return b.String()
}

// MotoStack is a stack of a CloudFormation template created on moto, made
// whole: moto's CloudFormation skips some resource types altogether
// (logging "No Moto CloudFormation support for TYPE" and reporting the
// stack complete all the same); DeployOnMoto registers each such resource
// through its service's own API, built from the template's properties, so
// that what comes next can run against it. Its methods are the operator's
// steps (docs/operations.md): size the fleet, suspend scale-in, run the
// planner task, read the logs, delete the stack.
//
//	srv := stackbed.StartMoto(t)
//	net := srv.Network(t)
//	s := stackbed.DeployOnMoto(t, srv, deploy.Template, map[string]string{
//		"SourceBucket": srv.Bucket(t, "src"), "DestinationBucket": srv.Bucket(t, "dst"),
//		"Image": "s3clone:dev", "VpcId": net.VpcID, "Subnets": strings.Join(net.Subnets, ","),
//	})
//	s.SetDesiredCount(t, 3)
//	s.SuspendScaleIn(t, true)
//	task := s.RunPlanner(t, "planner", "status")
//	cmd.Env = s.Server.Environ() // a planner or worker binary against the stack
//
// Moto runs no container: a task is a record (see RunPlanner), so a
// planner or worker runs as a local process with s.Server.Environ() (ECS
// through the server's ECSEndpoint proxy) and the stack's outputs
// (WorkQueueUrl, LedgerUrl, ...). The queues' URLs are AWS's
// (https://sqs.us-east-1.amazonaws.com/ACCOUNT/NAME): the SDK sends them
// to the endpoint it is given. On moto, the planner's ecs:UpdateService
// grant works only without IAM enforcement (ECS calls are checked against
// the resource *). What else moto does not do as AWS does is listed, and
// checked, in test/stack/moto_test.go (motoSkips, motoGaps).
type MotoStack struct {
	Name, ID string
	Server   *MotoServer
	Endpoint string     // the server's, for every service
	Cfg      aws.Config // the credentials the stack was made with, at Endpoint
	MotoClients
	Template *cfn.Template
	// Params is every parameter's value, defaults included.
	Params map[string]string
	// Outputs are the stack's outputs, as DescribeStacks reports them.
	Outputs map[string]string
	// Resources is every resource's Ref value (its physical id) by logical
	// id: those moto's CloudFormation created and the stand-ins.
	Resources map[string]string
	// StandIns are the resources moto's CloudFormation skipped, by logical
	// id, with their types: registered by DeployOnMoto through their
	// services' APIs (or, for a type it cannot register, absent from
	// Resources). Delete removes them as the stack's deletion would.
	StandIns map[string]string
	// Resolver evaluates the template's conditions and intrinsic functions
	// for this stack.
	Resolver     *cfn.Resolver
	standInProps map[string]map[string]any // the resolved properties each stand-in was made from
	runnable     map[string]string         // RunnableTaskDefinition's revisions
	deleted      bool
}

// DeployOnMoto creates a stack of the template on the server with these
// parameters (the template must declare each; the others take their
// defaults), with CAPABILITY_IAM and CAPABILITY_NAMED_IAM, waits for
// CREATE_COMPLETE (failing with the stack's events and moto's log) and
// registers the resources moto's CloudFormation skipped (StandIns).
func DeployOnMoto(t testing.TB, srv *MotoServer, template []byte, params map[string]string) *MotoStack {
	t.Helper()
	return DeployOnMotoAs(t, srv, srv.Cfg, template, params)
}

// DeployOnMotoAs is DeployOnMoto with other credentials (an IAM user's, on
// a server enforcing IAM).
func DeployOnMotoAs(t testing.TB, srv *MotoServer, cfg aws.Config, template []byte, params map[string]string) *MotoStack {
	t.Helper()
	ctx := context.Background()
	tpl, err := cfn.Parse(template)
	if err != nil {
		t.Fatalf("template: %v", err)
	}
	values, err := tpl.ParameterValues(params)
	if err != nil {
		t.Fatalf("template: %v", err)
	}
	s := &MotoStack{
		Name: testbed.Name("s3clone"), Server: srv, Endpoint: srv.Endpoint, Cfg: cfg, MotoClients: srv.ClientsAs(cfg),
		Template: tpl, Params: values, Resources: map[string]string{}, StandIns: map[string]string{},
		standInProps: map[string]map[string]any{},
	}
	var in []cfntypes.Parameter
	for _, k := range slices.Sorted(maps.Keys(params)) {
		in = append(in, cfntypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(params[k])})
	}
	out, err := s.CFN.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String(s.Name), TemplateBody: aws.String(string(template)), Parameters: in,
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam, cfntypes.CapabilityCapabilityNamedIam},
	})
	if err != nil {
		t.Fatalf("create stack: %v\n%s", err, srv.LogTail())
	}
	s.ID = aws.ToString(out.StackId)
	stack, err := waitStack(ctx, s.CFN, s.ID, cfntypes.StackStatusCreateComplete)
	if err != nil {
		t.Fatalf("create stack: %v\nmoto's log:\n%s", err, srv.LogTail())
	}
	s.Outputs = stackOutputs(stack)
	for _, r := range s.StackResources(t) {
		s.Resources[aws.ToString(r.LogicalResourceId)] = aws.ToString(r.PhysicalResourceId)
	}
	s.Resolver = &cfn.Resolver{
		Template: tpl, Params: values, Ref: s.Resources, Attr: s.attr,
		Pseudo: map[string]string{
			"AWS::Region": testbed.Region, "AWS::AccountId": testbed.MotoAccount, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
			"AWS::StackName": s.Name, "AWS::StackId": s.ID,
		},
	}
	s.registerStandIns(t)
	return s
}

// StackResources are the resources moto's CloudFormation reports for the
// stack (entries with no logical id, which moto adds for each resource it
// skipped, left out).
func (s *MotoStack) StackResources(t testing.TB) []cfntypes.StackResource {
	t.Helper()
	out, err := s.CFN.DescribeStackResources(context.Background(), &cloudformation.DescribeStackResourcesInput{StackName: aws.String(s.ID)})
	if err != nil {
		t.Fatalf("describe stack resources: %v", err)
	}
	var rs []cfntypes.StackResource
	for _, r := range out.StackResources {
		if id := aws.ToString(r.LogicalResourceId); id != "" && id != "None" {
			rs = append(rs, r)
		}
	}
	return rs
}

// Exists says whether the template creates a resource with this stack's
// parameters (its condition holds).
func (s *MotoStack) Exists(t testing.TB, logical string) bool {
	t.Helper()
	r, ok := s.Template.Resources[logical]
	if !ok {
		return false
	}
	c, err := s.Resolver.Condition(r.Condition)
	if err != nil {
		t.Fatalf("%s: %v", logical, err)
	}
	return c
}

// Properties are a resource's properties with every intrinsic function
// resolved for this stack.
func (s *MotoStack) Properties(t testing.TB, logical string) map[string]any {
	t.Helper()
	p, err := s.Resolver.Resolve(s.Template.Resources[logical].Properties)
	if err != nil {
		t.Fatalf("%s's properties: %v", logical, err)
	}
	return p.(map[string]any)
}

// attr answers Fn::GetAtt for the resource types the s3clone template
// reads attributes of, by asking the services.
func (s *MotoStack) attr(logical, attr string) (string, error) {
	ctx := context.Background()
	res, ok := s.Template.Resources[logical]
	if !ok {
		return "", fmt.Errorf("Fn::GetAtt %s.%s: no such resource", logical, attr)
	}
	ref, ok := s.Resources[logical]
	if !ok {
		return "", fmt.Errorf("Fn::GetAtt %s.%s: the stack has no such resource", logical, attr)
	}
	switch res.Type + "." + attr {
	case "AWS::SQS::Queue.Arn":
		out, err := s.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(ref), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			return "", err
		}
		return out.Attributes["QueueArn"], nil
	case "AWS::SQS::Queue.QueueName", "AWS::ECS::Service.Name":
		return ref[strings.LastIndexByte(ref, '/')+1:], nil
	case "AWS::SQS::Queue.QueueUrl", "AWS::ECS::Service.ServiceArn", "AWS::EC2::SecurityGroup.GroupId", "AWS::SNS::Topic.TopicArn", "AWS::EC2::VPCEndpoint.Id":
		return ref, nil
	case "AWS::Events::Rule.Arn": // on the default event bus
		if strings.HasPrefix(ref, "arn:") {
			return ref, nil
		}
		return fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", testbed.Region, testbed.MotoAccount, ref), nil
	case "AWS::EC2::SecurityGroup.VpcId":
		out, err := s.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{ref}})
		if err != nil || len(out.SecurityGroups) != 1 {
			return "", fmt.Errorf("security group %s: %v", ref, err)
		}
		return aws.ToString(out.SecurityGroups[0].VpcId), nil
	case "AWS::IAM::Role.Arn", "AWS::IAM::Role.RoleId":
		out, err := s.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(ref)})
		if err != nil {
			return "", err
		}
		if attr == "Arn" {
			return aws.ToString(out.Role.Arn), nil
		}
		return aws.ToString(out.Role.RoleId), nil
	case "AWS::ECS::Cluster.Arn":
		out, err := s.ECS.DescribeClusters(ctx, &ecs.DescribeClustersInput{Clusters: []string{ref}})
		if err != nil || len(out.Clusters) != 1 {
			return "", fmt.Errorf("cluster %s: %v", ref, err)
		}
		return aws.ToString(out.Clusters[0].ClusterArn), nil
	case "AWS::Logs::LogGroup.Arn": // ends in :*
		return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:*", testbed.Region, testbed.MotoAccount, ref), nil
	case "AWS::S3::Bucket.Arn":
		return "arn:aws:s3:::" + ref, nil
	case "AWS::S3::Bucket.DomainName":
		return ref + ".s3.amazonaws.com", nil
	case "AWS::SNS::Topic.TopicName":
		return ref[strings.LastIndexByte(ref, ':')+1:], nil
	}
	return "", fmt.Errorf("Fn::GetAtt %s.%s: attribute %s of %s not known to stackbed.MotoStack", logical, attr, attr, res.Type)
}

// A standIn registers, through its service's API, a resource of a type
// moto's CloudFormation skips, and returns its Ref value; remove deletes it.
type standIn struct {
	create func(s *MotoStack, logical string, props map[string]any) (string, error)
	remove func(s *MotoStack, logical, ref string) error
}

// MotoStandInTypes are the resource types DeployOnMoto registers itself
// when moto's CloudFormation skips them.
func MotoStandInTypes() []string { return slices.Sorted(maps.Keys(standIns)) }

var standIns = map[string]standIn{
	// Ref: "service/CLUSTER/SERVICE|ecs:service:DesiredCount|ecs", as CloudFormation's.
	"AWS::ApplicationAutoScaling::ScalableTarget": {
		create: func(s *MotoStack, _ string, props map[string]any) (string, error) {
			var in applicationautoscaling.RegisterScalableTargetInput
			if err := cfn.Decode(props, &in); err != nil {
				return "", err
			}
			if _, err := s.AutoScaling.RegisterScalableTarget(context.Background(), &in); err != nil {
				return "", err
			}
			return strings.Join([]string{aws.ToString(in.ResourceId), string(in.ScalableDimension), string(in.ServiceNamespace)}, "|"), nil
		},
		remove: func(s *MotoStack, _, ref string) error {
			id := strings.Split(ref, "|")
			_, err := s.AutoScaling.DeregisterScalableTarget(context.Background(), &applicationautoscaling.DeregisterScalableTargetInput{
				ResourceId: aws.String(id[0]), ScalableDimension: aastypes.ScalableDimension(id[1]), ServiceNamespace: aastypes.ServiceNamespace(id[2]),
			})
			return err
		},
	},
	// Ref: the policy's ARN.
	"AWS::ApplicationAutoScaling::ScalingPolicy": {
		create: func(s *MotoStack, _ string, props map[string]any) (string, error) {
			if target, ok := props["ScalingTargetId"]; ok {
				id := strings.Split(cfn.String(target), "|")
				if len(id) != 3 {
					return "", fmt.Errorf("ScalingTargetId %q", cfn.String(target))
				}
				delete(props, "ScalingTargetId")
				props["ResourceId"], props["ScalableDimension"], props["ServiceNamespace"] = id[0], id[1], id[2]
			}
			var in applicationautoscaling.PutScalingPolicyInput
			if err := cfn.Decode(props, &in); err != nil {
				return "", err
			}
			out, err := s.AutoScaling.PutScalingPolicy(context.Background(), &in)
			if err != nil {
				return "", err
			}
			return aws.ToString(out.PolicyARN), nil
		},
		remove: func(s *MotoStack, _, ref string) error {
			ctx := context.Background()
			out, err := s.AutoScaling.DescribeScalingPolicies(ctx, &applicationautoscaling.DescribeScalingPoliciesInput{ServiceNamespace: aastypes.ServiceNamespaceEcs})
			if err != nil {
				return err
			}
			for _, p := range out.ScalingPolicies {
				if aws.ToString(p.PolicyARN) == ref {
					_, err := s.AutoScaling.DeleteScalingPolicy(ctx, &applicationautoscaling.DeleteScalingPolicyInput{
						PolicyName: p.PolicyName, ResourceId: p.ResourceId, ScalableDimension: p.ScalableDimension, ServiceNamespace: p.ServiceNamespace,
					})
					return err
				}
			}
			return nil // gone with its scalable target
		},
	},
	// Ref: an id of the stack's making. The policy is each queue's Policy
	// attribute.
	"AWS::SQS::QueuePolicy": {
		create: func(s *MotoStack, logical string, props map[string]any) (string, error) {
			doc, err := json.Marshal(props["PolicyDocument"])
			if err != nil {
				return "", err
			}
			queues, _ := props["Queues"].([]any)
			for _, q := range queues {
				if _, err := s.SQS.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{
					QueueUrl: aws.String(cfn.String(q)), Attributes: map[string]string{"Policy": string(doc)},
				}); err != nil {
					return "", err
				}
			}
			return fmt.Sprintf("%s-%s-%X", s.Name, logical, rand.Uint32()), nil
		},
		remove: func(s *MotoStack, logical, _ string) error {
			queues, _ := s.standInProps[logical]["Queues"].([]any)
			for _, q := range queues {
				_, err := s.SQS.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{
					QueueUrl: aws.String(cfn.String(q)), Attributes: map[string]string{"Policy": ""},
				})
				var gone *sqstypes.QueueDoesNotExist
				if err != nil && !errors.As(err, &gone) {
					return err
				}
			}
			return nil
		},
	},
	// Ref: the subscription's ARN (pending confirmation, for e-mail).
	"AWS::SNS::Subscription": {
		create: func(s *MotoStack, _ string, props map[string]any) (string, error) {
			var in sns.SubscribeInput
			if err := cfn.Decode(props, &in); err != nil {
				return "", err
			}
			in.ReturnSubscriptionArn = true
			out, err := s.SNS.Subscribe(context.Background(), &in)
			if err != nil {
				return "", err
			}
			return aws.ToString(out.SubscriptionArn), nil
		},
		remove: func(s *MotoStack, _, ref string) error {
			_, err := s.SNS.Unsubscribe(context.Background(), &sns.UnsubscribeInput{SubscriptionArn: aws.String(ref)})
			var gone *snstypes.NotFoundException
			if errors.As(err, &gone) {
				return nil // gone with its topic
			}
			return err
		},
	},
	// Ref: the alarm's name; CloudFormation names an unnamed one
	// STACK-LOGICALID-SUFFIX.
	"AWS::CloudWatch::Alarm": {
		create: func(s *MotoStack, logical string, props map[string]any) (string, error) {
			if _, ok := props["AlarmName"]; !ok {
				props["AlarmName"] = fmt.Sprintf("%s-%s-%X", s.Name, logical, rand.Uint32())
			}
			var in cloudwatch.PutMetricAlarmInput
			if err := cfn.Decode(props, &in); err != nil {
				return "", err
			}
			if _, err := s.CloudWatch.PutMetricAlarm(context.Background(), &in); err != nil {
				return "", err
			}
			return aws.ToString(in.AlarmName), nil
		},
		remove: func(s *MotoStack, _, ref string) error {
			_, err := s.CloudWatch.DeleteAlarms(context.Background(), &cloudwatch.DeleteAlarmsInput{AlarmNames: []string{ref}})
			return err
		},
	},
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// registerStandIns registers each resource moto's CloudFormation skipped,
// in as many passes as their references to each other need.
func (s *MotoStack) registerStandIns(t testing.TB) {
	t.Helper()
	var todo []string
	for _, name := range slices.Sorted(maps.Keys(s.Template.Resources)) {
		if _, made := s.Resources[name]; !made && s.Exists(t, name) {
			s.StandIns[name] = s.Template.Resources[name].Type
			if _, ok := standIns[s.Template.Resources[name].Type]; ok {
				todo = append(todo, name)
			}
		}
	}
	for len(todo) > 0 {
		var later []string
		var errs []error
		for _, name := range todo {
			props, err := s.Resolver.Resolve(s.Template.Resources[name].Properties)
			if err != nil {
				later = append(later, name) // it may refer to a stand-in not registered yet
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			s.standInProps[name] = props.(map[string]any)
			ref, err := standIns[s.Template.Resources[name].Type].create(s, name, clone(props.(map[string]any)))
			if err != nil {
				t.Fatalf("stand-in for %s (%s): %v", name, s.Template.Resources[name].Type, err)
			}
			s.Resources[name] = ref
		}
		if len(later) == len(todo) {
			t.Fatalf("stand-ins: %v", errors.Join(errs...))
		}
		todo = later
	}
}

// RepairRolePolicies puts each role's inline policies again, as JSON
// resolved from the template. Moto's CloudFormation stores them as Python
// objects (GetRolePolicy returns their repr, with None for each
// AWS::NoValue), which moto's own IAM enforcement cannot read; call this
// before using a role's credentials on a server that enforces IAM.
func (s *MotoStack) RepairRolePolicies(t testing.TB) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(s.Template.Resources)) {
		if s.Template.Resources[name].Type != "AWS::IAM::Role" || !s.Exists(t, name) {
			continue
		}
		props := s.Properties(t, name)
		policies, _ := props["Policies"].([]any)
		for _, p := range policies {
			p, _ := p.(map[string]any)
			doc, err := json.Marshal(p["PolicyDocument"])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.IAM.PutRolePolicy(context.Background(), &iam.PutRolePolicyInput{
				RoleName: aws.String(s.Resources[name]), PolicyName: aws.String(cfn.String(p["PolicyName"])), PolicyDocument: aws.String(string(doc)),
			}); err != nil {
				t.Fatalf("%s: put policy %v: %v", name, p["PolicyName"], err)
			}
		}
	}
}

// AssumeRole returns a configuration with the credentials of the role a
// template's resource (e.g. "WorkerRole") is, from sts:AssumeRole.
func (s *MotoStack) AssumeRole(t testing.TB, logical string) (aws.Config, error) {
	t.Helper()
	arn, err := s.attr(logical, "Arn")
	if err != nil {
		t.Fatalf("role %s: %v", logical, err)
	}
	out, err := s.STS.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String(arn), RoleSessionName: aws.String("s3clone-test")})
	if err != nil {
		return aws.Config{}, err
	}
	c := out.Credentials
	return MotoConfig(s.Endpoint, aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)), nil
}

// WorkerService is the cluster and the worker service, from the ScaleEcs
// output (what planner status --scale-ecs takes).
func (s *MotoStack) WorkerService(t testing.TB) (cluster, service string) {
	t.Helper()
	cluster, service, ok := strings.Cut(s.Outputs["ScaleEcs"], "/")
	if !ok {
		t.Fatalf("ScaleEcs output %q: want CLUSTER/SERVICE", s.Outputs["ScaleEcs"])
	}
	return cluster, service
}

// Service describes the worker service.
func (s *MotoStack) Service(t testing.TB) ecstypes.Service {
	t.Helper()
	cluster, service := s.WorkerService(t)
	out, err := s.ECS.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{service}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("describe service %s/%s: %v (%d found, failures %v)", cluster, service, err, len(out.Services), failures(out))
	}
	return out.Services[0]
}

func failures(out *ecs.DescribeServicesOutput) []string {
	if out == nil {
		return nil
	}
	var f []string
	for _, x := range out.Failures {
		f = append(f, aws.ToString(x.Arn)+": "+aws.ToString(x.Reason))
	}
	return f
}

// SetDesiredCount sets the worker service's desired count (as planner
// status --scale-ecs does) and returns the service as described after.
func (s *MotoStack) SetDesiredCount(t testing.TB, n int32) ecstypes.Service {
	t.Helper()
	cluster, service := s.WorkerService(t)
	if _, err := s.ECS.UpdateService(context.Background(), &ecs.UpdateServiceInput{
		Cluster: aws.String(cluster), Service: aws.String(service), DesiredCount: aws.Int32(n),
	}); err != nil {
		t.Fatalf("update service %s/%s: %v", cluster, service, err)
	}
	return s.Service(t)
}

// ScalableTarget is the worker service's scalable target in Application
// Auto Scaling; false without one (Autoscaling=off).
func (s *MotoStack) ScalableTarget(t testing.TB) (aastypes.ScalableTarget, bool) {
	t.Helper()
	cluster, service := s.WorkerService(t)
	out, err := s.AutoScaling.DescribeScalableTargets(context.Background(), &applicationautoscaling.DescribeScalableTargetsInput{
		ServiceNamespace: aastypes.ServiceNamespaceEcs, ResourceIds: []string{"service/" + cluster + "/" + service},
		ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
	})
	if err != nil {
		t.Fatalf("describe scalable targets: %v", err)
	}
	if len(out.ScalableTargets) == 0 {
		return aastypes.ScalableTarget{}, false
	}
	return out.ScalableTargets[0], true
}

// SuspendScaleIn suspends (or resumes) Application Auto Scaling's dynamic
// scale-in of the worker service, keeping its capacities, as an operator
// warming the fleet for a window does, and returns the target as
// described after.
func (s *MotoStack) SuspendScaleIn(t testing.TB, suspended bool) aastypes.ScalableTarget {
	t.Helper()
	cur, ok := s.ScalableTarget(t)
	if !ok {
		t.Fatal("the worker service has no scalable target (Autoscaling=off?)")
	}
	if _, err := s.AutoScaling.RegisterScalableTarget(context.Background(), &applicationautoscaling.RegisterScalableTargetInput{
		ServiceNamespace: cur.ServiceNamespace, ResourceId: cur.ResourceId, ScalableDimension: cur.ScalableDimension,
		MinCapacity: cur.MinCapacity, MaxCapacity: cur.MaxCapacity,
		SuspendedState: &aastypes.SuspendedState{DynamicScalingInSuspended: aws.Bool(suspended)},
	}); err != nil {
		t.Fatalf("register scalable target: %v", err)
	}
	after, _ := s.ScalableTarget(t)
	return after
}

// RunTaskNetwork is the RunTaskNetwork output (the shorthand of aws ecs
// run-task --network-configuration) as the SDK's type.
func (s *MotoStack) RunTaskNetwork(t testing.TB) *ecstypes.NetworkConfiguration {
	t.Helper()
	n, err := ParseRunTaskNetwork(s.Outputs["RunTaskNetwork"])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var runTaskNetwork = regexp.MustCompile(`^awsvpcConfiguration=\{subnets=\[([^\]]*)\],securityGroups=\[([^\]]*)\],assignPublicIp=(ENABLED|DISABLED)\}$`)

// ParseRunTaskNetwork reads aws ecs run-task's shorthand
// awsvpcConfiguration={subnets=[A,B],securityGroups=[G],assignPublicIp=DISABLED}.
func ParseRunTaskNetwork(s string) (*ecstypes.NetworkConfiguration, error) {
	m := runTaskNetwork.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("RunTaskNetwork %q: not awsvpcConfiguration={subnets=[...],securityGroups=[...],assignPublicIp=...}", s)
	}
	return &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
		Subnets: strings.Split(m[1], ","), SecurityGroups: strings.Split(m[2], ","), AssignPublicIp: ecstypes.AssignPublicIp(m[3]),
	}}, nil
}

// RunnableTaskDefinition registers, once, a new revision of a task
// definition the stack made (by its Ref, e.g. the PlannerTaskDefinition
// output) that moto can run, and returns its ARN. Moto's CloudFormation
// keeps only a task definition's family, containers, volumes and memory
// (not its CPU, network mode, compatibilities, roles or runtime platform),
// and moto's RunTask fails (500) on any task definition whose containers
// have no memory of their own, as Fargate's need not. The revision is the
// template's task definition in full, each container given the task's
// memory.
func (s *MotoStack) RunnableTaskDefinition(t testing.TB, ref string) string {
	t.Helper()
	if arn, ok := s.runnable[ref]; ok {
		return arn
	}
	var logical string
	for name, r := range s.Resources {
		if r == ref && s.Template.Resources[name].Type == "AWS::ECS::TaskDefinition" {
			logical = name
		}
	}
	if logical == "" {
		t.Fatalf("task definition %s is none of the stack's", ref)
	}
	props := s.Properties(t, logical)
	delete(props, "Tags") // moto keeps them apart; nothing here reads them
	var in ecs.RegisterTaskDefinitionInput
	if err := cfn.Decode(props, &in); err != nil {
		t.Fatalf("%s: %v", logical, err)
	}
	var memory int
	fmt.Sscan(aws.ToString(in.Memory), &memory)
	for i := range in.ContainerDefinitions {
		if c := &in.ContainerDefinitions[i]; c.Memory == nil && c.MemoryReservation == nil {
			c.Memory = aws.Int32(int32(memory))
		}
	}
	out, err := s.ECS.RegisterTaskDefinition(context.Background(), &in)
	if err != nil {
		t.Fatalf("register a runnable revision of %s: %v", logical, err)
	}
	if s.runnable == nil {
		s.runnable = map[string]string{}
	}
	s.runnable[ref] = aws.ToString(out.TaskDefinition.TaskDefinitionArn)
	return s.runnable[ref]
}

// RunPlanner runs the planner task definition (the PlannerTaskDefinition
// output; on moto, its RunnableTaskDefinition) with the stack's
// RunTaskNetwork and a command override, as the operator's guide does, and
// returns the task. Moto takes no capacity provider strategy (it would
// look for EC2 container instances), so the task is launched as FARGATE;
// it runs nothing, either: the task is a record.
func (s *MotoStack) RunPlanner(t testing.TB, command ...string) ecstypes.Task {
	t.Helper()
	cluster, _ := s.WorkerService(t)
	out, err := s.ECS.RunTask(context.Background(), &ecs.RunTaskInput{
		Cluster: aws.String(cluster), TaskDefinition: aws.String(s.RunnableTaskDefinition(t, s.Outputs["PlannerTaskDefinition"])),
		LaunchType: ecstypes.LaunchTypeFargate, NetworkConfiguration: s.RunTaskNetwork(t),
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{Name: aws.String("planner"), Command: command}}},
	})
	if err != nil {
		t.Fatalf("run the planner task: %v\n%s", err, s.Server.LogTail())
	}
	if len(out.Tasks) != 1 {
		t.Fatalf("run the planner task: %d tasks, failures %+v", len(out.Tasks), out.Failures)
	}
	return out.Tasks[0]
}

// Task describes a task of the stack's cluster.
func (s *MotoStack) Task(t testing.TB, arn string) ecstypes.Task {
	t.Helper()
	cluster, _ := s.WorkerService(t)
	out, err := s.ECS.DescribeTasks(context.Background(), &ecs.DescribeTasksInput{Cluster: aws.String(cluster), Tasks: []string{arn}})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("describe task %s: %v", arn, err)
	}
	return out.Tasks[0]
}

// PutLogs writes lines to a stream of the stack's log group (the
// LogGroupName output), creating the stream if need be, as the awslogs
// driver does for a task (stream PREFIX/CONTAINER/TASKID).
func (s *MotoStack) PutLogs(t testing.TB, stream string, lines ...string) {
	t.Helper()
	ctx := context.Background()
	group := aws.String(s.Outputs["LogGroupName"])
	_, err := s.Logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: group, LogStreamName: aws.String(stream)})
	var exists *logtypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		t.Fatalf("create log stream %s: %v", stream, err)
	}
	now := time.Now().UnixMilli()
	var events []logtypes.InputLogEvent
	for _, l := range lines {
		events = append(events, logtypes.InputLogEvent{Message: aws.String(l), Timestamp: aws.Int64(now)})
	}
	if _, err := s.Logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: group, LogStreamName: aws.String(stream), LogEvents: events}); err != nil {
		t.Fatalf("put log events to %s: %v", stream, err)
	}
}

// LogLines reads a stream of the stack's log group from its start.
func (s *MotoStack) LogLines(t testing.TB, stream string) []string {
	t.Helper()
	out, err := s.Logs.GetLogEvents(context.Background(), &cloudwatchlogs.GetLogEventsInput{
		LogGroupName: aws.String(s.Outputs["LogGroupName"]), LogStreamName: aws.String(stream), StartFromHead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("get log events of %s: %v", stream, err)
	}
	var lines []string
	for _, e := range out.Events {
		lines = append(lines, aws.ToString(e.Message))
	}
	return lines
}

// Delete deletes the stack, waits for DELETE_COMPLETE, and removes the
// stand-ins as CloudFormation would (those with DeletionPolicy Retain
// kept).
func (s *MotoStack) Delete(t testing.TB) {
	t.Helper()
	if s.deleted {
		return
	}
	ctx := context.Background()
	if _, err := s.CFN.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(s.ID)}); err != nil {
		t.Fatalf("delete stack: %v", err)
	}
	if _, err := waitStack(ctx, s.CFN, s.ID, cfntypes.StackStatusDeleteComplete); err != nil {
		t.Fatalf("delete stack: %v\nmoto's log:\n%s", err, s.Server.LogTail())
	}
	// Dependents first: alarms, then policies, then targets.
	order := []string{"AWS::CloudWatch::Alarm", "AWS::ApplicationAutoScaling::ScalingPolicy", "AWS::ApplicationAutoScaling::ScalableTarget"}
	for _, typ := range slices.Sorted(maps.Keys(standIns)) {
		if !slices.Contains(order, typ) {
			order = append(order, typ)
		}
	}
	for _, typ := range order {
		for _, name := range slices.Sorted(maps.Keys(s.StandIns)) {
			ref, made := s.Resources[name]
			if s.StandIns[name] != typ || !made || s.Template.Resources[name].DeletionPolicy == "Retain" {
				continue
			}
			if err := standIns[typ].remove(s, name, ref); err != nil {
				t.Fatalf("delete stand-in %s: %v", name, err)
			}
		}
	}
	s.deleted = true
}
