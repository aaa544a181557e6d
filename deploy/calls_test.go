package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// clientOps are the API operations of each SDK client: its exported
// methods, less the few that are not calls to AWS.
func clientOps() map[string]map[string]bool {
	ops := map[string]map[string]bool{}
	for service, client := range map[string]any{
		"s3": &s3.Client{}, "sqs": &sqs.Client{}, "ecs": &ecs.Client{},
		"application-autoscaling": &applicationautoscaling.Client{}, "logs": &cloudwatchlogs.Client{}, "cloudformation": &cloudformation.Client{},
	} {
		t := reflect.TypeOf(client)
		ops[service] = map[string]bool{}
		for i := range t.NumMethod() {
			if name := t.Method(i).Name; name != "Options" {
				ops[service][name] = true
			}
		}
	}
	return ops
}

// codeCalls finds every call to an S3, SQS or ECS operation in the
// project's non-test Go code outside the testbed: a method call named like
// an operation of the client package, or a paginator or waiter built from
// that package (s3.NewListObjectsV2Paginator calls ListObjectsV2). It reports
// "service Op" -> the first place seen.
func codeCalls(t *testing.T, ops map[string]map[string]bool) map[string]string {
	t.Helper()
	found := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range []string{"../cmd", "../internal"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testbed" {
				return filepath.SkipDir // test machinery, not shipped
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				name := sel.Sel.Name
				if pkg, ok := sel.X.(*ast.Ident); ok && ops[pkg.Name] != nil {
					// s3.NewXPaginator / sqs.NewXWaiter style helpers.
					for _, affix := range []string{"Paginator", "Waiter"} {
						if op, ok := strings.CutSuffix(strings.TrimPrefix(name, "New"), affix); ok && strings.HasPrefix(name, "New") && ops[pkg.Name][op] {
							record(found, pkg.Name+" "+op, fset.Position(call.Pos()).String())
						}
					}
					return true
				}
				for service, names := range ops {
					if names[name] {
						record(found, service+" "+name, fset.Position(call.Pos()).String())
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found
}

func record(found map[string]string, call, where string) {
	if _, ok := found[call]; !ok {
		found[call] = where
	}
}

// TestCallsCoverTheCode holds the permission list to the code: every AWS
// operation the code calls is listed (else a role in the template would
// lack it and the call would be denied on AWS), and every listed operation
// is still called (else a role grants more than it needs).
func TestCallsCoverTheCode(t *testing.T) {
	ops := clientOps()
	inCode := codeCalls(t, ops)
	listed := map[string]bool{}
	for _, c := range Calls {
		if !ops[c.Service][c.Op] {
			t.Errorf("Calls lists %s %s, which is not an operation of the %s client", c.Service, c.Op, c.Service)
		}
		listed[c.Service+" "+c.Op] = true
	}
	for call, where := range inCode {
		service, op, _ := strings.Cut(call, " ")
		// An operation name shared by two clients is matched to both; it
		// needs listing only for a client the code uses it with.
		if !listed[call] && !sharedName(ops, service, op, listed) {
			t.Errorf("%s calls %s, which deploy.Calls does not list: add it with the IAM actions it needs", where, call)
		}
	}
	for call := range listed {
		if _, ok := inCode[call]; !ok {
			t.Errorf("deploy.Calls lists %s, which no code calls any more: remove it so no role grants it", call)
		}
	}
	if len(inCode) < 10 {
		t.Fatalf("found only %d AWS calls in the code (%v): the scan is broken", len(inCode), inCode)
	}
}

func sharedName(ops map[string]map[string]bool, service, op string, listed map[string]bool) bool {
	for other := range ops {
		if other != service && ops[other][op] && listed[other+" "+op] {
			return true
		}
	}
	return false
}

// TestCallsAreWellFormed checks each entry can be turned into a policy.
func TestCallsAreWellFormed(t *testing.T) {
	for _, c := range Calls {
		if !slices.Contains(Roles, c.Role) {
			t.Errorf("%s %s: unknown role %q", c.Service, c.Op, c.Role)
		}
		if len(c.Actions) == 0 || len(c.On) == 0 || c.Why == "" {
			t.Errorf("%s %s: needs actions, resources and a reason", c.Service, c.Op)
		}
		for _, a := range c.Actions {
			// An S3 call on an SSE-KMS object needs the key's KMS actions too.
			kms := c.Service == "s3" && strings.HasPrefix(a, "kms:") && c.When != ""
			// RunTask passes the task's roles to ECS.
			passRole := c.Service == "ecs" && c.Op == "RunTask" && a == "iam:PassRole"
			if !strings.HasPrefix(a, c.Service+":") && !kms && !passRole {
				t.Errorf("%s %s: action %s is not an %s action", c.Service, c.Op, a, c.Service)
			}
		}
	}
	for _, role := range Roles {
		g := Grants(role)
		if !slices.IsSortedFunc(g, compareGrants) || len(g) == 0 {
			t.Errorf("Grants(%s) = %v: want a sorted, non-empty list", role, g)
		}
	}
}

// TestReadmeListsThePermissions keeps the IAM table in docs/operations.md
// ("IAM permissions") generated from Calls.
func TestReadmeListsThePermissions(t *testing.T) {
	readme, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- permissions: generated from deploy.Calls; go test ./deploy prints it when it drifts -->\n", "<!-- end permissions -->"
	_, rest, ok1 := strings.Cut(string(readme), begin)
	got, _, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatalf("docs/operations.md has no %q ... %q section", strings.TrimSpace(begin), end)
	}
	if want := Table(); got != want {
		t.Errorf("docs/operations.md's permission table is not deploy.Table(); put this between the markers:\n%s", want)
	}
}
