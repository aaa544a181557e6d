package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/test/testbed"
)

// TestCloneDiffVerifyOnMoto runs a clone, a diff and a verify on moto, the
// test bed's second S3 and SQS, written from AWS's API models: a fleet
// clones awkward keys (control characters, U+FFFE, non-ASCII, a folder
// marker, which moto copies as S3 does), every header, metadata and tags,
// and an object copied in parts; a diff right after enqueues nothing; after
// the source changes (rewritten, deleted and added keys) and the
// destination gains keys of its own, a diff with --delete makes the two
// equal again, and verify says so. (moto refuses a key with CR LF, and
// versitygw a key ending in "/" with data: each bucket holds what its
// server can.)
func TestCloneDiffVerifyOnMoto(t *testing.T) {
	t.Parallel()
	m := testbed.Get(t).Moto(t)
	srcB, dstB := m.Bucket(t), m.Bucket(t)
	objs := awkwardObjects("data/")
	for i, k := range []string{"ctl\x01key", "tab\tkey", "nonchar\uFFFEkey", "del\x7fkey"} {
		objs = append(objs, testbed.Object{Key: "data/odd/" + k, Body: body(200+i, 50)})
	}
	for i := range 120 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("data/img/%d/%03d.jpg", i%6, i), Body: body(300+i, 64+i), ContentType: "image/jpeg"})
	}
	m.Put(t, srcB, objs)
	work, dlq := m.Queue(t, 5)
	led := ledgerURL(t, m)
	src, dst := "s3://"+srcB+"/data/", "s3://"+dstB+"/data/"

	mustRun(t, m, "planner", "plan", "--source", src, "--dest", dst, "--queue-url", work, "--ledger", led, "--batch-keys", "25")
	ws := workers(t, m, 2, "--queue-url", work, "--ledger", led, "--multipart-threshold", "8MiB", "--part-size", "5MiB")
	sameObjects(t, snapshot(t, m, srcB, "", true), snapshot(t, m, dstB, "", true))
	if st := status(t, m, led); !st.Complete || st.Copied != int64(len(objs)) || st.Failed != 0 {
		t.Fatalf("status %+v\n%s\n%s", st, tail(ws[0].stderr), tail(ws[1].stderr))
	}
	if n, _ := queueDepth(m, dlq); n != 0 {
		t.Fatalf("%d messages dead-lettered", n)
	}
	r := mustRun(t, m, "planner", "plan", "--source", src, "--dest", dst, "--diff", "--dry-run")
	if want := fmt.Sprintf("%d compared, %d matching", len(objs), len(objs)); !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "would enqueue (dry run) 0 objects") {
		t.Fatalf("a diff right after the clone:\n%s", r.stdout)
	}

	// The source moves on; the destination gains keys of its own.
	m.Put(t, srcB, []testbed.Object{{Key: "data/img/0/000.jpg", Body: body(900, 64)}, {Key: "data/new/added.txt", Body: body(901, 10)}})
	deleteKeys(t, m, srcB, "data/img/1/001.jpg", "data/odd/tab\tkey")
	m.Put(t, dstB, []testbed.Object{{Key: "data/extra\x02.txt", Body: body(902, 10)}, {Key: "data/extra/plain.txt", Body: body(903, 10)}})
	r = mustRun(t, m, "planner", "plan", "--source", src, "--dest", dst, "--diff", "--delete", "--dry-run")
	if want := "1 missing, 1 different, 4 extra"; !strings.Contains(r.stdout, want) {
		t.Fatalf("the diff after changes does not say %q:\n%s", want, r.stdout)
	}
	// (run's preflight copies its sample, the rewritten key here, before it lists.)
	r = mustRun(t, m, "planner", "run", "--source", src, "--dest", dst, "--diff", "--delete")
	for _, want := range []string{"1 missing", "4 extra", "deleted     4"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("the diff after changes does not say %q:\n%s", want, r.stdout)
		}
	}
	sameObjects(t, snapshot(t, m, srcB, "", true), snapshot(t, m, dstB, "", true))
	if v, code := verify(t, m, src, dst); code != 0 || v.Matching != int64(len(objs)-1) { // two deleted, one added
		t.Fatalf("verify %+v, exit %d", v, code)
	}
}
