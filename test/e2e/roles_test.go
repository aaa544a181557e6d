package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/deploy"
	"github.com/s3clone/s3clone/test/testbed"
)

// TestRolesFromTheTemplateSuffice runs a whole clone, with a multipart
// object and tags, then a --diff --delete re-run and verify, with the
// planner and the worker each as a versitygw user whose S3 rights are
// exactly its role's grants in deploy.Calls (the list the CloudFormation
// roles are held to), as bucket policies: if a role lacked a permission
// the code needs, a step would be refused here. (local-aws-sqs has no
// access control, so the SQS half of the roles is held to the code by the
// static scan in deploy only.)
func TestRolesFromTheTemplateSuffice(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB, dstB := env.Bucket(t), env.Bucket(t)
	objs := acceptanceObjects()
	for i := range objs {
		if i%50 == 0 {
			objs[i].Tagging = "team=media&keep=yes"
		}
	}
	objs = append(objs, testbed.Object{Key: "big/blob.bin", Body: bytes.Repeat([]byte("0123456789abcdef"), 6<<20/16), Tagging: "size=big"})
	env.Put(t, srcB, objs)
	work, _ := env.Queue(t, 0)
	led := ledgerURL(t, env)

	users := map[deploy.Role]string{deploy.Planner: testbed.Name("planner"), deploy.Worker: testbed.Name("worker")}
	for _, u := range users {
		env.User(t, u, u+"-secret")
	}
	env.SetPolicy(t, srcB, rolePolicy(t, users, map[deploy.Resource]string{
		deploy.SourceBucket: "arn:aws:s3:::" + srcB, deploy.SourceObjects: "arn:aws:s3:::" + srcB + "/*"}))
	// The stack deployed with AllowDelete=true, as plan --diff --delete needs.
	env.SetPolicy(t, dstB, rolePolicy(t, users, map[deploy.Resource]string{
		deploy.DestBucket: "arn:aws:s3:::" + dstB, deploy.DestObjects: "arn:aws:s3:::" + dstB + "/*"}, "AllowDelete"))
	ledgerB := bucketOf(led)
	ledger := "arn:aws:s3:::" + ledgerB + "/s3clone/"
	env.SetPolicy(t, ledgerB, rolePolicy(t, users, map[deploy.Resource]string{
		deploy.LedgerBucket: "arn:aws:s3:::" + ledgerB, deploy.LedgerObjects: ledger + "*",
		deploy.LedgerRuns: ledger + "runs/*/run.json", deploy.LedgerSent: ledger + "runs/*/sent/*",
		deploy.LedgerEntries: ledger + "runs/*/done/*", deploy.LedgerWorkers: ledger + "workers/*",
		deploy.LedgerPace: ledger + "pace/*"}))
	as := func(role deploy.Role, name string, args ...string) result {
		t.Helper()
		u := users[role]
		r := runAs(t, env, u, u+"-secret", name, args...)
		if r.code != 0 {
			t.Fatalf("%s %v as the %s role: exit %d\n%s\n%s", name, args, role, r.code, r.stdout, tail(r.stderr))
		}
		return r
	}
	src, dst := "s3://"+srcB, "s3://"+dstB
	workerArgs := []string{"--queue-url", work, "--ledger", led, "--idle-exit", "3s",
		"--multipart-threshold", "5MiB", "--part-size", "5MiB"}

	as(deploy.Planner, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led)
	as(deploy.Worker, "worker", workerArgs...)
	var st statusJSON
	if err := json.Unmarshal([]byte(as(deploy.Planner, "planner", "status", "--ledger", led, "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Complete || st.Copied != 401 || st.Failed != 0 {
		t.Fatalf("status %+v", st)
	}
	// Status only reads: a user with no rights but reading the ledger sees
	// the same run.
	reader := testbed.Name("reader")
	env.User(t, reader, reader+"-secret")
	readOnly := rolePolicy(t, map[deploy.Role]string{deploy.Planner: reader}, map[deploy.Resource]string{
		deploy.LedgerBucket: "arn:aws:s3:::" + ledgerB, deploy.LedgerObjects: ledger + "*"})
	env.SetPolicy(t, ledgerB, mergePolicies(t, env, ledgerB, readOnly))
	r := runAs(t, env, reader, reader+"-secret", "planner", "status", "--ledger", led, "--json")
	var again statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &again); r.code != 0 || err != nil || again.Copied != st.Copied || !again.Complete {
		t.Fatalf("status as a reader: exit %d %v\n%s\n%s", r.code, err, r.stdout, tail(r.stderr))
	}
	as(deploy.Planner, "planner", "verify", "--source", src, "--dest", dst)

	// The source changes; a diff with deletes brings the clone back in line.
	env.Put(t, srcB, []testbed.Object{{Key: "sub/new.jpg", Body: []byte("new")}, {Key: "sub/file-001.jpg", Body: []byte("changed")}})
	deleteKeys(t, env, srcB, "file-399.jpg")
	as(deploy.Planner, "planner", "plan", "--diff", "--delete", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led)
	as(deploy.Worker, "worker", workerArgs...)
	as(deploy.Planner, "planner", "verify", "--source", src, "--dest", dst)
	if _, ok := env.Keys(t, dstB, "")["file-399.jpg"]; ok {
		t.Fatal("file-399.jpg was deleted from the source but not from the clone")
	}
	if o, ok := env.Keys(t, dstB, "")["big/blob.bin"]; !ok || *o.Size != 6<<20 {
		t.Fatalf("the multipart object: %+v", o)
	}
}

// rolePolicy is a bucket policy granting each role's user exactly its
// grants on the resources given, each named by its ARN, those the
// template grants only under a condition when that condition is in on;
// listing the ledger's bucket is allowed only under its prefix, as the
// template's roles allow it.
func rolePolicy(t *testing.T, users map[deploy.Role]string, arns map[deploy.Resource]string, on ...string) string {
	t.Helper()
	type statement struct {
		Effect    string
		Principal map[string][]string
		Action    []string
		Resource  string
		Condition map[string]map[string]string `json:",omitempty"`
	}
	var sts []statement
	for role, user := range users {
		for kind, arn := range arns {
			var actions []string
			for _, g := range deploy.Grants(role) {
				if annotationActions[g.Action] {
					continue // versitygw refuses a policy naming them; Manners serves annotations without checking rights
				}
				if g.On == kind && (g.When == "" || slices.Contains(on, g.When)) {
					actions = append(actions, g.Action)
				}
			}
			if len(actions) == 0 {
				continue
			}
			st := statement{Effect: "Allow", Principal: map[string][]string{"AWS": {user}}, Action: actions, Resource: arn}
			if kind == deploy.LedgerBucket {
				st.Condition = map[string]map[string]string{"StringLike": {"s3:prefix": "s3clone/*"}}
			}
			sts = append(sts, st)
		}
	}
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": sts})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// annotationActions are the S3 object annotation actions, which versitygw
// v1.8.0 does not know (a bucket policy naming one is refused as invalid).
var annotationActions = map[string]bool{"s3:GetObjectAnnotation": true, "s3:PutObjectAnnotation": true, "s3:ListObjectAnnotations": true}

// mergePolicies is bucket's current policy with the statements of more
// added.
func mergePolicies(t *testing.T, env *testbed.Env, bucket, more string) string {
	t.Helper()
	out, err := env.S3.GetBucketPolicy(context.Background(), &s3.GetBucketPolicyInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var cur, add struct {
		Version   string
		Statement []json.RawMessage
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.Policy)), &cur); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(more), &add); err != nil {
		t.Fatal(err)
	}
	cur.Statement = append(cur.Statement, add.Statement...)
	b, err := json.Marshal(cur)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
