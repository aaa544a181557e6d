package listing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/rs/zerolog"
)

// keyShapes are key sets that stress each way of cutting the key space.
func keyShapes() map[string][]string {
	r := rand.New(rand.NewPCG(1, 2))
	hex := func(n int) string {
		const digits = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = digits[r.IntN(16)]
		}
		return string(b)
	}
	shapes := map[string][]string{}

	var flat []string
	for range 3000 {
		flat = append(flat, hex(12))
	}
	shapes["flat hex"] = flat

	var users []string // one object per "directory": the walk must group them
	for i := range 2500 {
		users = append(users, fmt.Sprintf("users/%06d/avatar.jpg", i))
	}
	shapes["one object per prefix"] = users

	var deep []string
	for i := range 2000 {
		deep = append(deep, fmt.Sprintf("img/%d/%02d/%02d/%s.jpg", 2020+i%5, i%12, i%28, hex(6)))
		if i%50 == 0 {
			deep = append(deep, fmt.Sprintf("img/%d/index.html", 2020+i%5), fmt.Sprintf("top-%d.txt", i))
		}
	}
	shapes["deep paths with objects at every level"] = deep

	var odd []string
	for i := range 600 {
		odd = append(odd,
			fmt.Sprintf("a/%d", i), fmt.Sprintf("a!%d", i), fmt.Sprintf("a/%d/", i), fmt.Sprintf("a.%d/x", i),
			fmt.Sprintf("dir with space/%d+%d%%.txt", i, i), fmt.Sprintf("ünï/çødé/%d", i),
			fmt.Sprintf("double//slash/%d", i), fmt.Sprintf("~tilde/%d", i), fmt.Sprintf("%d", i),
		)
	}
	odd = append(odd, "a", "a/", "a!", "/leading", "//", "z/")
	shapes["awkward characters and neighbours"] = odd
	return shapes
}

func collectAll(t *testing.T, l *Lister) map[string]int {
	t.Helper()
	out := make(chan []Object, 4)
	errc := make(chan error, 1)
	go func() { errc <- l.Run(context.Background(), out) }()
	seen := map[string]int{}
	for page := range out {
		for _, o := range page {
			seen[o.Key]++
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return seen
}

func checkExactlyOnce(t *testing.T, want []string, prefix string, seen map[string]int) {
	t.Helper()
	wantSet := map[string]bool{}
	for _, k := range want {
		if strings.HasPrefix(k, prefix) {
			wantSet[k] = true
		}
	}
	missing, dup := 0, 0
	for k := range wantSet {
		switch seen[k] {
		case 0:
			if missing < 5 {
				t.Errorf("key %q never listed", k)
			}
			missing++
		case 1:
		default:
			if dup < 5 {
				t.Errorf("key %q listed %d times", k, seen[k])
			}
			dup++
		}
	}
	for k := range seen {
		if !wantSet[k] {
			t.Errorf("listed %q, which is not under %q", k, prefix)
		}
	}
	if missing+dup > 0 {
		t.Fatalf("%d of %d keys missing, %d listed more than once", missing, len(wantSet), dup)
	}
}

// TestListsEveryKeyExactlyOnce cuts each shape with tiny pages, many listers
// and a small walk budget, so every mechanism (walk, subtree groups, range
// splits) runs many times, and checks that each key comes out exactly once.
func TestListsEveryKeyExactlyOnce(t *testing.T) {
	t.Parallel()
	for name, keys := range keyShapes() {
		for _, prefix := range []string{"", "a", "a/", "img/", "users/0001", "nothing-here/"} {
			for _, opts := range []Options{
				{Listers: 1, PageSize: 1000},
				{Listers: 8, PageSize: 7, WalkBudget: 3},
				{Listers: 32, PageSize: 13, WalkBudget: 200},
			} {
				t.Run(fmt.Sprintf("%s/prefix=%q/listers=%d/page=%d", name, prefix, opts.Listers, opts.PageSize), func(t *testing.T) {
					t.Parallel()
					fake := newFake(keys)
					fake.delay = 50 * time.Microsecond
					l := New(fake, "bucket", prefix, opts, zerolog.Nop())
					checkExactlyOnce(t, keys, prefix, collectAll(t, l))
				})
			}
		}
	}
}

// TestFlatKeysAreSplitAcrossListers checks that a flat prefix is spread over
// several listers by key range, not listed by one.
func TestFlatKeysAreSplitAcrossListers(t *testing.T) {
	t.Parallel()
	keys := keyShapes()["flat hex"]
	fake := newFake(keys)
	fake.delay = time.Millisecond
	l := New(fake, "bucket", "", Options{Listers: 8, PageSize: 50}, zerolog.Nop())
	checkExactlyOnce(t, keys, "", collectAll(t, l))
	if l.Stats.Splits.Load() < 4 || l.Stats.Shards.Load() < 5 {
		t.Fatalf("flat listing used %d shards and %d splits; want it spread over several listers", l.Stats.Shards.Load(), l.Stats.Splits.Load())
	}
}

// TestManyPrefixesAreGrouped checks that a level with thousands of
// one-object prefixes costs about one request per page of prefixes, not one
// per prefix.
func TestManyPrefixesAreGrouped(t *testing.T) {
	t.Parallel()
	keys := keyShapes()["one object per prefix"]
	fake := newFake(keys)
	l := New(fake, "bucket", "", Options{Listers: 4, PageSize: 100, WalkBudget: 10}, zerolog.Nop())
	checkExactlyOnce(t, keys, "", collectAll(t, l))
	if calls := fake.calls.Load(); calls > int64(len(keys))/10 {
		t.Fatalf("%d requests for %d one-object prefixes: the walk is not grouping them", calls, len(keys))
	}
}

func TestBetween(t *testing.T) {
	t.Parallel()
	cases := []struct {
		lo, hi string
		start  int
		ok     bool
	}{
		{"a", "", 0, true},
		{"a", "b", 0, true},
		{"a", "a0", 0, true},
		{"abc", "abd", 0, true},
		{"~~~", "", 0, true},
		{"P/abc/", "", 2, true},
		{"a", "a", 0, false},
		{"a", "a!", 0, false},
		{"ü", "", 0, true},
		{"写真/1.jpg", "", 0, true},
		{"写真/1.jpg", "写真/2.jpg", 7, true},
		{"z", "é", 0, true},
		{"😀", "", 0, true},
		{"\uFFFD", "", 0, true},
		{"a\uD7FF", "a\uE000", 0, true}, // not a surrogate, but past lo
	}
	for _, c := range cases {
		m, ok := between(c.lo, c.hi, c.start)
		if ok != c.ok {
			t.Errorf("between(%q, %q) ok = %v, want %v (m=%q)", c.lo, c.hi, ok, c.ok, m)
			continue
		}
		if ok && (m <= c.lo || (c.hi != "" && m >= c.hi) || m[:c.start] != c.lo[:c.start] || !utf8.ValidString(m)) {
			t.Errorf("between(%q, %q) = %q: not strictly between, prefix lost, or not UTF-8", c.lo, c.hi, m)
		}
	}
	// Any two keys: a split point, when there is one, is strictly between
	// them, valid UTF-8, and never "/" past the start.
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []rune("a/~!é写真😀\u0080\u07FF\u0800\uFFFD\U0010FFFF")
	word := func() string {
		w := make([]rune, 1+r.IntN(4))
		for i := range w {
			w[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(w)
	}
	for range 20000 {
		lo, hi := word(), word()
		if r.IntN(4) == 0 {
			hi = ""
		} else if lo >= hi {
			continue
		}
		m, ok := between(lo, hi, 0)
		tail := m[len(commonPrefix(lo, m)):]
		if ok && (m <= lo || (hi != "" && m >= hi) || !utf8.ValidString(m) || strings.ContainsAny(tail, "/\x7f\u0080\u009f\uFFFE\uFFFF")) {
			t.Fatalf("between(%q, %q) = %q", lo, hi, m)
		}
	}
}

// TestNonASCIIKeysAreSplitAcrossListers: a bucket whose keys all start
// beyond ASCII (Japanese, Cyrillic, emoji paths) is spread over several
// listers by key range as an ASCII one is, not listed by one.
func TestNonASCIIKeysAreSplitAcrossListers(t *testing.T) {
	t.Parallel()
	for _, script := range []string{"写真", "фото", "📷"} {
		var keys []string
		for i := range 3000 {
			keys = append(keys, fmt.Sprintf("%s%c%05d.jpg", script, rune(0x4E00+i%400), i))
		}
		fake := newFake(keys)
		fake.delay = time.Millisecond
		l := New(fake, "bucket", "", Options{Listers: 8, PageSize: 50}, zerolog.Nop())
		checkExactlyOnce(t, keys, "", collectAll(t, l))
		if l.Stats.Splits.Load() < 4 || l.Stats.Shards.Load() < 5 {
			t.Fatalf("%s keys listed with %d shards and %d splits; want them spread over several listers", script, l.Stats.Shards.Load(), l.Stats.Splits.Load())
		}
	}
}

// stuckBucket has four top-level prefixes. The listing of one of them
// fails; the others hang until their context ends, as on a slow server,
// and the first of them to start calls held.
type stuckBucket struct {
	failing string // the prefix whose listing fails with err
	err     error
	held    func()
	once    sync.Once
}

func (b *stuckBucket) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	switch p := aws.ToString(in.Prefix); {
	case p == "":
		out := &s3.ListObjectsV2Output{}
		for _, cp := range []string{"a/", "b/", "c/", "d/"} {
			out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(cp)})
		}
		return out, nil
	case p == b.failing:
		return nil, b.err
	}
	if b.held != nil {
		b.once.Do(b.held)
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestRunReturnsTheFirstCause: Run returns the listing error that stopped
// it, not the cancellations it caused in the other listers; and when ctx
// ends first, ctx's cause, not the listers' reports of it.
func TestRunReturnsTheFirstCause(t *testing.T) {
	t.Parallel()
	errBoom, errStop := errors.New("boom"), errors.New("stopped")
	cases := map[string]struct {
		failing string
		stop    bool
		want    error
	}{
		"a listing fails": {failing: "c/", want: errBoom},
		"ctx ends":        {stop: true, want: errStop},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			b := &stuckBucket{failing: c.failing, err: errBoom}
			if c.stop {
				b.held = func() { cancel(errStop) }
			}
			err := New(b, "b", "", Options{Listers: 4}, zerolog.Nop()).Run(ctx, make(chan []Object))
			if !errors.Is(err, c.want) {
				t.Fatalf("Run = %v, want %v", err, c.want)
			}
		})
	}
}
