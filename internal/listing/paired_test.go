package listing

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func collectPairs(t *testing.T, p *Paired) map[string]Pair {
	t.Helper()
	out := make(chan []Pair, 4)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background(), out) }()
	seen := map[string]Pair{}
	for page := range out {
		for _, pr := range page {
			if _, dup := seen[pr.Key]; dup {
				t.Errorf("key %q paired twice", pr.Key)
			}
			seen[pr.Key] = pr
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return seen
}

// TestPairedJoinsEveryKeyOnce joins two prefixes that share some keys and
// not others, with tiny pages and many listers, and checks that every key
// of either side comes out once, paired with its twin when it has one.
func TestPairedJoinsEveryKeyOnce(t *testing.T) {
	t.Parallel()
	for name, keys := range keyShapes() {
		var src, dst []string
		want := map[string][2]bool{}
		for i, k := range keys {
			inSrc, inDst := i%5 != 0, i%7 != 0
			if inSrc {
				src = append(src, "from/"+k)
			}
			if inDst {
				dst = append(dst, "to/x/"+k)
			}
			if inSrc || inDst {
				want[k] = [2]bool{inSrc, inDst}
			}
		}
		for _, opts := range []Options{{Listers: 1, PageSize: 1000}, {Listers: 16, PageSize: 11}, {Listers: 8, PageSize: 13, WalkBudget: 2}} {
			t.Run(fmt.Sprintf("%s/listers=%d/budget=%d", name, opts.Listers, opts.WalkBudget), func(t *testing.T) {
				t.Parallel()
				sf, df := newFake(src), newFake(dst)
				sf.delay, df.delay = 50*time.Microsecond, 50*time.Microsecond
				p := NewPaired(Side{API: sf, Bucket: "a", Prefix: "from/"}, Side{API: df, Bucket: "b", Prefix: "to/x/"}, opts)
				got := collectPairs(t, p)
				for k, w := range want {
					pr, ok := got[k]
					if !ok {
						t.Fatalf("key %q missing from the join", k)
					}
					if (pr.Src != nil) != w[0] || (pr.Dst != nil) != w[1] {
						t.Fatalf("key %q: src %v dst %v, want %v", k, pr.Src != nil, pr.Dst != nil, w)
					}
					if pr.Src != nil && pr.Src.Key != "from/"+k || pr.Dst != nil && pr.Dst.Key != "to/x/"+k {
						t.Fatalf("key %q paired with %+v / %+v", k, pr.Src, pr.Dst)
					}
				}
				if len(got) != len(want) {
					t.Fatalf("%d pairs, want %d", len(got), len(want))
				}
				if opts.Listers > 1 && !strings.HasPrefix(name, "awkward") && p.Stats().Splits == 0 {
					t.Errorf("no range splits with %d listers", opts.Listers)
				}
			})
		}
	}
}
