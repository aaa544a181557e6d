package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.yaml.in/yaml/v3"

	"github.com/s3clone/s3clone/internal/worker"
)

// rawTemplate is the whole template as plain data, intrinsics in their long form.
func rawTemplate(t *testing.T) map[string]any {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(Template, &doc); err != nil {
		t.Fatal(err)
	}
	m, _ := plain(t, doc.Content[0]).(map[string]any)
	return m
}

// container is the one container of a task definition.
func container(t *testing.T, tpl template, task string) map[string]any {
	t.Helper()
	defs := list(tpl.Resources[task].Properties["ContainerDefinitions"])
	if len(defs) != 1 {
		t.Fatalf("%s: want one container", task)
	}
	c, _ := defs[0].(map[string]any)
	return c
}

// TestCfnLint runs cfn-lint (preinstalled on the build machines: `cfn-lint
// --version` says 1.51) over the template; any error or warning fails, and
// so does I3011 (a stateful resource without an explicit DeletionPolicy and
// UpdateReplacePolicy).
func TestCfnLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		if os.Getenv("S3CLONE_REQUIRE_TESTBED") != "" {
			t.Fatal("cfn-lint is not on the PATH (the build machines have it preinstalled)")
		}
		t.Skip("cfn-lint is not on the PATH; make test requires it")
	}
	// I3011: every stateful resource says what deletion and replacement do with it.
	if out, err := exec.Command(bin, "--format", "parseable", "--include-checks", "I3011", "--", "s3clone.yaml").CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("cfn-lint: %v\n%s", err, out)
	}
}

// TestFargateSizesAreValid: every WorkerSize is a CPU and memory pair
// Fargate accepts, and the worker task takes both from it.
func TestFargateSizesAreValid(t *testing.T) {
	valid := map[int]func(mem int) bool{ // AWS's table of Fargate task sizes
		256:   func(m int) bool { return m == 512 || m == 1024 || m == 2048 },
		512:   func(m int) bool { return m >= 1024 && m <= 4096 && m%1024 == 0 },
		1024:  func(m int) bool { return m >= 2048 && m <= 8192 && m%1024 == 0 },
		2048:  func(m int) bool { return m >= 4096 && m <= 16384 && m%1024 == 0 },
		4096:  func(m int) bool { return m >= 8192 && m <= 30720 && m%1024 == 0 },
		8192:  func(m int) bool { return m >= 16384 && m <= 61440 && m%4096 == 0 },
		16384: func(m int) bool { return m >= 32768 && m <= 122880 && m%8192 == 0 },
	}
	doc := rawTemplate(t)
	sizes, _ := doc["Mappings"].(map[string]any)["FargateSizes"].(map[string]any)
	tpl := loadTemplate(t)
	param, _ := tpl.Parameters["WorkerSize"].(map[string]any)
	allowed := list(param["AllowedValues"])
	if len(allowed) == 0 || len(sizes) != len(allowed) {
		t.Fatalf("WorkerSize allows %v, the mapping holds %d sizes", allowed, len(sizes))
	}
	for _, a := range allowed {
		size, _ := sizes[a.(string)].(map[string]any)
		cpu, _ := strconv.Atoi(size["Cpu"].(string))
		mem, _ := strconv.Atoi(size["Memory"].(string))
		if ok := valid[cpu]; ok == nil || !ok(mem) {
			t.Errorf("WorkerSize %s: %d CPU units with %d MiB is not a Fargate size", a, cpu, mem)
		}
	}
	props := tpl.Resources["WorkerTaskDefinition"].Properties
	for _, field := range []string{"Cpu", "Memory"} {
		want := key(map[string]any{"Fn::FindInMap": []any{"FargateSizes", map[string]any{"Ref": "WorkerSize"}, field}})
		if key(props[field]) != want {
			t.Errorf("WorkerTaskDefinition.%s is %s, want %s", field, key(props[field]), want)
		}
	}
}

// TestRulesRefuseWhatParametersCannot: MinWorkers above MaxWorkers, subnets
// outside the VPC, VPC endpoints without the route tables the S3 gateway
// endpoint needs, and a ledger key without a ledger bucket are refused before
// anything is created; ARM64 with Fargate Spot is not.
func TestRulesRefuseWhatParametersCannot(t *testing.T) {
	doc := rawTemplate(t)
	rules, _ := doc["Rules"].(map[string]any)
	tpl := loadTemplate(t)
	values := func(p string) []int {
		var out []int
		for _, v := range list(tpl.Parameters[p].(map[string]any)["AllowedValues"]) {
			n, _ := strconv.Atoi(v.(string))
			out = append(out, n)
		}
		return out
	}
	// Evaluate the rules for every pair of allowed values.
	refused := func(min, max int) bool {
		for _, r := range rules {
			rule, _ := r.(map[string]any)
			if cond, ok := rule["RuleCondition"]; ok && key(cond) != key(map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "MinWorkers"}, strconv.Itoa(min)}}) {
				continue
			} else if !ok {
				continue
			}
			for _, a := range list(rule["Assertions"]) {
				assert, _ := a.(map[string]any)["Assert"].(map[string]any)
				not, _ := assert["Fn::Not"].([]any)
				contains, _ := not[0].(map[string]any)["Fn::Contains"].([]any)
				for _, v := range list(contains[0]) {
					if v == strconv.Itoa(max) {
						return true
					}
				}
			}
		}
		return false
	}
	for _, min := range values("MinWorkers") {
		for _, max := range values("MaxWorkers") {
			if got, want := refused(min, max), min > max; got != want {
				t.Errorf("MinWorkers %d, MaxWorkers %d: refused %v, want %v", min, max, got, want)
			}
		}
	}
	subnets := key(map[string]any{"Fn::EachMemberEquals": []any{map[string]any{"Fn::ValueOfAll": []any{"AWS::EC2::Subnet::Id", "VpcId"}}, map[string]any{"Ref": "VpcId"}}})
	found := false
	for _, r := range rules {
		for _, a := range list(r.(map[string]any)["Assertions"]) {
			found = found || key(a.(map[string]any)["Assert"]) == subnets
		}
	}
	if !found {
		t.Error("no rule holds the subnets to VpcId")
	}
	// Every other rule, evaluated as CloudFormation would for each case.
	for _, c := range []struct {
		params  map[string]any
		refused []string
	}{
		// The S3 gateway endpoint is a route: it needs the route tables, with no
		// empty entry (an empty CommaDelimitedList is [""] to a rule).
		{map[string]any{"VpcEndpoints": "create", "RouteTableIds": []any{""}}, []string{"VpcEndpointsNeedRouteTables"}},
		{map[string]any{"VpcEndpoints": "create", "RouteTableIds": []any{"rtb-1", ""}}, []string{"VpcEndpointsNeedRouteTables"}},
		{map[string]any{"VpcEndpoints": "create", "RouteTableIds": []any{"rtb-1", "rtb-2"}}, nil},
		{map[string]any{"VpcEndpoints": "none", "RouteTableIds": []any{""}}, nil},
		// ARM64 on Fargate Spot is not refused (see TestSpotKeepsAnOnDemandBase).
		{map[string]any{"CpuArchitecture": "ARM64", "CapacityProvider": "FARGATE_SPOT"}, nil},
		// A ledger key belongs to a ledger bucket the operator names.
		{map[string]any{"LedgerKmsKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/k", "LedgerBucket": ""}, []string{"LedgerKmsKeyNeedsLedgerBucket"}},
		{map[string]any{"LedgerKmsKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/k", "LedgerBucket": "my-ledger"}, nil},
		// Follow mirrors deletions: the workers must be allowed to delete.
		{map[string]any{"Follow": "s3", "AllowDelete": "false"}, []string{"FollowNeedsAllowDelete"}},
		{map[string]any{"Follow": "eventbridge", "AllowDelete": "false"}, []string{"FollowNeedsAllowDelete"}},
		{map[string]any{"Follow": "eventbridge", "AllowDelete": "true"}, nil},
		{map[string]any{"Follow": "off", "AllowDelete": "false"}, nil},
	} {
		if got := refusingRules(t, tpl, rules, c.params); !slices.Equal(got, c.refused) {
			t.Errorf("with %v the rules %v refuse; want %v", c.params, got, c.refused)
		}
	}
}

// refusingRules evaluates the template's rules (those the MinWorkers and
// subnet checks above do not cover) with the parameters' defaults overridden
// by params, and returns the names of those whose assertions fail.
func refusingRules(t *testing.T, tpl template, rules map[string]any, params map[string]any) []string {
	t.Helper()
	value := func(name string) any {
		if v, ok := params[name]; ok {
			return v
		}
		p, ok := tpl.Parameters[name].(map[string]any)
		if !ok {
			t.Fatalf("a rule names %s, which is no parameter", name)
		}
		if p["Type"] == "CommaDelimitedList" {
			return slices.Collect(func(yield func(any) bool) {
				for _, s := range strings.Split(p["Default"].(string), ",") {
					if !yield(s) {
						return
					}
				}
			})
		}
		return p["Default"]
	}
	var eval func(v any) any
	eval = func(v any) any {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for fn, arg := range m {
			args, _ := arg.([]any)
			switch fn {
			case "Ref":
				return value(arg.(string))
			case "Fn::Equals":
				return key(eval(args[0])) == key(eval(args[1]))
			case "Fn::Not":
				return !eval(args[0]).(bool)
			case "Fn::Contains": // a list of strings, and a string
				return slices.ContainsFunc(eval(args[0]).([]any), func(e any) bool { return e == eval(args[1]) })
			}
			t.Fatalf("the rule evaluator knows no %s", fn)
		}
		return nil
	}
	var out []string
	for name, r := range rules {
		if strings.HasPrefix(name, "MinWorkersAtMostMax") || name == "SubnetsInVpc" {
			continue // checked above
		}
		rule := r.(map[string]any)
		if cond, ok := rule["RuleCondition"]; ok && !eval(cond).(bool) {
			continue
		}
		for _, a := range list(rule["Assertions"]) {
			if !eval(a.(map[string]any)["Assert"]).(bool) {
				out = append(out, name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestSpotKeepsAnOnDemandBase: with FARGATE_SPOT the service's strategy puts
// its first OnDemandBase tasks on FARGATE (weight 0: nothing beyond the
// base) and the rest on FARGATE_SPOT, so a Spot shortage never leaves the
// fleet at zero; with FARGATE, only FARGATE. The platform version is the one
// the ECS API reference names for ARM64 on Spot (CapacityProviderStrategyItem:
// "FARGATE_SPOT supports Linux tasks with the ARM64 architecture on platform
// version 1.4.0 or later"), which is why no rule refuses ARM64 with Spot.
func TestSpotKeepsAnOnDemandBase(t *testing.T) {
	tpl := loadTemplate(t)
	svc := tpl.Resources["WorkerService"].Properties
	if _, ok := svc["LaunchType"]; ok {
		t.Error("WorkerService sets a launch type: a capacity provider strategy cannot go with it")
	}
	if svc["PlatformVersion"] != "1.4.0" {
		t.Errorf("WorkerService's platform version is %v, want 1.4.0", svc["PlatformVersion"])
	}
	want := key(map[string]any{"Fn::If": []any{"SpotWorkers",
		[]any{
			map[string]any{"CapacityProvider": "FARGATE", "Base": map[string]any{"Ref": "OnDemandBase"}, "Weight": "0"},
			map[string]any{"CapacityProvider": "FARGATE_SPOT", "Weight": "1"},
		},
		[]any{map[string]any{"CapacityProvider": "FARGATE", "Weight": "1"}},
	}})
	if got := key(svc["CapacityProviderStrategy"]); got != want {
		t.Errorf("WorkerService's strategy is %s\nwant %s", got, want)
	}
	if got := key(tpl.Conditions["SpotWorkers"]); got != key(map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "CapacityProvider"}, "FARGATE_SPOT"}}) {
		t.Errorf("SpotWorkers is %s", got)
	}
	p := tpl.Parameters["OnDemandBase"].(map[string]any)
	if n, _ := strconv.Atoi(p["Default"].(string)); n < 1 || p["Type"] != "Number" || p["MinValue"] != "0" {
		t.Errorf("OnDemandBase: %s; want a Number, default at least 1 (the fleet never all Spot), 0 allowed", key(p))
	}
	if got := list(tpl.Parameters["CapacityProvider"].(map[string]any)["AllowedValues"]); key(got) != `["FARGATE","FARGATE_SPOT"]` {
		t.Errorf("CapacityProvider allows %s", key(got))
	}
	// The cluster offers both providers, or the strategy is refused.
	if got := key(tpl.Resources["Cluster"].Properties["CapacityProviders"]); got != `["FARGATE","FARGATE_SPOT"]` {
		t.Errorf("the cluster's capacity providers are %s", got)
	}
}

// TestFleetSurvivesUpdatesAndStops: no DesiredCount (an update would reset
// a running fleet to it), a stop timeout that covers a worker's graceful
// stop, and dead letters that outlive the work queue's messages.
func TestFleetSurvivesUpdatesAndStops(t *testing.T) {
	tpl := loadTemplate(t)
	if _, ok := tpl.Resources["WorkerService"].Properties["DesiredCount"]; ok {
		t.Error("WorkerService sets DesiredCount: every stack update would reset a running fleet to it")
	}
	c := container(t, tpl, "WorkerTaskDefinition")
	stop, _ := strconv.Atoi(c["StopTimeout"].(string))
	// SIGTERM: the grace for copies in flight, the long poll under way, then
	// the ledger writes and deletes of what finished.
	need := worker.DefaultGrace + worker.DefaultWait + 2*worker.CallTimeout
	if time.Duration(stop)*time.Second < need || stop > 120 {
		t.Errorf("StopTimeout %ds: want at least %s (grace, poll, ledger write and delete) and at most Fargate's 120s", stop, need)
	}
	for _, e := range list(c["Environment"]) {
		if name := e.(map[string]any)["Name"]; name == "S3CLONE_GRACE" || name == "S3CLONE_VISIBILITY_TIMEOUT" {
			t.Errorf("the worker's environment sets %s: the stop timeout is held to the defaults", name)
		}
	}
	retention := func(q string) int {
		n, _ := strconv.Atoi(tpl.Resources[q].Properties["MessageRetentionPeriod"].(string))
		return n
	}
	if dlq, work := retention("DeadLetterQueue"), retention("WorkQueue"); dlq < work+7*24*3600 {
		t.Errorf("retention: dead-letter queue %ds, work queue %ds: a message's age counts from its first send, so give dead letters a week more at least", dlq, work)
	}
	p, _ := tpl.Parameters["MaxReceiveCount"].(map[string]any)
	if n, _ := strconv.Atoi(p["Default"].(string)); n < 10 {
		t.Errorf("MaxReceiveCount defaults to %d: scale-in releases and throttled retries spend deliveries too", n)
	}
	if p, _ := tpl.Parameters["MinWorkers"].(map[string]any); p["Default"] != "0" {
		t.Errorf("MinWorkers defaults to %v: a parked fleet should cost nothing", p["Default"])
	}
}

// TestScalingStartsFromZero: with no worker running, backlog per worker has
// no value and target tracking does nothing; a step policy on the work
// queue's visible messages sets one worker.
func TestScalingStartsFromZero(t *testing.T) {
	tpl := loadTemplate(t)
	policy := tpl.Resources["WorkerFromZero"]
	cfg, _ := policy.Properties["StepScalingPolicyConfiguration"].(map[string]any)
	// CloudWatch repeats an Auto Scaling action every minute its alarm is in
	// ALARM: an exact count would cut a grown fleet back to it, so only add.
	if policy.Condition != "BacklogScaling" || cfg["AdjustmentType"] != "ChangeInCapacity" ||
		key(cfg["StepAdjustments"]) != `[{"MetricIntervalLowerBound":"0","ScalingAdjustment":"1"}]` {
		t.Fatalf("WorkerFromZero: %s %s", policy.Condition, key(cfg))
	}
	alarm := tpl.Resources["WorkWaitingAlarm"].Properties
	if key(alarm["AlarmActions"]) != `[{"Ref":"WorkerFromZero"}]` || alarm["Threshold"] != "0" || alarm["ComparisonOperator"] != "GreaterThanThreshold" {
		t.Fatalf("WorkWaitingAlarm: %s", key(alarm))
	}
	// The alarm fires only while no worker drains the queue: messages wait
	// and none is in flight.
	metrics := map[string]string{}
	var expr string
	for _, m := range alarm["Metrics"].([]any) {
		m := m.(map[string]any)
		if e, ok := m["Expression"]; ok {
			expr = e.(string)
			if m["ReturnData"] != "true" {
				t.Errorf("the expression %q is not what the alarm watches", expr)
			}
			continue
		}
		stat := m["MetricStat"].(map[string]any)
		metric := stat["Metric"].(map[string]any)
		if !strings.Contains(key(metric["Dimensions"]), `["WorkQueue","QueueName"]`) {
			t.Errorf("%s is not the work queue's: %s", m["Id"], key(metric))
		}
		metrics[m["Id"].(string)] = metric["MetricName"].(string)
	}
	if metrics["visible"] != "ApproximateNumberOfMessagesVisible" || metrics["inflight"] != "ApproximateNumberOfMessagesNotVisible" ||
		expr != "IF(visible > 0 AND FILL(inflight, 0) == 0, 1, 0)" {
		t.Fatalf("WorkWaitingAlarm watches %v with %q; want waiting messages with none in flight", metrics, expr)
	}
}

// TestExecutionRoleIsScoped: ECS pulls from the image's repository only and
// writes to the stack's log group only.
func TestExecutionRoleIsScoped(t *testing.T) {
	tpl := loadTemplate(t)
	role := tpl.Resources["ExecutionRole"].Properties
	if _, ok := role["ManagedPolicyArns"]; ok {
		t.Fatal("ExecutionRole takes a managed policy: its ECR and log grants are on every resource")
	}
	want := map[string]string{
		"ecr:GetAuthorizationToken":       `"*"`, // has no resource to scope to
		"ecr:BatchCheckLayerAvailability": `{"Fn::Sub":"arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${EcrRepository}"}`,
		"ecr:BatchGetImage":               `{"Fn::Sub":"arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${EcrRepository}"}`,
		"ecr:GetDownloadUrlForLayer":      `{"Fn::Sub":"arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/${EcrRepository}"}`,
		"logs:CreateLogStream":            `{"Fn::GetAtt":["LogGroup","Arn"]}`, // arn:...:log-group:NAME:*
		"logs:PutLogEvents":               `{"Fn::GetAtt":["LogGroup","Arn"]}`,
	}
	got := map[string]string{}
	walk(role["Policies"], "", func(_ string, m map[string]any) {
		if m["Effect"] != "Allow" {
			return
		}
		for _, a := range list(m["Action"]) {
			got[a.(string)] = key(m["Resource"])
		}
	})
	for action, res := range want {
		if got[action] != res {
			t.Errorf("ExecutionRole: %s on %s, want on %s", action, got[action], res)
		}
	}
	if len(got) != len(want) {
		t.Errorf("ExecutionRole grants %v, want exactly %v", got, want)
	}
}

// TestContainersReadOnly: both containers run on a read-only root file
// system; the planner, which may write files, gets a scratch /tmp.
func TestContainersReadOnly(t *testing.T) {
	tpl := loadTemplate(t)
	for _, task := range []string{"WorkerTaskDefinition", "PlannerTaskDefinition", "FollowTaskDefinition"} {
		if c := container(t, tpl, task); c["ReadonlyRootFilesystem"] != "true" {
			t.Errorf("%s: ReadonlyRootFilesystem %v", task, c["ReadonlyRootFilesystem"])
		}
	}
	for _, task := range []string{"PlannerTaskDefinition", "FollowTaskDefinition"} {
		if mp := key(container(t, tpl, task)["MountPoints"]); !strings.Contains(mp, `"ContainerPath":"/tmp"`) {
			t.Errorf("%s has no writable /tmp: %s", task, mp)
		}
	}
	// A Fargate volume is root's, 0755, unless the image declares the path a
	// VOLUME: then it takes the image's permissions, which uid 65532 can write.
	lines := dockerfile(t)
	final := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			final = i
		}
	}
	if !slices.Contains(lines[final:], `VOLUME ["/tmp"]`) {
		t.Errorf("the image's last stage does not declare /tmp a VOLUME: the planner (uid 65532) could not write the task's scratch volume")
	}
}

// TestCannedAclIsOneS3Knows: a typo in CannedAcl would crash-loop every
// worker (--acl refuses it); the parameter allows exactly the SDK's values.
func TestCannedAclIsOneS3Knows(t *testing.T) {
	tpl := loadTemplate(t)
	var allowed []string
	for _, v := range list(tpl.Parameters["CannedAcl"].(map[string]any)["AllowedValues"]) {
		if v != "" {
			allowed = append(allowed, v.(string))
		}
	}
	var sdk []string
	for _, v := range types.ObjectCannedACL("").Values() {
		sdk = append(sdk, string(v))
	}
	slices.Sort(allowed)
	slices.Sort(sdk)
	if !slices.Equal(allowed, sdk) {
		t.Errorf("CannedAcl allows %v, S3 knows %v", allowed, sdk)
	}
}

// TestEveryResourceIsTagged: each resource of a type that takes tags
// carries the stack's, so a bill can be read by stack.
func TestEveryResourceIsTagged(t *testing.T) {
	taggable := map[string]bool{
		"AWS::SQS::Queue": true, "AWS::S3::Bucket": true, "AWS::Logs::LogGroup": true, "AWS::IAM::Role": true,
		"AWS::ECS::Cluster": true, "AWS::EC2::SecurityGroup": true, "AWS::ECS::TaskDefinition": true, "AWS::ECS::Service": true,
		"AWS::CloudWatch::Alarm": true, "AWS::SNS::Topic": true, "AWS::EC2::VPCEndpoint": true, "AWS::Events::Rule": true,
	}
	// Types that take no tags: a new type must be placed in one list or the other.
	untaggable := map[string]bool{
		"AWS::ApplicationAutoScaling::ScalableTarget": true, "AWS::ApplicationAutoScaling::ScalingPolicy": true,
		"AWS::CloudWatch::Dashboard": true, "AWS::SNS::Subscription": true, "AWS::SQS::QueuePolicy": true,
		"AWS::IAM::ManagedPolicy": true, // CloudFormation's AWS::IAM::ManagedPolicy has no Tags property
	}
	tpl := loadTemplate(t)
	for name, r := range tpl.Resources {
		if !taggable[r.Type] {
			if !untaggable[r.Type] {
				t.Errorf("%s is a %s: is it taggable? Put the type in taggable or untaggable", name, r.Type)
			}
			continue
		}
		if !strings.Contains(key(r.Properties["Tags"]), `{"Key":"s3clone:stack","Value":{"Ref":"AWS::StackName"}}`) {
			t.Errorf("%s (%s) is not tagged with s3clone:stack", name, r.Type)
		}
	}
	// Container Insights' log group is the stack's own, with a retention.
	lg := tpl.Resources["ContainerInsightsLogGroup"]
	if key(lg.Properties["LogGroupName"]) != `{"Fn::Sub":"/aws/ecs/containerinsights/${AWS::StackName}/performance"}` ||
		key(tpl.Resources["Cluster"].Properties["ClusterName"]) != `{"Ref":"AWS::StackName"}` || lg.Properties["RetentionInDays"] == nil {
		t.Errorf("Container Insights' log group %s for cluster %s", key(lg.Properties), key(tpl.Resources["Cluster"].Properties["ClusterName"]))
	}
	// The cluster goes first on delete: its draining service's last metrics
	// cannot make the log group again, outside the stack.
	if deps := key(tpl.Resources["Cluster"].DependsOn); lg.Condition != "" || !strings.Contains(deps, `"ContainerInsightsLogGroup"`) || !strings.Contains(deps, `"LogGroup"`) {
		t.Errorf("the cluster depends on %s (Container Insights' log group's condition %q): want both log groups, always made", deps, lg.Condition)
	}
}

// TestOperatorGuideMatchesTheOutputs: every output the operator's guide's
// commands (docs/operations.md) read (OUT Name) exists, and what an operator
// needs is among them.
func TestOperatorGuideMatchesTheOutputs(t *testing.T) {
	tpl := loadTemplate(t)
	readme, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`OUT ([A-Za-z0-9]+)`).FindAllStringSubmatch(string(readme), -1) {
		used[m[1]] = true
		if _, ok := tpl.Outputs[m[1]]; !ok {
			t.Errorf("docs/operations.md reads output %s, which the template does not have", m[1])
		}
	}
	for _, need := range []string{"WorkQueueUrl", "LedgerUrl", "DeadLetterQueueUrl", "ClusterName", "ScaleEcs", "PlannerTaskDefinition",
		"RunTaskNetwork", "CapacityProvider", "WorkerRoleArn", "PlannerRoleArn", "LogGroupName",
		"AlarmTopicArn", "StoppedWorkersQueueUrl", "S3GatewayEndpointId", "SourceBucketPolicyStatements", "DestinationBucketPolicyStatements",
		"SourceKmsKeyPolicyStatements", "DestinationKmsKeyPolicyStatements", "LedgerKmsKeyPolicyStatements",
		"ChangeQueueUrl", "ChangeQueueArn", "ChangeDeadLetterQueueUrl", "FollowServiceName", "FollowCommand", "CutoverFollowCommand", "UnsubscribeCommand"} {
		if _, ok := tpl.Outputs[need]; !ok {
			t.Errorf("no output %s", need)
		}
		if !used[need] && need != "PlannerRoleArn" && need != "WorkerRoleArn" && need != "LogGroupName" && need != "ChangeQueueArn" {
			t.Errorf("the operator guide never uses output %s", need)
		}
	}
	network := key(tpl.Outputs["RunTaskNetwork"].(map[string]any)["Value"])
	for _, part := range []string{"subnets=[", "securityGroups=[", "assignPublicIp=${AssignPublicIp}"} {
		if !strings.Contains(network, part) {
			t.Errorf("RunTaskNetwork %s lacks %s", network, part)
		}
	}
	if !strings.Contains(string(readme), `--network-configuration "$(OUT RunTaskNetwork)"`) {
		t.Error("docs/operations.md's run-task does not take its network configuration from RunTaskNetwork")
	}
}

// TestVpcEndpointsCoverWhatTheTasksCall: with VpcEndpoints=create, a task in a
// private subnet without NAT reaches every service it calls: the S3 gateway
// endpoint on RouteTableIds, and an interface endpoint with private DNS in
// Subnets for every other service deploy.Calls names, for the image (ECR's
// api and dkr; its layers come from S3), for the awslogs driver (logs), and
// for Application Auto Scaling, which the planner steers the worker service
// with (RegisterScalableTarget, DescribeScalableTargets). ECS developer
// guide, "Migrating to Linux platform version 1.4.0": images in ECR need
// ecr.dkr, ecr.api and the S3 gateway endpoint.
func TestVpcEndpointsCoverWhatTheTasksCall(t *testing.T) {
	tpl := loadTemplate(t)
	endpointName := map[string]string{"applicationautoscaling": "application-autoscaling"} // SDK package -> endpoint
	want := map[string]bool{"ecr.api": true, "ecr.dkr": true, "logs": true, "application-autoscaling": true}
	for _, c := range Calls {
		if c.Service == "s3" || (c.Role != Worker && c.Role != Planner) {
			continue // the gateway endpoint; calls made outside the tasks
		}
		if n, ok := endpointName[c.Service]; ok {
			want[n] = true
		} else {
			want[c.Service] = true
		}
	}
	got := map[string]bool{}
	gateway := false
	for name, r := range tpl.Resources {
		if r.Type != "AWS::EC2::VPCEndpoint" {
			continue
		}
		p := r.Properties
		if r.Condition != "CreateVpcEndpoints" || key(p["VpcId"]) != `{"Ref":"VpcId"}` {
			t.Errorf("%s: condition %q, VPC %s; want CreateVpcEndpoints, VpcId", name, r.Condition, key(p["VpcId"]))
		}
		svc, _ := p["ServiceName"].(map[string]any)["Fn::Sub"].(string)
		service, ok := strings.CutPrefix(svc, "com.amazonaws.${AWS::Region}.")
		if !ok {
			t.Errorf("%s: service name %s", name, key(p["ServiceName"]))
			continue
		}
		switch p["VpcEndpointType"] {
		case "Gateway":
			if service != "s3" || key(p["RouteTableIds"]) != `{"Ref":"RouteTableIds"}` {
				t.Errorf("%s: a gateway endpoint for %s on %s; want S3's on RouteTableIds", name, service, key(p["RouteTableIds"]))
			}
			gateway = true
		case "Interface":
			if p["PrivateDnsEnabled"] != "true" || key(p["SubnetIds"]) != `{"Ref":"Subnets"}` ||
				key(p["SecurityGroupIds"]) != `[{"Ref":"VpcEndpointSecurityGroup"}]` {
				t.Errorf("%s: private DNS %v, subnets %s, groups %s; want private DNS (the SDK's usual names resolve to it) in Subnets behind VpcEndpointSecurityGroup",
					name, p["PrivateDnsEnabled"], key(p["SubnetIds"]), key(p["SecurityGroupIds"]))
			}
			if got[service] {
				t.Errorf("two interface endpoints for %s", service)
			}
			got[service] = true
		default:
			t.Errorf("%s: type %v", name, p["VpcEndpointType"])
		}
	}
	if !gateway {
		t.Error("no S3 gateway endpoint")
	}
	for s := range want {
		if !got[s] {
			t.Errorf("no interface endpoint for %s, which the tasks call", s)
		}
	}
	for s := range got {
		if !want[s] {
			t.Errorf("an interface endpoint for %s, which no task calls (each costs by the hour)", s)
		}
	}
	// HTTPS in from the tasks (the planner task runs with the workers' group), nothing else.
	sg := tpl.Resources["VpcEndpointSecurityGroup"]
	in := key(sg.Properties["SecurityGroupIngress"])
	if sg.Condition != "CreateVpcEndpoints" || in != `[{"Description":"HTTPS from the worker and planner tasks","FromPort":"443","IpProtocol":"tcp","SourceSecurityGroupId":{"Ref":"WorkerSecurityGroup"},"ToPort":"443"}]` {
		t.Errorf("VpcEndpointSecurityGroup (condition %q) lets in %s; want 443 from WorkerSecurityGroup only", sg.Condition, in)
	}
	if network := key(tpl.Outputs["RunTaskNetwork"].(map[string]any)["Value"]); !strings.Contains(network, "securityGroups=[${WorkerSecurityGroup}]") {
		t.Errorf("the planner task's network %s does not use WorkerSecurityGroup, which the endpoints let in", network)
	}
	if got := key(tpl.Conditions["CreateVpcEndpoints"]); got != `{"Fn::Equals":[{"Ref":"VpcEndpoints"},"create"]}` {
		t.Errorf("CreateVpcEndpoints is %s", got)
	}
	if p := tpl.Parameters["VpcEndpoints"].(map[string]any); p["Default"] != "none" || key(p["AllowedValues"]) != `["none","create"]` {
		t.Errorf("VpcEndpoints: %s; want none (the default) or create", key(p))
	}
	if p := tpl.Parameters["RouteTableIds"].(map[string]any); p["Type"] != "CommaDelimitedList" || p["Default"] != "" {
		t.Errorf("RouteTableIds: %s; want a CommaDelimitedList, empty by default", key(p))
	}
}

// TestEveryRoleHasThePermissionsBoundary: PermissionsBoundary, when given, is
// the boundary of every role the stack creates; the parameter takes managed
// policy ARNs only.
func TestEveryRoleHasThePermissionsBoundary(t *testing.T) {
	tpl := loadTemplate(t)
	want := `{"Fn::If":["HasPermissionsBoundary",{"Ref":"PermissionsBoundary"},{"Ref":"AWS::NoValue"}]}`
	n := 0
	for name, r := range tpl.Resources {
		if r.Type != "AWS::IAM::Role" {
			continue
		}
		n++
		if got := key(r.Properties["PermissionsBoundary"]); got != want {
			t.Errorf("%s's permissions boundary is %s, want %s", name, got, want)
		}
	}
	if n < 3 {
		t.Errorf("%d roles: want the execution, worker and planner roles at least", n)
	}
	if got := key(tpl.Conditions["HasPermissionsBoundary"]); got != `{"Fn::Not":[{"Fn::Equals":[{"Ref":"PermissionsBoundary"},""]}]}` {
		t.Errorf("HasPermissionsBoundary is %s", got)
	}
	p := tpl.Parameters["PermissionsBoundary"].(map[string]any)
	pattern := regexp.MustCompile(p["AllowedPattern"].(string))
	for v, ok := range map[string]bool{
		"": true, "arn:aws:iam::123456789012:policy/boundaries/s3clone": true, "arn:aws:iam::aws:policy/PowerUserAccess": true,
		"arn:aws-us-gov:iam::123456789012:policy/b": true, "s3clone-boundary": false, "arn:aws:iam::123456789012:role/r": false,
	} {
		if pattern.MatchString(v) != ok {
			t.Errorf("PermissionsBoundary's pattern takes %q: %v, want %v", v, !ok, ok)
		}
	}
}

// TestAlarmsNotifyTheTopicInUse: the stack makes an SNS topic when
// AlarmTopicArn is empty, subscribes AlarmEmail to the topic in use when
// given, and every alarm meant for a person notifies that topic. The one
// alarm that is not, WorkWaitingAlarm, starts a worker (its action is the
// scaling policy, repeated every minute in ALARM).
func TestAlarmsNotifyTheTopicInUse(t *testing.T) {
	tpl := loadTemplate(t)
	topic := `{"Fn::If":["CreateAlarmTopic",{"Ref":"AlarmTopic"},{"Ref":"AlarmTopicArn"}]}`
	if r := tpl.Resources["AlarmTopic"]; r.Type != "AWS::SNS::Topic" || r.Condition != "CreateAlarmTopic" {
		t.Errorf("AlarmTopic: %s under %q; want the stack's topic when AlarmTopicArn is empty", r.Type, r.Condition)
	}
	if got := key(tpl.Conditions["CreateAlarmTopic"]); got != `{"Fn::Equals":[{"Ref":"AlarmTopicArn"},""]}` {
		t.Errorf("CreateAlarmTopic is %s", got)
	}
	sub := tpl.Resources["AlarmEmailSubscription"]
	if sub.Type != "AWS::SNS::Subscription" || sub.Condition != "HasAlarmEmail" || sub.Properties["Protocol"] != "email" ||
		key(sub.Properties["Endpoint"]) != `{"Ref":"AlarmEmail"}` || key(sub.Properties["TopicArn"]) != topic {
		t.Errorf("AlarmEmailSubscription: %s under %q, %s", sub.Type, sub.Condition, key(sub.Properties))
	}
	if got := key(tpl.Conditions["HasAlarmEmail"]); got != `{"Fn::Not":[{"Fn::Equals":[{"Ref":"AlarmEmail"},""]}]}` {
		t.Errorf("HasAlarmEmail is %s", got)
	}
	alarms := 0
	for name, r := range tpl.Resources {
		if r.Type != "AWS::CloudWatch::Alarm" {
			continue
		}
		if name == "WorkWaitingAlarm" {
			if got := key(r.Properties["AlarmActions"]); got != `[{"Ref":"WorkerFromZero"}]` {
				t.Errorf("WorkWaitingAlarm's actions are %s: it only starts a worker", got)
			}
			continue
		}
		alarms++
		if got := key(r.Properties["AlarmActions"]); got != "["+topic+"]" {
			t.Errorf("%s notifies %s, want the topic in use %s", name, got, topic)
		}
		// Follow's alarms watch its change queue, which exists only with it.
		if r.Condition != "" && (r.Condition != "FollowEnabled" || !strings.Contains(key(r.Properties), "Change")) {
			t.Errorf("%s exists only when %s", name, r.Condition)
		}
	}
	if alarms < 3 {
		t.Errorf("%d alarms for the operator: want the dead-letter, oldest-message and stopped-worker alarms", alarms)
	}
	if got := key(tpl.Outputs["AlarmTopicArn"].(map[string]any)["Value"]); got != topic {
		t.Errorf("output AlarmTopicArn is %s", got)
	}
}

// TestOldestWorkAlarm: an alarm when a work message has waited
// OldestMessageAlarmMinutes: no worker runs, or too few. SQS reports
// ApproximateAgeOfOldestMessage in seconds (SQS developer guide, "Available
// CloudWatch metrics for Amazon SQS"); the threshold is in minutes.
func TestOldestWorkAlarm(t *testing.T) {
	tpl := loadTemplate(t)
	a := tpl.Resources["OldestWorkAlarm"].Properties
	want := key([]any{
		map[string]any{"Id": "age", "ReturnData": "false", "MetricStat": map[string]any{
			"Metric": map[string]any{"Namespace": "AWS/SQS", "MetricName": "ApproximateAgeOfOldestMessage",
				"Dimensions": []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{"WorkQueue", "QueueName"}}}}},
			"Period": "60", "Stat": "Maximum"}},
		map[string]any{"Id": "minutes", "Label": "minutes the oldest work message has waited", "Expression": "age / 60", "ReturnData": "true"},
	})
	if got := key(a["Metrics"]); got != want {
		t.Errorf("OldestWorkAlarm watches %s\nwant %s", got, want)
	}
	if key(a["Threshold"]) != `{"Ref":"OldestMessageAlarmMinutes"}` || a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["TreatMissingData"] != "notBreaching" {
		t.Errorf("OldestWorkAlarm: threshold %s, %v, missing data %v", key(a["Threshold"]), a["ComparisonOperator"], a["TreatMissingData"])
	}
	p := tpl.Parameters["OldestMessageAlarmMinutes"].(map[string]any)
	def, _ := strconv.Atoi(p["Default"].(string))
	maxMinutes, _ := strconv.Atoi(p["MaxValue"].(string))
	retention, _ := strconv.Atoi(tpl.Resources["WorkQueue"].Properties["MessageRetentionPeriod"].(string))
	// Long enough for a first worker to start and drain (scale-from-zero takes
	// a few minutes), short enough to be told within a window.
	if def < 10 || def > 60 || maxMinutes*60 > retention {
		t.Errorf("OldestMessageAlarmMinutes: default %d, at most %d; want 10 to 60 by default, and no more than the work queue keeps a message (%ds)", def, maxMinutes, retention)
	}
}

// TestWorkerStoppedAlarm: an alarm when a worker task stops other than by
// scale-in: it failed to start, or its container exited. ECS sends each task
// state change to EventBridge (ECS developer guide, "Amazon ECS task state
// change events"); a rule on the worker service's group matches the stops
// with those stop codes, sends them to a queue to read, and the alarm counts
// the rule's runs (TriggeredRules by RuleName: MatchedEvents has no RuleName
// dimension, EventBridge user guide, "Monitoring Amazon EventBridge"). It
// needs neither Container Insights nor backlog scaling: it works with
// Autoscaling=off.
func TestWorkerStoppedAlarm(t *testing.T) {
	tpl := loadTemplate(t)
	rule := tpl.Resources["WorkerStoppedRule"]
	pattern, _ := rule.Properties["EventPattern"].(map[string]any)
	detail, _ := pattern["detail"].(map[string]any)
	if key(pattern["source"]) != `["aws.ecs"]` || key(pattern["detail-type"]) != `["ECS Task State Change"]` ||
		key(detail["clusterArn"]) != `[{"Fn::GetAtt":["Cluster","Arn"]}]` || key(detail["group"]) != `[{"Fn::Sub":"service:${WorkerService.Name}"}]` ||
		key(detail["lastStatus"]) != `["STOPPED"]` || rule.Properties["State"] != "ENABLED" {
		t.Errorf("WorkerStoppedRule matches %s", key(pattern))
	}
	codes := map[string]bool{}
	for _, c := range list(detail["stopCode"]) {
		codes[c.(string)] = true
	}
	known := map[string]bool{}
	for _, c := range ecstypes.TaskStopCode("").Values() {
		known[string(c)] = true
	}
	for c := range codes {
		if !known[c] {
			t.Errorf("stop code %s is none ECS sends (%v)", c, known)
		}
	}
	for _, c := range []ecstypes.TaskStopCode{ecstypes.TaskStopCodeTaskFailedToStart, ecstypes.TaskStopCodeEssentialContainerExited} {
		if !codes[string(c)] {
			t.Errorf("WorkerStoppedRule misses %s", c)
		}
	}
	// Scale-in and deployments, Spot interruptions, retirements and a person's StopTask are not failures.
	for _, c := range []ecstypes.TaskStopCode{ecstypes.TaskStopCodeServiceSchedulerInitiated, ecstypes.TaskStopCodeSpotInterruption,
		ecstypes.TaskStopCodeTerminationNotice, ecstypes.TaskStopCodeUserInitiated} {
		if codes[string(c)] {
			t.Errorf("WorkerStoppedRule matches %s, which is no failure", c)
		}
	}
	if got := key(rule.Properties["Targets"]); got != `[{"Arn":{"Fn::GetAtt":["StoppedWorkersQueue","Arn"]},"Id":"stopped-workers"}]` {
		t.Errorf("WorkerStoppedRule sends to %s, want StoppedWorkersQueue", got)
	}
	policy := tpl.Resources["StoppedWorkersQueuePolicy"].Properties
	wantPolicy := key(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Principal": map[string]any{"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
		"Resource":  map[string]any{"Fn::GetAtt": []any{"StoppedWorkersQueue", "Arn"}},
		"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": map[string]any{"Fn::GetAtt": []any{"WorkerStoppedRule", "Arn"}}}},
	}}})
	if key(policy["PolicyDocument"]) != wantPolicy || key(policy["Queues"]) != `[{"Ref":"StoppedWorkersQueue"}]` {
		t.Errorf("StoppedWorkersQueuePolicy: %s\nwant EventBridge to send from the rule alone: %s", key(policy), wantPolicy)
	}
	a := tpl.Resources["WorkerStoppedAlarm"].Properties
	if a["Namespace"] != "AWS/Events" || a["MetricName"] != "TriggeredRules" || a["Statistic"] != "Sum" || a["Threshold"] != "0" ||
		a["ComparisonOperator"] != "GreaterThanThreshold" || a["TreatMissingData"] != "notBreaching" ||
		key(a["Dimensions"]) != `[{"Name":"RuleName","Value":{"Fn::Select":["1",{"Fn::Split":["/",{"Fn::GetAtt":["WorkerStoppedRule","Arn"]}]}]}}]` {
		t.Errorf("WorkerStoppedAlarm: %s", key(a))
	}
	// The rule's ARN on the default bus is arn:...:rule/NAME: element 1 is the name.
	if parts := strings.Split("arn:aws:events:eu-west-1:111122223333:rule/s3clone-WorkerStoppedRule-ABC", "/"); parts[1] != "s3clone-WorkerStoppedRule-ABC" {
		t.Errorf("rule name from ARN: %q", parts[1])
	}
	for _, r := range []string{"WorkerStoppedRule", "StoppedWorkersQueue", "StoppedWorkersQueuePolicy", "WorkerStoppedAlarm"} {
		if c := tpl.Resources[r].Condition; c != "" {
			t.Errorf("%s exists only when %s: the alarm must work whatever scales the fleet", r, c)
		}
	}
}

// TestDeletionKeepsWhatItShould: every log group, queue and bucket says what
// deletion and replacement do with it (cfn-lint's I3011, which TestCfnLint
// runs). Logs stay (Retain: a post-mortem reads the planner's last words), in
// a group named with the stack's id so that a stack made again under the same
// name does not collide with a kept one; Container Insights' group goes (ECS
// fixes its name by the cluster's); queues go (Delete: nothing on them is the
// only copy, the ledger names every message).
func TestDeletionKeepsWhatItShould(t *testing.T) {
	doc := rawTemplate(t)
	resources := doc["Resources"].(map[string]any)
	tpl := loadTemplate(t)
	want := map[string]string{"LogGroup": "Retain", "ContainerInsightsLogGroup": "Delete", "Ledger": "Retain"}
	for name, r := range tpl.Resources {
		switch r.Type {
		case "AWS::SQS::Queue":
			want[name] = "Delete"
		case "AWS::Logs::LogGroup", "AWS::S3::Bucket":
			if _, ok := want[name]; !ok {
				t.Errorf("%s (%s): no deletion policy chosen for it here", name, r.Type)
			}
		}
	}
	for name, policy := range want {
		raw, _ := resources[name].(map[string]any)
		if raw["DeletionPolicy"] != policy || raw["UpdateReplacePolicy"] != policy {
			t.Errorf("%s: DeletionPolicy %v, UpdateReplacePolicy %v; want %s for both", name, raw["DeletionPolicy"], raw["UpdateReplacePolicy"], policy)
		}
	}
	if got := key(tpl.Resources["LogGroup"].Properties["LogGroupName"]); !strings.Contains(got, `{"Ref":"AWS::StackId"}`) || !strings.Contains(got, "/s3clone/${AWS::StackName}/") {
		t.Errorf("LogGroup is named %s: a kept group named by the stack's name alone would stop the stack being made again", got)
	}
}

// TestTemplateSizeAndTheDeployCommand: CloudFormation takes a template body
// of at most 51,200 bytes in a request (CloudFormation user guide,
// "CloudFormation quotas"; aws cloudformation deploy refuses a larger file
// without --s3-bucket); a larger template goes through S3, so the operator's
// guide's deploy command must say --s3-bucket.
func TestTemplateSizeAndTheDeployCommand(t *testing.T) {
	guide, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	commands := regexp.MustCompile(`aws cloudformation deploy (?:[^\n]*\\\n)*[^\n]*`).FindAllString(string(guide), -1)
	n := 0
	for _, c := range commands {
		if !strings.Contains(c, "--template-file") {
			continue // "aws cloudformation deploy ..." shorthand for the same command
		}
		n++
		if len(Template) > 51200 && !strings.Contains(c, "--s3-bucket") {
			t.Errorf("the template is %d bytes, over the 51,200 CloudFormation takes in a request, and docs/operations.md deploys it without --s3-bucket:\n%s", len(Template), c)
		}
	}
	if n == 0 {
		t.Error("docs/operations.md has no aws cloudformation deploy --template-file command")
	}
	if len(Template) > 460800 {
		t.Errorf("the template is %d bytes, over the 460,800 CloudFormation takes from S3", len(Template))
	}
}

// noValue is what Ref AWS::NoValue evaluates to.
type noValue struct{}

// evaluator evaluates the template's intrinsic functions for one choice of
// parameters and conditions, with made-up attributes of resources.
type evaluator struct {
	t      *testing.T
	params map[string]any    // a parameter's value: string or []any
	conds  map[string]bool   // a condition's value
	attrs  map[string]string // "Res.Attr" or "Res" (its Ref): value
}

func (e evaluator) ref(name string) any {
	e.t.Helper()
	switch name {
	case "AWS::NoValue":
		return noValue{}
	case "AWS::Partition":
		return "aws"
	case "AWS::Region":
		return "eu-west-1"
	case "AWS::AccountId":
		return "111122223333"
	case "AWS::StackName":
		return "s3clone"
	}
	if v, ok := e.params[name]; ok {
		return v
	}
	if v, ok := e.attrs[name]; ok {
		return v
	}
	e.t.Fatalf("evaluating: no value given for %s", name)
	return nil
}

func (e evaluator) cond(name string) bool {
	e.t.Helper()
	v, ok := e.conds[name]
	if !ok {
		e.t.Fatalf("evaluating: no value given for condition %s", name)
	}
	return v
}

func (e evaluator) eval(v any) any {
	e.t.Helper()
	switch x := v.(type) {
	case []any:
		var out []any
		for _, c := range x {
			if r := e.eval(c); r != (noValue{}) {
				out = append(out, r)
			}
		}
		return out
	case map[string]any:
		if len(x) == 1 {
			for fn, arg := range x {
				args, _ := arg.([]any)
				switch fn {
				case "Ref":
					return e.ref(arg.(string))
				case "Fn::GetAtt":
					return e.ref(args[0].(string) + "." + args[1].(string))
				case "Fn::If":
					if e.cond(args[0].(string)) {
						return e.eval(args[1])
					}
					return e.eval(args[2])
				case "Fn::Join":
					var parts []string
					for _, p := range e.eval(args[1]).([]any) {
						parts = append(parts, p.(string))
					}
					return strings.Join(parts, args[0].(string))
				case "Fn::Split":
					var out []any
					for _, p := range strings.Split(e.eval(args[1]).(string), args[0].(string)) {
						out = append(out, p)
					}
					return out
				case "Fn::Select":
					i, _ := strconv.Atoi(e.eval(args[0]).(string))
					return e.eval(args[1]).([]any)[i]
				case "Fn::Sub":
					s, _ := arg.(string)
					vars := map[string]any{}
					if len(args) > 0 {
						s = args[0].(string)
						if len(args) > 1 {
							vars = args[1].(map[string]any)
						}
					}
					return regexp.MustCompile(`\$\{([^}]*)\}`).ReplaceAllStringFunc(s, func(m string) string {
						name := m[2 : len(m)-1]
						if lit, ok := strings.CutPrefix(name, "!"); ok {
							return "${" + lit + "}"
						}
						if v, ok := vars[name]; ok {
							return e.eval(v).(string)
						}
						return e.ref(name).(string)
					})
				}
			}
		}
		out := map[string]any{}
		for k, c := range x {
			out[k] = e.eval(c)
		}
		return out
	}
	return v
}

// policyGrant is one (principal, action, resource) a policy statement allows.
type policyGrant struct {
	role   Role
	action string
	on     Resource
}

// outputStatements evaluates an output that holds policy statements (a JSON
// array) and reads it back into grants, naming principals and resources with
// the given maps; each statement must be a plain Allow.
func outputStatements(t *testing.T, e evaluator, tpl template, name string, principals map[string]Role, resources map[string]Resource, condition any) []policyGrant {
	t.Helper()
	out, ok := tpl.Outputs[name].(map[string]any)
	if !ok {
		t.Fatalf("no output %s", name)
	}
	var stmts []struct {
		Effect    string
		Principal struct{ AWS any }
		Action    []string
		Resource  any
		Condition any
		NotAction any
	}
	if err := json.Unmarshal([]byte(e.eval(out["Value"]).(string)), &stmts); err != nil {
		t.Fatalf("output %s is not a JSON array of statements: %v", name, err)
	}
	var grants []policyGrant
	for _, s := range stmts {
		if s.Effect != "Allow" || s.NotAction != nil || key(s.Condition) != key(condition) {
			t.Errorf("output %s: a statement with effect %s, condition %s; want Allow statements with condition %s", name, s.Effect, key(s.Condition), key(condition))
		}
		for _, p := range list(s.Principal.AWS) {
			role, ok := principals[p.(string)]
			if !ok {
				t.Errorf("output %s allows %v, which is neither role", name, p)
			}
			for _, r := range list(s.Resource) {
				on, ok := resources[r.(string)]
				if !ok {
					t.Errorf("output %s: a statement on %v", name, r)
				}
				for _, a := range s.Action {
					grants = append(grants, policyGrant{role, a, on})
				}
			}
		}
	}
	return grants
}

// TestPolicyOutputsGrantWhatTheRolesGrant: the outputs an operator pastes
// into a key policy (SourceKmsKeyArn's, DestinationKmsKeyArn's,
// LedgerKmsKeyArn's) or into the bucket policy of a source or destination in
// another account name the worker and planner roles with exactly the actions
// the roles are granted on that key or bucket (deploy.Grants, which
// TestRolesGrantExactlyTheCalls holds the roles' policies to), conditional
// grants under their conditions. A key-policy statement is limited to use
// through S3 in the key's region (kms:ViaService). The ledger key's are what
// S3 asks of the roles' ledger calls (S3 user guide, SSE-KMS permissions: an
// upload needs kms:GenerateDataKey, a download kms:Decrypt), and what the
// roles' policies grant on it, once they do.
func TestPolicyOutputsGrantWhatTheRolesGrant(t *testing.T) {
	tpl := loadTemplate(t)
	principals := map[string]Role{"arn:aws:iam::111122223333:role/worker": Worker, "arn:aws:iam::111122223333:role/planner": Planner}
	attrs := map[string]string{"WorkerRole.Arn": "arn:aws:iam::111122223333:role/worker", "PlannerRole.Arn": "arn:aws:iam::111122223333:role/planner"}
	expected := func(roles map[Role]bool, conds map[string]bool, kinds ...Resource) []policyGrant {
		var out []policyGrant
		for role := range roles {
			for _, g := range Grants(role) {
				if slices.Contains(kinds, g.On) && (g.When == "" || conds[g.When]) {
					out = append(out, policyGrant{role, g.Action, g.On})
				}
			}
		}
		return out
	}
	same := func(name string, got, want []policyGrant) {
		t.Helper()
		cmp := func(a, b policyGrant) int {
			return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
		}
		slices.SortFunc(got, cmp)
		slices.SortFunc(want, cmp)
		got = slices.Compact(got)
		if !slices.Equal(got, slices.Compact(want)) {
			t.Errorf("output %s grants\n  %v\nthe roles are granted\n  %v", name, got, want)
		}
	}
	both := map[Role]bool{Worker: true, Planner: true}

	// Buckets in another account, with every combination of the conditions.
	for _, allowDelete := range []bool{false, true} {
		for _, acl := range []bool{false, true} {
			for _, follow := range []bool{false, true} {
				conds := map[string]bool{"AllowDelete": allowDelete, "HasCannedAcl": acl, "FollowEnabled": follow}
				e := evaluator{t: t, params: map[string]any{"SourceBucket": "src", "DestinationBucket": "dst"}, conds: conds, attrs: attrs}
				for _, c := range []struct {
					output          string
					bucket, objects Resource
					name            string
				}{{"SourceBucketPolicyStatements", SourceBucket, SourceObjects, "src"}, {"DestinationBucketPolicyStatements", DestBucket, DestObjects, "dst"}} {
					if cond := tpl.Outputs[c.output].(map[string]any)["Condition"]; cond != nil {
						t.Errorf("output %s exists only when %v", c.output, cond)
					}
					resources := map[string]Resource{"arn:aws:s3:::" + c.name: c.bucket, "arn:aws:s3:::" + c.name + "/*": c.objects,
						"arn:aws:s3:::" + c.name + "/.s3clone-marks/*": SourceMarks}
					kinds := []Resource{c.bucket, c.objects}
					if c.bucket == SourceBucket {
						kinds = append(kinds, SourceMarks)
					}
					same(fmt.Sprintf("%s (AllowDelete %v, HasCannedAcl %v, FollowEnabled %v)", c.output, allowDelete, acl, follow),
						outputStatements(t, e, tpl, c.output, principals, resources, nil), expected(both, conds, kinds...))
				}
			}
		}
	}

	// Keys: in another region and account than the stack's, to show the
	// condition names the key's region.
	const keyArn = "arn:aws:kms:eu-central-1:444455556666:key/1234abcd"
	via := map[string]any{"StringEquals": map[string]any{"kms:ViaService": "s3.eu-central-1.amazonaws.com"}}
	ledgerNeeds := func() []policyGrant {
		kmsFor := map[string]string{"s3:GetObject": "kms:Decrypt", "s3:PutObject": "kms:GenerateDataKey"}
		var out []policyGrant
		for role := range both {
			for _, g := range Grants(role) {
				// Every kind of ledger record (the ledger's resources are all named "ledger ...").
				if a, ok := kmsFor[g.Action]; ok && strings.HasPrefix(string(g.On), "ledger ") {
					out = append(out, policyGrant{role, a, "ledger KMS key"})
				}
			}
		}
		// What the roles' policies grant on the key, once they grant anything, must be what the output says.
		for roleName, role := range map[string]Role{"WorkerRole": Worker, "PlannerRole": Planner} {
			var granted []policyGrant
			walkGuarded(tpl.Resources[roleName].Properties["Policies"], roleName, "", func(_, _ string, m map[string]any) {
				if slices.ContainsFunc(list(m["Resource"]), func(r any) bool { return key(r) == `{"Ref":"LedgerKmsKeyArn"}` }) {
					for _, a := range list(m["Action"]) {
						granted = append(granted, policyGrant{role, a.(string), "ledger KMS key"})
					}
				}
			})
			if len(granted) > 0 {
				out = slices.DeleteFunc(out, func(g policyGrant) bool { return g.role == role })
				out = append(out, granted...)
			}
		}
		return out
	}
	for _, c := range []struct {
		output, param, cond string
		conds               map[string]bool
		want                []policyGrant
	}{
		{"SourceKmsKeyPolicyStatements", "SourceKmsKeyArn", "HasSourceKmsKey", map[string]bool{"FollowSourceKmsKey": false},
			expected(both, map[string]bool{"HasSourceKmsKey": true}, SourceKmsKey)},
		// With Follow, the planner writes the cutover's marks into the source, under its key.
		{"SourceKmsKeyPolicyStatements", "SourceKmsKeyArn", "HasSourceKmsKey", map[string]bool{"FollowSourceKmsKey": true},
			expected(both, map[string]bool{"HasSourceKmsKey": true, "FollowSourceKmsKey": true}, SourceKmsKey)},
		{"DestinationKmsKeyPolicyStatements", "DestinationKmsKeyArn", "HasDestinationKmsKey", nil, expected(both, map[string]bool{"HasDestinationKmsKey": true}, DestKmsKey)},
		{"LedgerKmsKeyPolicyStatements", "LedgerKmsKeyArn", "HasLedgerKmsKey", nil, ledgerNeeds()},
	} {
		out, _ := tpl.Outputs[c.output].(map[string]any)
		if out["Condition"] != c.cond || key(tpl.Conditions[c.cond]) != key(map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": c.param}, ""}}}}) {
			t.Errorf("output %s exists under %v (%s); want only when %s is given", c.output, out["Condition"], key(tpl.Conditions[c.cond]), c.param)
		}
		if len(c.want) == 0 {
			t.Errorf("%s: the roles need nothing of the key", c.output)
		}
		e := evaluator{t: t, params: map[string]any{c.param: keyArn}, conds: c.conds, attrs: attrs}
		var kind Resource
		for _, g := range c.want {
			kind = g.on
		}
		same(fmt.Sprint(c.output, c.conds), outputStatements(t, e, tpl, c.output, principals, map[string]Resource{"*": kind}, via), c.want)
	}
}
