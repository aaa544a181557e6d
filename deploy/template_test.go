package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/s3clone/s3clone/test/testbed"
	"github.com/s3clone/s3clone/test/testbed/cfn"
)

// template is s3clone.yaml as plain data, short-form intrinsics (!Ref X)
// turned into their long form ({"Ref": "X"}), as CloudFormation reads it.
type template struct {
	Parameters map[string]any
	Conditions map[string]any
	Resources  map[string]resource
	Outputs    map[string]any
}

type resource struct {
	Type       string
	Condition  string
	DependsOn  any
	Properties map[string]any
}

func loadTemplate(t *testing.T) template {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(Template, &doc); err != nil {
		t.Fatalf("s3clone.yaml: %v", err)
	}
	raw, ok := plain(t, doc.Content[0]).(map[string]any)
	if !ok {
		t.Fatal("s3clone.yaml: not a mapping")
	}
	var tpl template
	tpl.Parameters, _ = raw["Parameters"].(map[string]any)
	tpl.Conditions, _ = raw["Conditions"].(map[string]any)
	tpl.Outputs, _ = raw["Outputs"].(map[string]any)
	tpl.Resources = map[string]resource{}
	resources, _ := raw["Resources"].(map[string]any)
	for name, r := range resources {
		m, _ := r.(map[string]any)
		typ, _ := m["Type"].(string)
		cond, _ := m["Condition"].(string)
		props, _ := m["Properties"].(map[string]any)
		tpl.Resources[name] = resource{Type: typ, Condition: cond, DependsOn: m["DependsOn"], Properties: props}
	}
	if len(tpl.Resources) == 0 || len(tpl.Parameters) == 0 {
		t.Fatal("s3clone.yaml: no resources or parameters")
	}
	return tpl
}

// plain converts a YAML node to maps, slices and strings, with the short
// forms of intrinsic functions in their long forms.
func plain(t *testing.T, n *yaml.Node) any {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = plain(t, n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			s = append(s, plain(t, c))
		}
		v = s
	case yaml.AliasNode:
		t.Fatalf("line %d: YAML aliases are not CloudFormation", n.Line)
	default:
		v = n.Value
	}
	tag, ok := strings.CutPrefix(n.Tag, "!")
	if !ok || strings.HasPrefix(tag, "!") {
		return v // no tag, or a YAML core tag (!!str)
	}
	if tag == "Ref" || tag == "Condition" {
		return map[string]any{tag: v}
	}
	if s, ok := v.(string); ok && tag == "GetAtt" {
		res, attr, _ := strings.Cut(s, ".")
		v = []any{res, attr}
	}
	return map[string]any{"Fn::" + tag: v}
}

var pseudoParameters = map[string]bool{
	"AWS::AccountId": true, "AWS::NoValue": true, "AWS::Partition": true, "AWS::Region": true,
	"AWS::StackName": true, "AWS::StackId": true, "AWS::URLSuffix": true,
}

// attributes are the Fn::GetAtt attributes the template may use, by type
// (from the CloudFormation resource reference).
var attributes = map[string][]string{
	"AWS::SQS::Queue":     {"Arn", "QueueName", "QueueUrl"},
	"AWS::IAM::Role":      {"Arn", "RoleId"},
	"AWS::ECS::Service":   {"Name", "ServiceArn"},
	"AWS::ECS::Cluster":   {"Arn"},
	"AWS::Logs::LogGroup": {"Arn"},
	"AWS::S3::Bucket":     {"Arn", "DomainName"},
	"AWS::Events::Rule":   {"Arn"},
}

// walk calls fn on every map in v, with the path to it.
func walk(v any, path string, fn func(path string, m map[string]any)) {
	walkGuarded(v, path, "", func(path, _ string, m map[string]any) { fn(path, m) })
}

// walkGuarded is walk telling fn, too, the condition under which the map
// is used: inside the first branch of an Fn::If on a condition, that one.
func walkGuarded(v any, path, guard string, fn func(path, guard string, m map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		fn(path, guard, x)
		for k, c := range x {
			if cond, ok := c.([]any); k == "Fn::If" && ok && len(cond) == 3 {
				name, _ := cond[0].(string)
				walkGuarded(cond[1], path+".Fn::If[1]", name, fn)
				walkGuarded(cond[2], path+".Fn::If[2]", guard, fn)
				continue
			}
			walkGuarded(c, path+"."+k, guard, fn)
		}
	case []any:
		for i, c := range x {
			walkGuarded(c, fmt.Sprintf("%s[%d]", path, i), guard, fn)
		}
	}
}

// subVars returns the ${Name} and ${Res.Attr} variables of a Fn::Sub string.
func subVars(s string) []string {
	var out []string
	for {
		_, rest, ok := strings.Cut(s, "${")
		if !ok {
			return out
		}
		name, tail, ok := strings.Cut(rest, "}")
		if !ok {
			return out
		}
		if !strings.HasPrefix(name, "!") {
			out = append(out, name)
		}
		s = tail
	}
}

// TestTemplateReferencesResolve checks every Ref, Fn::GetAtt, Fn::Sub
// variable and condition names something the template defines, that every
// parameter and condition is used, and that nothing unconditional depends on
// a resource that exists only under a condition.
func TestTemplateReferencesResolve(t *testing.T) {
	tpl := loadTemplate(t)
	usedParams, usedConds := map[string]bool{}, map[string]bool{}
	check := func(owner, path, name string) (target string) {
		if pseudoParameters[name] {
			return ""
		}
		if _, ok := tpl.Parameters[name]; ok {
			usedParams[name] = true
			return ""
		}
		if _, ok := tpl.Resources[name]; ok {
			return name
		}
		t.Errorf("%s: %s names %q: no parameter, resource or pseudo parameter has that name", owner, path, name)
		return ""
	}
	getAtt := func(owner, path, res, attr string) string {
		r, ok := tpl.Resources[res]
		if !ok {
			t.Errorf("%s: %s: Fn::GetAtt of %q: no such resource", owner, path, res)
			return ""
		}
		if !slices.Contains(attributes[r.Type], attr) {
			t.Errorf("%s: %s: Fn::GetAtt %s.%s: %s has no attribute %q the template may use (known: %v)", owner, path, res, attr, r.Type, attr, attributes[r.Type])
		}
		return res
	}
	// refsOf returns what v refers to, each with the condition guarding
	// the reference (see walkGuarded).
	type ref struct{ target, guard string }
	refsOf := func(owner string, v any) []ref {
		var targets []ref
		walkGuarded(v, owner, "", func(path, guard string, m map[string]any) {
			if name, ok := m["Ref"].(string); ok {
				targets = append(targets, ref{check(owner, path, name), guard})
			}
			if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
				res, _ := ga[0].(string)
				attr, _ := ga[1].(string)
				targets = append(targets, ref{getAtt(owner, path, res, attr), guard})
			}
			if sub, ok := m["Fn::Sub"]; ok {
				s, _ := sub.(string)
				var vars map[string]any
				if list, ok := sub.([]any); ok && len(list) > 0 {
					s, _ = list[0].(string)
					if len(list) > 1 {
						vars, _ = list[1].(map[string]any)
					}
				}
				for _, v := range subVars(s) {
					if _, ok := vars[v]; ok {
						continue // a variable of the Fn::Sub's own map
					}
					if res, attr, ok := strings.Cut(v, "."); ok && !pseudoParameters[v] {
						targets = append(targets, ref{getAtt(owner, path, res, attr), guard})
					} else {
						targets = append(targets, ref{check(owner, path, v), guard})
					}
				}
			}
			if cond, ok := m["Fn::If"].([]any); ok && len(cond) == 3 {
				name, _ := cond[0].(string)
				usedConds[name] = true
				if _, ok := tpl.Conditions[name]; !ok {
					t.Errorf("%s: %s: Fn::If on undefined condition %q", owner, path, name)
				}
			}
			if name, ok := m["Condition"].(string); ok {
				usedConds[name] = true
			}
		})
		return targets
	}
	for name, c := range tpl.Conditions {
		refsOf("Conditions."+name, c)
	}
	for name, r := range tpl.Resources {
		if r.Condition != "" {
			usedConds[r.Condition] = true
			if _, ok := tpl.Conditions[r.Condition]; !ok {
				t.Errorf("%s: condition %q is not defined", name, r.Condition)
			}
		}
		for _, rf := range refsOf("Resources."+name, r.Properties) {
			if rf.target == "" {
				continue
			}
			if rf.target == name {
				t.Errorf("%s refers to itself", name)
			}
			if tc := tpl.Resources[rf.target].Condition; tc != "" && !implies(tpl, r.Condition, tc) && !implies(tpl, rf.guard, tc) {
				t.Errorf("%s (condition %q) refers to %s, which exists only when %s", name, r.Condition, rf.target, tc)
			}
		}
	}
	for name, o := range tpl.Outputs {
		own, _ := o.(map[string]any)["Condition"].(string) // an output under a condition is guarded by it
		for _, rf := range refsOf("Outputs."+name, o) {
			if tc := tpl.Resources[rf.target].Condition; rf.target != "" && tc != "" && !implies(tpl, rf.guard, tc) && !implies(tpl, own, tc) {
				t.Errorf("output %s refers to %s, which exists only under a condition", name, rf.target)
			}
		}
	}
	for name := range tpl.Parameters {
		if !usedParams[name] {
			t.Errorf("parameter %s is never used", name)
		}
	}
	for name := range tpl.Conditions {
		if !usedConds[name] {
			t.Errorf("condition %s is never used", name)
		}
	}
}

// implies reports whether condition a holds only when b does: a is b, or
// a is an Fn::And of which one part is (or implies) b. ("" holds always.)
func implies(tpl template, a, b string) bool {
	if a == b {
		return true
	}
	def, _ := tpl.Conditions[a].(map[string]any)
	for _, part := range list(def["Fn::And"]) {
		m, _ := part.(map[string]any)
		if name, ok := m["Condition"].(string); ok && implies(tpl, name, b) {
			return true
		}
	}
	return false
}

// resourceKinds maps each way the template names a resource in a policy to
// what it is.
var resourceKinds = map[string]Resource{
	`{"Fn::Sub":"arn:${AWS::Partition}:s3:::${SourceBucket}"}`:                  SourceBucket,
	`{"Fn::Sub":"arn:${AWS::Partition}:s3:::${SourceBucket}/*"}`:                SourceObjects,
	`{"Fn::Sub":"arn:${AWS::Partition}:s3:::${DestinationBucket}"}`:             DestBucket,
	`{"Fn::Sub":"arn:${AWS::Partition}:s3:::${DestinationBucket}/*"}`:           DestObjects,
	`{"Fn::GetAtt":["WorkQueue","Arn"]}`:                                        WorkQueue,
	`{"Fn::GetAtt":["DeadLetterQueue","Arn"]}`:                                  DeadLetterQueue,
	`{"Ref":"WorkerService"}`:                                                   WorkerService,
	`{"Ref":"SourceKmsKeyArn"}`:                                                 SourceKmsKey,
	`{"Ref":"DestinationKmsKeyArn"}`:                                            DestKmsKey,
	ledgerARN(""):                                                               LedgerBucket,
	ledgerARN("/${LedgerPrefix}*"):                                              LedgerObjects,
	ledgerARN("/${LedgerPrefix}runs/*/run.json"):                                LedgerRuns,
	ledgerARN("/${LedgerPrefix}runs/*/sent/*"):                                  LedgerSent,
	ledgerARN("/${LedgerPrefix}runs/*/done/*"):                                  LedgerEntries,
	ledgerARN("/${LedgerPrefix}workers/*"):                                      LedgerWorkers,
	ledgerARN("/${LedgerPrefix}runs/*/results/*"):                               LedgerResults,
	ledgerARN("/${LedgerPrefix}checkpoints/*"):                                  LedgerCheckpoints,
	ledgerARN("/${LedgerPrefix}fleet/*"):                                        LedgerFleetHolds,
	ledgerARN("/${LedgerPrefix}pace/*"):                                         LedgerPace,
	ledgerARN("/${LedgerPrefix}runs/*/follow.json"):                             LedgerFollow,
	ledgerARN("/${LedgerPrefix}runs/*/marks/*"):                                 LedgerMarks,
	`{"Fn::GetAtt":["ChangeQueue","Arn"]}`:                                      ChangeQueue,
	`{"Fn::Sub":"arn:${AWS::Partition}:s3:::${SourceBucket}/.s3clone-marks/*"}`: SourceMarks,
	`{"Ref":"LedgerKmsKeyArn"}`:                                                 LedgerKmsKey,
	`"*"`:                                                                       ScalableTargets,
	`{"Ref":"AWS::StackId"}`:                                                    Stack,
	`{"Fn::Sub":"arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/${AWS::StackName}-planner:*"}`: PlannerTaskDef,
	`{"Fn::GetAtt":["PlannerRole","Arn"]}`:                                                       PlannerRoleRes,
	`{"Fn::GetAtt":["ExecutionRole","Arn"]}`:                                                     ExecutionRole,
	`{"Fn::Sub":"arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${Cluster}/*"}`: ClusterTasks,
	`{"Fn::GetAtt":["LogGroup","Arn"]}`:                                                          LogStreams,
}

// ledgerARN is how the template names an ARN in the ledger's bucket: the
// stack's own Ledger bucket, or the one LedgerBucket names.
func ledgerARN(rest string) string {
	bucket := map[string]any{"Fn::If": []any{"CreateLedger", map[string]any{"Ref": "Ledger"}, map[string]any{"Ref": "LedgerBucket"}}}
	return key(map[string]any{"Fn::Sub": []any{"arn:${AWS::Partition}:s3:::${Bucket}" + rest, map[string]any{"Bucket": bucket}}})
}

// ledgerListCondition is the one condition a policy statement may carry:
// listing the ledger's bucket only under the ledger's prefix.
var ledgerListCondition = key(map[string]any{"StringLike": map[string]any{"s3:prefix": map[string]any{"Fn::Sub": "${LedgerPrefix}*"}}})

// key writes a template value canonically (sorted keys), to compare and
// to look up.
func key(v any) string { return cfn.Canonical(v) }

func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// roleGrants reads a role's inline policies back into grants.
func roleGrants(t *testing.T, tpl template, roleName string) []Grant {
	t.Helper()
	r, ok := tpl.Resources[roleName]
	if !ok || (r.Type != "AWS::IAM::Role" && r.Type != "AWS::IAM::ManagedPolicy") {
		t.Fatalf("no IAM role or managed policy %s in the template", roleName)
	}
	if _, ok := r.Properties["ManagedPolicyArns"]; ok {
		t.Errorf("%s: managed policies grant more than the code calls; use the inline policy only", roleName)
	}
	policies := r.Properties["Policies"]
	if r.Type == "AWS::IAM::ManagedPolicy" {
		policies = map[string]any{"PolicyDocument": r.Properties["PolicyDocument"]}
	}
	var out []Grant
	for _, p := range list(policies) {
		doc, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)
		for _, s := range list(doc["Statement"]) {
			when := r.Condition // a managed policy made only under a condition
			st, _ := s.(map[string]any)
			if cond, ok := st["Fn::If"].([]any); ok && len(cond) == 3 {
				when, _ = cond[0].(string)
				st, _ = cond[1].(map[string]any)
				if key(cond[2]) != `{"Ref":"AWS::NoValue"}` {
					t.Errorf("%s: a conditional statement's other branch must be AWS::NoValue", roleName)
				}
			}
			if st["Effect"] != "Allow" || st["NotAction"] != nil || st["NotResource"] != nil {
				t.Errorf("%s: statement %v: want plain Allow statements", roleName, st["Sid"])
			}
			onLedgerBucket := slices.ContainsFunc(list(st["Resource"]), func(r any) bool { return resourceKinds[key(r)] == LedgerBucket })
			switch {
			case onLedgerBucket && (len(list(st["Resource"])) != 1 || st["Condition"] == nil || key(st["Condition"]) != ledgerListCondition):
				t.Errorf("%s: statement %v lists the ledger's bucket: it must do so alone, on the condition %s", roleName, st["Sid"], ledgerListCondition)
			case !onLedgerBucket && st["Condition"] != nil:
				t.Errorf("%s: statement %v: want plain Allow statements, with no condition", roleName, st["Sid"])
			}
			for _, res := range list(st["Resource"]) {
				kind, ok := resourceKinds[key(res)]
				if !ok {
					t.Errorf("%s: statement %v grants on %s, which is none of the named buckets, queues, ledger records or service", roleName, st["Sid"], key(res))
					continue
				}
				for _, a := range list(st["Action"]) {
					action, _ := a.(string)
					if strings.Contains(action, "*") {
						t.Errorf("%s: wildcard action %s", roleName, action)
					}
					out = append(out, Grant{Action: action, On: kind, When: when})
				}
			}
		}
	}
	slices.SortFunc(out, compareGrants)
	return out
}

// TestRolesGrantExactlyTheCalls holds each task role to deploy.Calls: no
// action missing (the call would be denied), none extra, each on exactly
// the resource the call touches.
func TestRolesGrantExactlyTheCalls(t *testing.T) {
	tpl := loadTemplate(t)
	for roleName, role := range map[string]Role{"WorkerRole": Worker, "PlannerRole": Planner, "OperatorPolicy": Operator} {
		got, want := roleGrants(t, tpl, roleName), Grants(role)
		if role == Operator { // and the policy attached with it for a ledger under a customer-managed key
			got = append(got, roleGrants(t, tpl, "OperatorLedgerKeyPolicy")...)
			slices.SortFunc(got, compareGrants)
		}
		if dup := len(got) - len(slices.Compact(slices.Clone(got))); dup > 0 {
			t.Errorf("%s grants %d actions twice", roleName, dup)
		}
		got = slices.Compact(got)
		for _, g := range want {
			if !slices.Contains(got, g) {
				t.Errorf("%s lacks %s on the %s%s, which %s needs", roleName, g.Action, g.On, whenText(g.When), role)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				t.Errorf("%s grants %s on the %s%s, which no %s call needs (deploy.Calls)", roleName, g.Action, g.On, whenText(g.When), role)
			}
		}
	}
	// planner follow runs as the planner (its grants are the planner's, under FollowEnabled).
	tasks := map[string]string{"WorkerTaskDefinition": "WorkerRole", "PlannerTaskDefinition": "PlannerRole", "FollowTaskDefinition": "PlannerRole"}
	for task, role := range tasks {
		if got := key(tpl.Resources[task].Properties["TaskRoleArn"]); got != key(map[string]any{"Fn::GetAtt": []any{role, "Arn"}}) {
			t.Errorf("%s runs as %s, want %s", task, got, role)
		}
	}
}

func whenText(when string) string {
	if when == "" {
		return ""
	}
	return " (when " + when + ")"
}

// TestTaskEnvironmentIsUnderstood checks every S3CLONE_ variable the task
// definitions set is one the binary reads, and that each command exists.
func TestTaskEnvironmentIsUnderstood(t *testing.T) {
	tpl := loadTemplate(t)
	dir, err := testbed.BuildBinaries(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, task := range []string{"WorkerTaskDefinition", "PlannerTaskDefinition", "FollowTaskDefinition"} {
		defs := list(tpl.Resources[task].Properties["ContainerDefinitions"])
		if len(defs) != 1 {
			t.Fatalf("%s: want one container", task)
		}
		c, _ := defs[0].(map[string]any)
		// The command's words up to its first flag; the flags (whose values
		// are the stack's, not strings here) must be the command's own.
		var args, flags []string
		for _, a := range list(c["Command"]) {
			s, _ := a.(string)
			switch {
			case strings.HasPrefix(s, "--"):
				flags = append(flags, s)
			case len(flags) == 0:
				args = append(args, s)
			}
		}
		if len(args) == 0 || (args[0] != "worker" && args[0] != "planner") {
			t.Fatalf("%s: command %v: want worker or planner (on the image's PATH)", task, args)
		}
		help, _ := exec.Command(filepath.Join(dir, args[0]), append(args[1:], "-h")...).CombinedOutput()
		if !strings.Contains(string(help), "usage:") {
			t.Fatalf("%s: %v -h printed no usage: %s", task, args, help)
		}
		for _, flag := range flags {
			if !strings.Contains(string(help), "\n  "+flag[1:]+" ") {
				t.Errorf("%s runs %v with %s, which it does not take", task, args, flag)
			}
		}
		if task == "PlannerTaskDefinition" {
			// The planner task runs other commands too, by command override
			// (docs/operations.md): their variables count as read.
			for _, cmd := range []string{"status", "verify", "redrive"} {
				more, _ := exec.Command(filepath.Join(dir, "planner"), cmd, "-h").CombinedOutput()
				help = append(help, more...)
			}
		}
		n := 0
		for _, e := range list(c["Environment"]) {
			name, _ := e.(map[string]any)["Name"].(string)
			if !strings.HasPrefix(name, "S3CLONE_") {
				continue
			}
			n++
			if !strings.Contains(string(help), "[$"+name+"]") {
				t.Errorf("%s sets %s, which %v does not read", task, name, args)
			}
		}
		if n+len(flags) < 3 {
			t.Errorf("%s sets only %d S3CLONE_ variables and %d flags", task, n, len(flags))
		}
	}
}

// TestLedgerIsKept: the stack's ledger bucket survives the stack and its
// replacement (it is the runs' history), is private and encrypted, and
// expires nothing unless LedgerExpirationDays asks.
func TestLedgerIsKept(t *testing.T) {
	var doc map[string]any
	if err := yaml.Unmarshal(Template, &doc); err != nil {
		t.Fatal(err)
	}
	raw, _ := doc["Resources"].(map[string]any)["Ledger"].(map[string]any)
	if raw["DeletionPolicy"] != "Retain" || raw["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("Ledger: DeletionPolicy %v, UpdateReplacePolicy %v; want Retain for both", raw["DeletionPolicy"], raw["UpdateReplacePolicy"])
	}
	tpl := loadTemplate(t)
	ledger := tpl.Resources["Ledger"]
	if ledger.Condition != "CreateLedger" {
		t.Errorf("Ledger exists under %q, want CreateLedger (only when no LedgerBucket is given)", ledger.Condition)
	}
	lc, _ := ledger.Properties["LifecycleConfiguration"].(map[string]any)["Fn::If"].([]any)
	if len(lc) != 3 || lc[0] != "ExpireLedger" || key(lc[2]) != `{"Ref":"AWS::NoValue"}` {
		t.Errorf("Ledger's lifecycle rules: %v; want them only under ExpireLedger", key(ledger.Properties["LifecycleConfiguration"]))
	}
	if key(tpl.Conditions["ExpireLedger"]) != key(map[string]any{"Fn::And": []any{map[string]any{"Condition": "CreateLedger"},
		map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "LedgerExpirationDays"}, "0"}}}}}}) {
		t.Errorf("ExpireLedger is %s", key(tpl.Conditions["ExpireLedger"]))
	}
	if p, _ := tpl.Parameters["LedgerExpirationDays"].(map[string]any); p["Default"] != "0" {
		t.Errorf("LedgerExpirationDays defaults to %v, want 0 (keep)", p["Default"])
	}
	block, _ := ledger.Properties["PublicAccessBlockConfiguration"].(map[string]any)
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if block[k] != "true" {
			t.Errorf("Ledger: %s is %v", k, block[k])
		}
	}
	if ledger.Properties["BucketEncryption"] == nil {
		t.Error("Ledger: no default encryption")
	}
}

// TestConditionsMotoCanRead: no condition is named with the !Condition tag,
// which moto's YAML reader turns into an Fn::Condition its parser does not
// know (the Fn::And around it is then false, and deploy-check checks a stack
// AWS would not make); {Condition: NAME} says the same to CloudFormation.
func TestConditionsMotoCanRead(t *testing.T) {
	for i, line := range strings.Split(string(Template), "\n") {
		code, _, _ := strings.Cut(line, "#")
		if strings.Contains(code, "!Condition") {
			t.Errorf("s3clone.yaml:%d: %s: write {Condition: NAME}", i+1, strings.TrimSpace(line))
		}
	}
}
