package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/s3clone/s3clone/test/testbed"
)

func queueDepth(env *testbed.Env, url string) (int, error) {
	out, err := env.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		return 0, err
	}
	a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return a + b, nil
}

// TestBadUsageExitsTwo: each mistake gets exit code 2, a message naming
// what to fix, and nothing is sent.
func TestBadUsageExitsTwo(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	src, dst := env.Bucket(t), env.Bucket(t)
	env.Put(t, src, []testbed.Object{{Key: "k", Body: []byte("x")}})
	work, _ := env.Queue(t, 0)
	S, D := "s3://"+src, "s3://"+dst
	L := ledgerURL(t, env)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"planner", nil, "no command"},
		{"planner", []string{"copy"}, "unknown command"},
		{"planner", []string{"plan", "--dest", D, "--queue-url", work}, "--source is required"},
		{"planner", []string{"plan", "--source", "bucket/x", "--dest", D, "--queue-url", work}, "not an S3 URL"},
		{"planner", []string{"plan", "--source", "s3://Bad_Bucket", "--dest", D, "--queue-url", work}, "lowercase"},
		{"planner", []string{"plan", "--source", S, "--dest", S, "--queue-url", work}, "both"},
		{"planner", []string{"plan", "--source", S, "--dest", S + "/backup/", "--queue-url", work}, "inside source"},
		{"planner", []string{"plan", "--source", S, "--dest", D}, "--queue-url is required"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", "not-a-url"}, "not a queue URL"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work + "-missing"}, "no such queue"},
		{"planner", []string{"plan", "--source", "s3://no-such-bucket-here", "--dest", D, "--queue-url", work}, "does not exist"},
		{"planner", []string{"plan", "--source", S, "--dest", "s3://no-such-bucket-here", "--queue-url", work}, "does not exist"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--listers", "0"}, "--listers"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "extra"}, "unexpected argument"},
		{"planner", []string{"run", "--source", S, "--dest", D, "--concurrency", "-3"}, "--concurrency"},
		{"planner", []string{"run", "--source", S, "--dest", D, "--part-size", "1MiB"}, "--part-size"},
		{"planner", []string{"run", "--source", S, "--dest", D, "--multipart-threshold", "6GiB"}, "--multipart-threshold"},
		{"planner", []string{"run", "--source", S, "--dest", D, "--storage-class", "CHEAP"}, "--storage-class"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--acl", "everyone"}, "--acl"},
		{"planner", []string{"plan", "--source", "s3://photos--usw2-az1--x-s3", "--dest", D, "--queue-url", work}, "directory bucket"},
		{"planner", []string{"verify", "--source", S, "--dest", "s3://clone--use1-az4--x-s3/x/"}, "directory bucket"},
		{"planner", []string{"status"}, "--ledger is required"},
		{"planner", []string{"status", "--ledger", "s3://no-such-ledger-bucket/s3clone/"}, "does not exist"},
		{"planner", []string{"status", "--ledger", L, "--run-id", "no/such"}, "--run-id"},
		{"planner", []string{"status", "--ledger", L, "--out", "recon.jsonl"}, "--out goes with --failures"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--ledger", "s3://no-such-ledger-bucket/s3clone/"}, "does not exist"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--ledger", S + "/ledger/"}, "overlaps --source"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--ledger", "ledger-bucket/x"}, "--ledger"},
		{"worker", []string{"--queue-url", work, "--ledger", "s3://no-such-ledger-bucket/s3clone/"}, "does not exist"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--delete"}, "--delete needs --diff"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--diff", "--from-file", "x.jsonl"}, "use one"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--from-file", "/no/such/file.jsonl"}, "--from-file"},
		{"planner", []string{"verify", "--source", S, "--dest", D, "--out", "/no/such/dir/recon.jsonl"}, "--out"},
		{"planner", []string{"verify", "--source", S}, "--dest is required"},
		{"planner", []string{"status", "--ledger", L, "--deadline", "-5m"}, "--deadline"},
		{"planner", []string{"status", "--ledger", L, "--scale-ecs", "c/s"}, "--scale-ecs needs --deadline"},
		{"planner", []string{"status", "--ledger", L, "--deadline", "5m", "--scale-ecs", "workers"}, "is not CLUSTER/SERVICE"},
		{"planner", []string{"status", "--ledger", L, "--deadline", "5m", "--scale-ecs", "c/s", "--min-workers", "9", "--max-workers", "3"}, "--min-workers 9 --max-workers 3"},
		{"planner", []string{"status", "--ledger", L, "--watch", "10ms"}, "--watch 10ms"},
		{"worker", []string{"--queue-url", work, "--metrics-addr", "9464"}, "--metrics-addr"},
		{"planner", []string{"redrive", "--queue-url", work}, "--dlq-url is required"},
		{"planner", []string{"redrive", "--dlq-url", work, "--queue-url", work}, "the same queue"},
		{"worker", nil, "--queue-url is required"},
		{"worker", []string{"--queue-url", work, "--idle-exit", "soon"}, "idle-exit"},
		{"worker", []string{"--queue-url", work, "--visibility-timeout", "1s"}, "--visibility-timeout"},
		{"worker", []string{"--queue-url", work + "-missing"}, "no such queue"},
		{"worker", []string{"--queue-url", work, "--log-level", "loud"}, "--log-level"},
	}
	junk := filepath.Join(t.TempDir(), "junk.json")
	other := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(junk, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(`{"v":1,"run":"r","src":{"bucket":"elsewhere"},"dst":{"bucket":"b"},"queue":"q","shards":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	future := filepath.Join(t.TempDir(), "future.json")
	if err := os.WriteFile(future, []byte(`{"v":9,"run":"r"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, []struct {
		name string
		args []string
		want string
	}{
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--diff", "--checkpoint", "cp.json"}, "--checkpoint goes with a full plan"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--dry-run", "--checkpoint", "cp.json"}, "--checkpoint with --dry-run"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--checkpoint", "/no/such/dir/cp.json"}, "directory does not exist"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--checkpoint", "ledger:../runs/x"}, "name the checkpoint with letters"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--checkpoint", junk}, "not an s3clone checkpoint"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--checkpoint", other}, "not this one"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--checkpoint", future}, "checkpoint version 9"},
		{"worker", []string{"--queue-url", work, "--concurrency", "0"}, "--concurrency"},
	}...)

	// Wrong credentials and an unreachable endpoint are configuration too.
	dead := "http://127.0.0.1:1"
	cases = append(cases, []struct {
		name string
		args []string
		want string
	}{
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--s3-endpoint", dead}, "cannot reach S3"},
		{"planner", []string{"plan", "--source", S, "--dest", D, "--queue-url", work, "--sqs-endpoint", dead}, "cannot reach SQS"},
		{"worker", []string{"--queue-url", work, "--sqs-endpoint", dead}, "cannot reach SQS"},
		{"planner", []string{"verify", "--source", S, "--dest", D, "--s3-endpoint", "localhost:9000"}, "not an endpoint URL"},
	}...)
	for i, c := range cases {
		// Every plan and worker names a ledger, unless the case is about it.
		if (c.name == "worker" || len(c.args) > 0 && c.args[0] == "plan") && !slices.Contains(c.args, "--ledger") {
			cases[i].args = append(c.args, "--ledger", L)
		}
	}
	cases = append(cases, struct {
		name string
		args []string
		want string
	}{"worker", []string{"--queue-url", work}, "--ledger is required"})
	for _, c := range cases {
		r := run(t, env, c.name, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want exit 2 mentioning %q", c.name, strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	r := runAs(t, env, "nobody", "wrong-secret", "planner", "plan", "--source", S, "--dest", D, "--queue-url", work, "--ledger", L)
	if r.code != 2 || !strings.Contains(r.stderr, "check $AWS_ACCESS_KEY_ID") {
		t.Errorf("wrong credentials: exit %d, %s", r.code, r.stderr)
	}
	if n, err := queueDepth(env, work); err != nil || n != 0 {
		t.Fatalf("bad invocations left %d messages (%v)", n, err)
	}
	if n := len(env.Keys(t, dst, "")); n != 0 {
		t.Fatalf("bad invocations wrote %d objects", n)
	}
	ledgerBucket, _, _ := strings.Cut(strings.TrimPrefix(L, "s3://"), "/")
	if keys := env.Keys(t, ledgerBucket, ""); len(keys) != 0 {
		t.Fatalf("bad invocations wrote %d ledger objects: %v", len(keys), keys)
	}
}
