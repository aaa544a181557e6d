package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/internal/testbed"
)

// TestKeysXMLCannotCarry clones keys with characters an XML 1.0 answer
// cannot carry (a control character) or changes (a carriage return comes
// back as a line feed), and DEL, with a fleet and in one process: listings
// ask S3 to URL-encode names, so every key is copied to exactly its name.
func TestKeysXMLCannotCarry(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	srcB := env.Bucket(t)
	var objs []testbed.Object
	for i, k := range []string{"ctl\x01key.jpg", "cr\rkey.jpg", "del\x7fkey.jpg", "tab\tkey", "lf\nkey", "mix/\x1f\x02/a b+c%d.jpg", "plain.jpg"} {
		objs = append(objs, testbed.Object{Key: "odd/" + k, Body: body(i, 100)})
	}
	env.Put(t, srcB, objs)
	want := snapshot(t, env, srcB, "", false)
	if len(want) != len(objs) {
		t.Fatalf("the reference listing found %d of %d keys", len(want), len(objs))
	}
	for _, mode := range []string{"fleet", "run"} {
		t.Run(mode, func(t *testing.T) {
			dstB := env.Bucket(t)
			src, dst := "s3://"+srcB, "s3://"+dstB
			if mode == "run" {
				mustRun(t, env, "planner", "run", "--source", src, "--dest", dst)
			} else {
				work, _ := env.Queue(t, 0)
				led := ledgerURL(t, env)
				mustRun(t, env, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led)
				workers(t, env, 1, "--queue-url", work, "--ledger", led)
				if st := status(t, env, led); !st.Complete || st.Copied != int64(len(objs)) || st.Skipped != 0 || st.Failed != 0 {
					t.Fatalf("status %+v", st)
				}
			}
			sameObjects(t, want, snapshot(t, env, dstB, "", false))
			if v, code := verify(t, env, src, dst); code != 0 || v.Matching != int64(len(objs)) {
				t.Fatalf("verify %+v, exit %d", v, code)
			}
			r := mustRun(t, env, "planner", "run", "--source", src, "--dest", dst, "--diff")
			if want := fmt.Sprintf("%d compared, %d matching", len(objs), len(objs)); !strings.Contains(r.stdout, want) {
				t.Fatalf("a diff right after:\n%s", r.stdout)
			}
		})
	}
}
