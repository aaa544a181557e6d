package listing

import (
	"fmt"
	"os"
	"testing"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }

// serverKeys is a key set a posix-backed versitygw can hold: no key is also
// a "directory" of another, and no "//" (versitygw folds it to "/").
func serverKeys() []string {
	var keys []string
	for i := range 1500 {
		keys = append(keys, fmt.Sprintf("flat-%04x", i*7919%65536))
	}
	for i := range 400 {
		keys = append(keys, fmt.Sprintf("users/%05d/avatar.jpg", i))
	}
	for i := range 800 {
		keys = append(keys, fmt.Sprintf("img/%d/%02d/%03d.jpg", 2020+i%4, i%12, i))
	}
	for i := range 100 {
		keys = append(keys,
			fmt.Sprintf("img/%d/index-%d.html", 2020+i%4, i),
			fmt.Sprintf("dir with space/%d+%d%%.txt", i, i),
			fmt.Sprintf("ünï/çødé/%d", i),
			fmt.Sprintf("a!%d", i), fmt.Sprintf("a.%d/x", i),
			fmt.Sprintf("marker-%d/", i),
		)
	}
	return keys
}

// TestListingMatchesTheServer lists a real bucket with every lister count
// and checks the result against one plain sequential listing.
func TestListingMatchesTheServer(t *testing.T) {
	env := testbed.Get(t)
	bucket := env.Bucket(t)
	keys := serverKeys()
	objs := make([]testbed.Object, len(keys))
	for i, k := range keys {
		objs[i] = testbed.Object{Key: k}
		if k[len(k)-1] != '/' {
			objs[i].Body = []byte(k)
		}
	}
	env.Put(t, bucket, objs)
	for _, prefix := range []string{"", "img/", "users/", "a", "ünï/"} {
		want := env.Keys(t, bucket, prefix)
		wantKeys := make([]string, 0, len(want))
		for k := range want {
			wantKeys = append(wantKeys, k)
		}
		for _, opts := range []Options{{Listers: 1}, {Listers: 16, PageSize: 37, WalkBudget: 4}} {
			t.Run(fmt.Sprintf("prefix=%q/listers=%d", prefix, opts.Listers), func(t *testing.T) {
				l := New(env.S3, bucket, prefix, opts, zerolog.Nop())
				seen := collectAll(t, l)
				checkExactlyOnce(t, wantKeys, prefix, seen)
				if len(wantKeys) == 0 {
					t.Fatalf("no keys under %q: the fixture is wrong", prefix)
				}
			})
		}
	}
}
