package listing

import (
	"fmt"
	"os"
	"testing"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/test/testbed"
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

// TestNonASCIIBucketIsSplitOnTheServer: a flat bucket of keys that start
// beyond ASCII, on versitygw, is listed exactly once and spread over
// listers by key ranges whose bounds are non-ASCII (StartAfter and the
// listing both in UTF-8 order, as S3's).
func TestNonASCIIBucketIsSplitOnTheServer(t *testing.T) {
	env := testbed.Get(t)
	bucket := env.Bucket(t)
	var keys []string
	for i := range 1200 {
		keys = append(keys, fmt.Sprintf("%c%c-%04d.jpg", rune(0x5199+i%3), rune(0x4E00+i*37%2000), i))
	}
	env.Seed(t, bucket, len(keys), 0, func(i int) string { return keys[i] }, func(int) int { return 1 })
	l := New(env.S3, bucket, "", Options{Listers: 8, PageSize: 25}, zerolog.Nop())
	checkExactlyOnce(t, keys, "", collectAll(t, l))
	if l.Stats.Splits.Load() < 4 {
		t.Fatalf("%d key-range splits over %d shards: the non-ASCII bucket was listed by one lister", l.Stats.Splits.Load(), l.Stats.Shards.Load())
	}
}
