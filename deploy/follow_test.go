package deploy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/internal/follow"
)

// followResources are what the stack makes for planner follow, and only
// with Follow=s3 or eventbridge.
var followResources = []string{"ChangeQueue", "ChangeDeadLetterQueue", "ChangeQueuePolicy", "FollowRule",
	"FollowTaskDefinition", "FollowService", "ChangeDeadLetterAlarm", "OldestChangeAlarm"}

// TestFollowIsOffByDefault: Follow is off unless asked, and then nothing of
// follow's is made: an existing stack updated to this template is
// unchanged. Every resource and output of follow's exists only under
// FollowEnabled (or a condition that implies it).
func TestFollowIsOffByDefault(t *testing.T) {
	tpl := loadTemplate(t)
	p := tpl.Parameters["Follow"].(map[string]any)
	if p["Default"] != "off" || key(p["AllowedValues"]) != `["off","s3","eventbridge"]` {
		t.Errorf("Follow: %s; want off by default, or s3, or eventbridge", key(p))
	}
	for name, want := range map[string]string{
		"FollowEnabled":        `{"Fn::Not":[{"Fn::Equals":[{"Ref":"Follow"},"off"]}]}`,
		"FollowViaS3":          `{"Fn::And":[{"Condition":"FollowEnabled"},{"Fn::Equals":[{"Ref":"Follow"},"s3"]}]}`,
		"FollowViaEventBridge": `{"Fn::And":[{"Condition":"FollowEnabled"},{"Fn::Equals":[{"Ref":"Follow"},"eventbridge"]}]}`,
		"FollowSourceKmsKey":   `{"Fn::And":[{"Condition":"FollowEnabled"},{"Condition":"HasSourceKmsKey"}]}`,
	} {
		if got := key(tpl.Conditions[name]); got != want {
			t.Errorf("condition %s is %s, want %s", name, got, want)
		}
	}
	for name, r := range tpl.Resources {
		follows := slices.Contains(followResources, name)
		if follows != implies(tpl, r.Condition, "FollowEnabled") {
			t.Errorf("%s exists under %q: want FollowEnabled (or a condition implying it) exactly for %v", name, r.Condition, followResources)
		}
	}
	for _, name := range followResources {
		if _, ok := tpl.Resources[name]; !ok {
			t.Errorf("no resource %s", name)
		}
	}
	for _, name := range []string{"ChangeQueueUrl", "ChangeQueueArn", "ChangeDeadLetterQueueUrl", "FollowServiceName", "FollowCommand", "CutoverFollowCommand", "UnsubscribeCommand"} {
		o, _ := tpl.Outputs[name].(map[string]any)
		if o == nil || o["Condition"] != "FollowEnabled" {
			t.Errorf("output %s: %v; want it under FollowEnabled", name, o)
		}
	}
}

// TestChangeQueueKeepsEvents: the change queue keeps events as long as the
// work queue keeps work (4 days: a follow stopped over a weekend and
// started again takes them up), its dead letters a week longer, both
// encrypted by SQS (SSE-SQS: S3 and EventBridge can send to an SSE-KMS
// queue only under a customer-managed key whose policy lets them, see the
// template), and an event that keeps coming back goes to the dead-letter
// queue only after many receives.
func TestChangeQueueKeepsEvents(t *testing.T) {
	tpl := loadTemplate(t)
	prop := func(q, name string) int {
		n, _ := strconv.Atoi(fmt.Sprint(tpl.Resources[q].Properties[name]))
		return n
	}
	work, change, dlq := prop("WorkQueue", "MessageRetentionPeriod"), prop("ChangeQueue", "MessageRetentionPeriod"), prop("ChangeDeadLetterQueue", "MessageRetentionPeriod")
	if change < 4*24*3600 || change != work || dlq < change+7*24*3600 {
		t.Errorf("retention: change queue %ds, its dead letters %ds, work queue %ds; want the work queue's, at least 4 days, and a week more for dead letters", change, dlq, work)
	}
	for _, q := range []string{"ChangeQueue", "ChangeDeadLetterQueue"} {
		props := tpl.Resources[q].Properties
		if props["SqsManagedSseEnabled"] != "true" || props["KmsMasterKeyId"] != nil {
			t.Errorf("%s: SqsManagedSseEnabled %v, KmsMasterKeyId %v; want SSE-SQS", q, props["SqsManagedSseEnabled"], props["KmsMasterKeyId"])
		}
	}
	redrive, _ := tpl.Resources["ChangeQueue"].Properties["RedrivePolicy"].(map[string]any)
	if n, _ := strconv.Atoi(fmt.Sprint(redrive["maxReceiveCount"])); key(redrive["deadLetterTargetArn"]) != `{"Fn::GetAtt":["ChangeDeadLetterQueue","Arn"]}` || n < 10 {
		t.Errorf("the change queue's redrive: %s; want to ChangeDeadLetterQueue after 10 receives or more (each restart of follow may spend one)", key(redrive))
	}
}

// TestChangeQueuePolicy evaluates the change queue's policy for each route:
// with Follow=s3, S3 may send from the source bucket of its owner's account
// alone (S3 user guide, "Granting permissions to publish event notification
// messages to a destination": aws:SourceArn and aws:SourceAccount); with
// Follow=eventbridge, EventBridge may send for FollowRule alone (EventBridge
// user guide, "Using resource-based policies for Amazon EventBridge").
func TestChangeQueuePolicy(t *testing.T) {
	tpl := loadTemplate(t)
	r := tpl.Resources["ChangeQueuePolicy"]
	if key(r.Properties["Queues"]) != `[{"Ref":"ChangeQueue"}]` {
		t.Errorf("ChangeQueuePolicy is on %s", key(r.Properties["Queues"]))
	}
	const queue, rule = "arn:aws:sqs:eu-west-1:111122223333:s3clone-ChangeQueue-X", "arn:aws:events:eu-west-1:111122223333:rule/s3clone-FollowRule-X"
	s3Statement := func(account string) map[string]any {
		return map[string]any{"Sid": "SourceBucketEvents", "Effect": "Allow", "Principal": map[string]any{"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
			"Resource": queue, "Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": "arn:aws:s3:::src"},
				"StringEquals": map[string]any{"aws:SourceAccount": account}}}
	}
	bridgeStatement := map[string]any{"Sid": "SourceBucketEventsViaEventBridge", "Effect": "Allow", "Principal": map[string]any{"Service": "events.amazonaws.com"},
		"Action": "sqs:SendMessage", "Resource": queue, "Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": rule}}}
	for _, c := range []struct {
		via, owner string
		want       []any
	}{
		{"s3", "", []any{s3Statement("111122223333")}},
		{"s3", "444455556666", []any{s3Statement("444455556666")}},
		{"eventbridge", "", []any{bridgeStatement}},
	} {
		e := evaluator{t: t, params: map[string]any{"SourceBucket": "src", "SourceAccountId": c.owner},
			conds: map[string]bool{"FollowViaS3": c.via == "s3", "FollowViaEventBridge": c.via == "eventbridge", "HasSourceAccountId": c.owner != ""},
			attrs: map[string]string{"ChangeQueue.Arn": queue, "FollowRule.Arn": rule}}
		doc, _ := e.eval(r.Properties["PolicyDocument"]).(map[string]any)
		if got, want := key(doc["Statement"]), key(c.want); got != want {
			t.Errorf("Follow=%s, SourceAccountId %q: the change queue lets\n  %s\nwant\n  %s", c.via, c.owner, got, want)
		}
	}
}

// TestFollowRuleTakesWhatFollowTakes: with Follow=eventbridge the rule sends
// the source bucket's events to the change queue, exactly those of S3's
// EventBridge detail types that follow takes as changes (follow.Decode), so
// none it needs is left out and none it ignores is paid for. The detail
// types are the EventBridge events reference's, "Amazon Simple Storage
// Service events".
func TestFollowRuleTakesWhatFollowTakes(t *testing.T) {
	tpl := loadTemplate(t)
	rule := tpl.Resources["FollowRule"]
	pattern, _ := rule.Properties["EventPattern"].(map[string]any)
	if rule.Condition != "FollowViaEventBridge" || rule.Properties["State"] != "ENABLED" || key(pattern["source"]) != `["aws.s3"]` ||
		key(pattern["detail"]) != `{"bucket":{"name":[{"Ref":"SourceBucket"}]}}` || len(pattern) != 3 {
		t.Errorf("FollowRule (under %q) matches %s; want aws.s3's events of SourceBucket", rule.Condition, key(pattern))
	}
	if got := key(rule.Properties["Targets"]); got != `[{"Arn":{"Fn::GetAtt":["ChangeQueue","Arn"]},"Id":"follow-changes"}]` {
		t.Errorf("FollowRule sends to %s, want the change queue", got)
	}
	var want []any
	for _, dt := range []string{"Async Copy Completion", "Object Created", "Object Deleted", "Object Restore Initiated", "Object Restore Completed",
		"Object Restore Expired", "Object Tags Added", "Object Tags Deleted", "Object ACL Updated", "Object Storage Class Changed", "Object Access Tier Changed"} {
		body, _ := json.Marshal(map[string]any{"version": "0", "detail-type": dt, "source": "aws.s3", "time": "2026-12-07T10:00:00Z",
			"detail": map[string]any{"bucket": map[string]any{"name": "src"}, "object": map[string]any{"key": "a/b.txt", "size": 1, "etag": "e"}}})
		changes, _, err := follow.Decode(body)
		if err != nil {
			t.Fatalf("follow.Decode(%s): %v", body, err)
		}
		if len(changes) > 0 {
			want = append(want, dt)
		}
	}
	if got := list(pattern["detail-type"]); !sameStrings(got, want) {
		t.Errorf("FollowRule takes the detail types %s; follow takes %s", key(got), key(want))
	}
}

func sameStrings(a, b []any) bool {
	as, bs := slices.Clone(a), slices.Clone(b)
	cmp := func(x, y any) int { return strings.Compare(fmt.Sprint(x), fmt.Sprint(y)) }
	slices.SortFunc(as, cmp)
	slices.SortFunc(bs, cmp)
	return key(as) == key(bs)
}

// TestFollowService: one follow at a time, always (desired count 1; a
// deployment stops the old task before starting the new one: two followers
// would split the events, and a cutover's mark), on demand (a Spot stop
// would end the run a cutover waits on), as the planner, running exactly
// the FollowCommand output's command.
func TestFollowService(t *testing.T) {
	tpl := loadTemplate(t)
	svc := tpl.Resources["FollowService"].Properties
	deploy, _ := svc["DeploymentConfiguration"].(map[string]any)
	if svc["DesiredCount"] != "1" || deploy["MaximumPercent"] != "100" || deploy["MinimumHealthyPercent"] != "0" {
		t.Errorf("FollowService: desired %v, deployment %s; want 1, never two at once (MaximumPercent 100, MinimumHealthyPercent 0)", svc["DesiredCount"], key(deploy))
	}
	if got := key(svc["CapacityProviderStrategy"]); got != `[{"CapacityProvider":"FARGATE","Weight":"1"}]` || svc["LaunchType"] != nil {
		t.Errorf("FollowService runs on %s; want FARGATE (on demand) alone", got)
	}
	if key(svc["TaskDefinition"]) != `{"Ref":"FollowTaskDefinition"}` || key(svc["Cluster"]) != `{"Ref":"Cluster"}` ||
		key(svc["NetworkConfiguration"]) != key(tpl.Resources["WorkerService"].Properties["NetworkConfiguration"]) {
		t.Errorf("FollowService: %s", key(svc))
	}
	c := container(t, tpl, "FollowTaskDefinition")
	if key(c["Image"]) != `{"Ref":"Image"}` {
		t.Errorf("the follow task runs %s, not the stack's image", key(c["Image"]))
	}
	if stop, _ := strconv.Atoi(fmt.Sprint(c["StopTimeout"])); stop < 30 || stop > 120 {
		t.Errorf("the follow task's StopTimeout is %v: want time to send what it holds and write its record (30 s or more, at most Fargate's 120)", c["StopTimeout"])
	}
	for _, ledger := range []bool{true, false} {
		e := evaluator{t: t,
			params: map[string]any{"SourceBucket": "src", "DestinationBucket": "dst", "LedgerPrefix": "s3clone/", "LedgerBucket": "my-ledger", "Follow": "eventbridge"},
			conds:  map[string]bool{"CreateLedger": ledger},
			attrs: map[string]string{"WorkQueue": "https://sqs.eu-west-1.amazonaws.com/111122223333/work", "ChangeQueue": "https://sqs.eu-west-1.amazonaws.com/111122223333/changes",
				"Ledger": "s3clone-ledger-x"}}
		var words []string
		for _, w := range e.eval(c["Command"]).([]any) {
			words = append(words, w.(string))
		}
		out := e.eval(tpl.Outputs["FollowCommand"].(map[string]any)["Value"]).(string)
		if strings.Join(words, " ") != out {
			t.Errorf("FollowService runs\n  %s\nthe FollowCommand output says\n  %s", strings.Join(words, " "), out)
		}
		for _, want := range []string{"--source s3://src ", "--dest s3://dst ", "--queue-url https://sqs.eu-west-1.amazonaws.com/111122223333/work ",
			"--changes-url https://sqs.eu-west-1.amazonaws.com/111122223333/changes ", "--via eventbridge"} {
			if !strings.Contains(out+" ", want) {
				t.Errorf("FollowCommand %q lacks %q", out, want)
			}
		}
		unsub := e.eval(tpl.Outputs["UnsubscribeCommand"].(map[string]any)["Value"]).(string)
		ledgerURL := e.eval(tpl.Outputs["LedgerUrl"].(map[string]any)["Value"]).(string)
		// --ledger: follow's record says whether follow turned EventBridge on.
		if unsub != "planner follow --unsubscribe --source s3://src --changes-url https://sqs.eu-west-1.amazonaws.com/111122223333/changes --via eventbridge --ledger "+ledgerURL {
			t.Errorf("UnsubscribeCommand is %q", unsub)
		}
		cut := e.eval(tpl.Outputs["CutoverFollowCommand"].(map[string]any)["Value"]).(string)
		if cut != "planner cutover --follow latest --ledger "+ledgerURL || !strings.Contains(out, "--ledger "+ledgerURL+" ") {
			t.Errorf("CutoverFollowCommand %q, FollowCommand %q: want the ledger %s", cut, out, ledgerURL)
		}
	}
}
