package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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
// --version` says 1.51) over the template; any error or warning fails.
func TestCfnLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		if os.Getenv("S3CLONE_REQUIRE_TESTBED") != "" {
			t.Fatal("cfn-lint is not on the PATH (the build machines have it preinstalled)")
		}
		t.Skip("cfn-lint is not on the PATH; make test requires it")
	}
	if out, err := exec.Command(bin, "--format", "parseable", "s3clone.yaml").CombinedOutput(); err != nil || len(out) > 0 {
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

// TestRulesRefuseWhatParametersCannot: MinWorkers above MaxWorkers, and
// subnets outside the VPC, are refused before anything is created.
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
	// Fargate Spot runs no ARM64 task: the pair is refused before anything is made.
	spot := key(map[string]any{
		"RuleCondition": map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "CpuArchitecture"}, "ARM64"}},
		"Assertions": []any{map[string]any{
			"Assert":            map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "CapacityProvider"}, "FARGATE_SPOT"}}}},
			"AssertDescription": "Fargate Spot does not run ARM64 tasks; choose CapacityProvider FARGATE or CpuArchitecture X86_64",
		}},
	})
	if got := key(rules["SpotRunsX86Only"]); got != spot {
		t.Errorf("SpotRunsX86Only: %s\nwant %s", got, spot)
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
	svc := tpl.Resources["WorkerService"].Properties
	if _, ok := svc["LaunchType"]; ok || !strings.Contains(key(svc["CapacityProviderStrategy"]), `{"Ref":"CapacityProvider"}`) {
		t.Errorf("WorkerService: want a capacity provider strategy from CapacityProvider (Fargate Spot on offer), not a launch type")
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
	for _, task := range []string{"WorkerTaskDefinition", "PlannerTaskDefinition"} {
		if c := container(t, tpl, task); c["ReadonlyRootFilesystem"] != "true" {
			t.Errorf("%s: ReadonlyRootFilesystem %v", task, c["ReadonlyRootFilesystem"])
		}
	}
	if mp := key(container(t, tpl, "PlannerTaskDefinition")["MountPoints"]); !strings.Contains(mp, `"ContainerPath":"/tmp"`) {
		t.Errorf("the planner has no writable /tmp: %s", mp)
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
	}
	tpl := loadTemplate(t)
	for name, r := range tpl.Resources {
		if !taggable[r.Type] {
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
	for _, m := range regexp.MustCompile(`OUT ([A-Za-z]+)`).FindAllStringSubmatch(string(readme), -1) {
		used[m[1]] = true
		if _, ok := tpl.Outputs[m[1]]; !ok {
			t.Errorf("docs/operations.md reads output %s, which the template does not have", m[1])
		}
	}
	for _, need := range []string{"WorkQueueUrl", "LedgerUrl", "DeadLetterQueueUrl", "ClusterName", "ScaleEcs", "PlannerTaskDefinition",
		"RunTaskNetwork", "CapacityProvider", "WorkerRoleArn", "PlannerRoleArn", "LogGroupName"} {
		if _, ok := tpl.Outputs[need]; !ok {
			t.Errorf("no output %s", need)
		}
		if !used[need] && need != "PlannerRoleArn" && need != "WorkerRoleArn" && need != "LogGroupName" {
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
