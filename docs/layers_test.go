package docs

import (
	"os/exec"
	"strings"
	"testing"
)

// layers is the import order docs/design.md states ("No import points back
// up"): a package imports only packages of later layers.
var layers = [][]string{
	{"cmd/planner", "cmd/worker"},
	{"internal/cutover", "internal/local", "internal/verify", "internal/redrive", "internal/drain"},
	{"internal/job"},
	{"internal/status"},
	{"internal/config", "internal/metrics"},
	{"internal/worker"},
	{"internal/fleet", "internal/follow", "internal/copier", "internal/pace"},
	{"internal/ledger"},
	{"internal/plan"},
	{"internal/listing"},
	{"internal/s3wire", "internal/cli", "internal/queue", "internal/ownership", "deploy"},
}

// TestImportsPointDown: no production package imports one of its own
// layer or above, and every package has its place in the order.
func TestImportsPointDown(t *testing.T) {
	const module = "github.com/s3clone/s3clone/"
	rank := map[string]int{}
	for i, l := range layers {
		for _, p := range l {
			rank[p] = i
		}
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../cmd/...", "../internal/...", "../deploy").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(strings.ReplaceAll(line, module, ""))
		p := fields[0]
		if strings.HasSuffix(p, "test") { // test helpers (internal/cli/clitest)
			continue
		}
		r, ok := rank[p]
		if !ok {
			t.Errorf("%s has no place in the import order: add it to layers here and to docs/design.md", p)
			continue
		}
		for _, q := range fields[1:] {
			if rq, ok := rank[q]; ok && rq <= r && q != p {
				t.Errorf("%s imports %s, of its own layer or above", p, q)
			}
		}
	}
}
