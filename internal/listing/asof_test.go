package listing

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"
)

// fv is one entry of a versioned bucket: a version or a delete marker.
type fv struct {
	key, version string
	marker       bool
	modified     time.Time
}

// versionServer answers ListObjectVersions over entries kept in S3's order
// (keys ascending, each key's entries newest first), in S3's XML, with
// versions and delete markers interleaved as S3 writes them: Prefix,
// Delimiter, KeyMarker, VersionIdMarker, MaxKeys and EncodingType=url.
// noNextMarker leaves NextKeyMarker out of truncated pages.
type versionServer struct {
	entries      []fv
	noNextMarker bool
}

type xmlEntry struct {
	XMLName      xml.Name
	Key          string `xml:"Key"`
	VersionID    string `xml:"VersionId"`
	IsLatest     bool   `xml:"IsLatest"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag,omitempty"`
	Size         *int64 `xml:"Size,omitempty"`
}

type xmlPrefix struct {
	Prefix string `xml:"Prefix"`
}

func (s *versionServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("versions") {
		http.Error(w, "not a ListObjectVersions", http.StatusBadRequest)
		return
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	keyMarker, verMarker := q.Get("key-marker"), q.Get("version-id-marker")
	limit := 1000
	if v := q.Get("max-keys"); v != "" {
		limit, _ = strconv.Atoi(v)
	}
	enc := func(s string) string { return s }
	if q.Get("encoding-type") == "url" {
		enc = func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	}
	var children []any
	start := 0 // after the marker: a key alone, or a key's version
	for i, e := range s.entries {
		if e.key > keyMarker {
			break
		}
		start = i + 1
		if e.key == keyMarker && verMarker != "" && e.version == verMarker {
			break
		}
	}
	n, lastKey, lastVer, lastCP, truncated := 0, "", "", "", false
	latest := map[string]bool{}
	for _, e := range s.entries[:start] {
		latest[e.key] = true
	}
	for _, e := range s.entries[start:] {
		first := !latest[e.key]
		latest[e.key] = true
		if !strings.HasPrefix(e.key, prefix) {
			continue
		}
		if delim != "" && strings.HasSuffix(keyMarker, delim) && strings.HasPrefix(e.key, keyMarker) {
			continue // the marker was a common prefix: its subtree was listed
		}
		cp := ""
		if delim != "" {
			if j := strings.Index(e.key[len(prefix):], delim); j >= 0 {
				cp = e.key[:len(prefix)+j+len(delim)]
			}
		}
		if cp != "" && cp == lastCP {
			continue
		}
		if n == limit {
			truncated = true
			break
		}
		n++
		if cp != "" {
			lastCP, lastKey, lastVer = cp, cp, ""
			children = append(children, struct {
				XMLName xml.Name `xml:"CommonPrefixes"`
				xmlPrefix
			}{xmlPrefix: xmlPrefix{enc(cp)}})
			continue
		}
		lastKey, lastVer = e.key, e.version
		x := xmlEntry{XMLName: xml.Name{Local: "Version"}, Key: enc(e.key), VersionID: e.version, IsLatest: first,
			LastModified: e.modified.UTC().Format("2006-01-02T15:04:05.000Z")}
		if e.marker {
			x.XMLName.Local = "DeleteMarker"
		} else {
			x.ETag, x.Size = `"`+e.version+`"`, aws.Int64(int64(len(e.version)))
		}
		children = append(children, x)
	}
	type result struct {
		XMLName             xml.Name `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListVersionsResult"`
		Name                string   `xml:"Name"`
		Prefix              string   `xml:"Prefix"`
		EncodingType        string   `xml:"EncodingType,omitempty"`
		IsTruncated         bool     `xml:"IsTruncated"`
		NextKeyMarker       string   `xml:"NextKeyMarker,omitempty"`
		NextVersionIDMarker string   `xml:"NextVersionIdMarker,omitempty"`
		Children            []any
	}
	res := result{Name: "b", Prefix: enc(prefix), EncodingType: q.Get("encoding-type"), IsTruncated: truncated, Children: children}
	if truncated && !s.noNextMarker {
		res.NextKeyMarker, res.NextVersionIDMarker = enc(lastKey), lastVer
	}
	w.Header().Set("Content-Type", "application/xml")
	b, _ := xml.Marshal(res) // plain strings and bools
	fmt.Fprintf(w, "%s%s", xml.Header, b)
}

func versionClient(t *testing.T, h http.Handler) *s3.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return s3.New(s3.Options{BaseEndpoint: aws.String(srv.URL), Region: "us-east-1", UsePathStyle: true,
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
}

// expectedAsOf is the rule, said plainly: each key's first entry in S3's
// order not after at, when it is a version.
func expectedAsOf(entries []fv, prefix string, at time.Time) map[string]string {
	want := map[string]string{}
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.key] || e.modified.After(at) || !strings.HasPrefix(e.key, prefix) {
			continue
		}
		seen[e.key] = true
		if !e.marker {
			want[e.key] = e.version
		}
	}
	return want
}

// listAsOf lists bucket b through AsOf with a Lister, key -> version id,
// failing on a key listed twice.
func listAsOf(t *testing.T, api VersionsAPI, prefix string, at time.Time, opts Options) map[string]string {
	t.Helper()
	l := New(NewAsOf(api, at), "b", prefix, opts, zerolog.Nop())
	out := make(chan []Object, 4)
	errc := make(chan error, 1)
	go func() { errc <- l.Run(context.Background(), out) }()
	got := map[string]string{}
	for page := range out {
		for _, o := range page {
			if _, dup := got[o.Key]; dup {
				t.Errorf("%q listed twice", o.Key)
			}
			got[o.Key] = o.VersionID
			if o.ETag != `"`+o.VersionID+`"` || o.Size != int64(len(o.VersionID)) {
				t.Errorf("%q: ETag %s size %d are not version %s's", o.Key, o.ETag, o.Size, o.VersionID)
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return got
}

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// history is a versioned bucket's entries in S3's order, each key's newest
// first.
func history() []fv {
	var h []fv
	add := func(key string, es ...fv) {
		for _, e := range es {
			e.key = key
			h = append(h, e)
		}
	}
	v := func(id string, sec int) fv { return fv{version: id, modified: at(sec)} }
	m := func(id string, sec int) fv { return fv{version: id, marker: true, modified: at(sec)} }
	add("a/deleted-before", m("d1", 20), v("v1", 10))                 // absent at 30
	add("a/deleted-after", m("d1", 40), v("v1", 10))                  // v1 at 30
	add("a/overwritten-after", v("v3", 50), v("v2", 40), v("v1", 10)) // v1 at 30
	add("a/overwritten-before", v("v2", 20), v("v1", 10))             // v2 at 30
	add("a/recreated", v("v2", 25), m("d1", 20), v("v1", 10))         // v2 at 30
	add("a/new-after", v("v1", 31))                                   // nothing at 30
	add("a/null", v("v2", 40), v("null", 5))                          // the null version at 30
	add("a/null-current", v("null", 29))                              // "null" is current
	add("a/equal-time", v("v2", 30), v("v1", 30))                     // v2: at 30 exactly, and first of two equal
	add("a/marker-tie", m("d1", 30), v("v1", 30))                     // the marker, first of two equal: absent
	add("a/tie-version-first", v("v2", 30), m("d1", 30), v("v1", 1))  // v2
	add("a/multipart", v("v2", 15), v("v1", 20))                      // v2 stored last, modified (initiated) first: v2
	add("b/x\x01y+z%20 é", v("v1", 10))                               // a name XML needs encoded
	add("c/many", v("v9", 90), v("v8", 80), v("v7", 70), v("v6", 60), v("v5", 50), v("v4", 40), v("v3", 29), v("v2", 20), v("v1", 10))
	add("c/only-markers", m("d2", 35), m("d1", 25))
	for i := range 30 {
		add(fmt.Sprintf("d/%02d/k", i), v("v2", 40+i), v("v1", i))
	}
	// S3's order: keys ascending, each key's entries as added (newest first).
	slices.SortStableFunc(h, func(a, b fv) int { return strings.Compare(a.key, b.key) })
	return h
}

// TestAsOfChoosesEachKeysVersion lists a bucket's history at several times
// with pages of every small size (so keys' entries span pages, and pages
// end on delete markers and common prefixes) and many listers (so shards
// split mid-history), and checks each against the rule said plainly.
func TestAsOfChoosesEachKeysVersion(t *testing.T) {
	t.Parallel()
	h := history()
	srv := &versionServer{entries: h}
	api := versionClient(t, srv)
	at30 := expectedAsOf(h, "", at(30))
	want30 := map[string]string{
		"a/deleted-after": "v1", "a/overwritten-after": "v1", "a/overwritten-before": "v2", "a/recreated": "v2", "a/null": "null",
		"a/null-current": "null", "a/equal-time": "v2", "a/tie-version-first": "v2", "a/multipart": "v2", "b/x\x01y+z%20 é": "v1", "c/many": "v3",
	}
	for i := range 30 {
		want30[fmt.Sprintf("d/%02d/k", i)] = "v1"
	}
	if !maps.Equal(at30, want30) {
		t.Fatalf("the plain rule itself: %v\nwant %v", at30, want30) // the test's own model
	}
	for _, when := range []time.Time{at(30), at(0), at(25), at(1000)} {
		for _, opts := range []Options{{Listers: 1, PageSize: 1000}, {Listers: 1, PageSize: 1}, {Listers: 8, PageSize: 3, WalkBudget: 2}, {Listers: 16, PageSize: 2}} {
			for _, prefix := range []string{"", "c/"} {
				got := listAsOf(t, api, prefix, when, opts)
				if want := expectedAsOf(h, prefix, when); !maps.Equal(got, want) {
					t.Errorf("as of %s, prefix %q, %+v:\n got %v\nwant %v", when.Format(time.TimeOnly), prefix, opts, got, want)
				}
			}
		}
	}
	if got := listAsOf(t, api, "", at(-1), Options{Listers: 1}); len(got) != 0 {
		t.Errorf("before any version: %v, want nothing", got)
	}
}

// TestAsOfPairsWithTheDestination: a paired listing with an as-of source
// joins the destination with the versions of the time.
func TestAsOfPairsWithTheDestination(t *testing.T) {
	t.Parallel()
	h := history()
	api := versionClient(t, &versionServer{entries: h})
	dst := newFake([]string{"a/new-after", "a/deleted-before", "a/null", "zzz"})
	p := NewPaired(Side{API: NewAsOf(api, at(30)), Bucket: "b", Prefix: "a/"}, Side{API: dst, Bucket: "d", Prefix: "a/"}, Options{Listers: 4, PageSize: 2})
	out := make(chan []Pair, 4)
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background(), out) }()
	srcOnly, dstOnly, both := map[string]string{}, []string{}, map[string]string{}
	for page := range out {
		for _, pr := range page {
			switch {
			case pr.Dst == nil:
				srcOnly[pr.Key] = pr.Src.VersionID
			case pr.Src == nil:
				dstOnly = append(dstOnly, pr.Key)
			default:
				both[pr.Key] = pr.Src.VersionID
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	slices.Sort(dstOnly)
	if !slices.Equal(dstOnly, []string{"deleted-before", "new-after"}) || !maps.Equal(both, map[string]string{"null": "null"}) ||
		len(srcOnly) != 8 || srcOnly["overwritten-after"] != "v1" {
		t.Fatalf("source only %v, destination only %v, both %v", srcOnly, dstOnly, both)
	}
}

// TestAsOfRefusesAPageItCannotFollow: a truncated page without a marker,
// or one whose markers do not move on, is an error, not a listing that
// starts again or never ends.
func TestAsOfRefusesAPageItCannotFollow(t *testing.T) {
	t.Parallel()
	api := versionClient(t, &versionServer{entries: history(), noNextMarker: true})
	_, err := NewAsOf(api, at(30)).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("b"), MaxKeys: aws.Int32(2)})
	if err == nil || !strings.Contains(err.Error(), "without NextKeyMarker") {
		t.Fatalf("truncated without a marker: %v", err)
	}
	stuck := versionClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<ListVersionsResult><IsTruncated>true</IsTruncated><NextKeyMarker>k</NextKeyMarker><NextVersionIdMarker>v</NextVersionIdMarker>`+
			`<Version><Key>k</Key><VersionId>v</VersionId><LastModified>2026-12-07T10:00:00.000Z</LastModified></Version></ListVersionsResult>`)
	}))
	a := NewAsOf(stuck, at(30))
	first, err := a.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("b")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("b"), ContinuationToken: first.NextContinuationToken})
	if err == nil || !strings.Contains(err.Error(), "same markers again") {
		t.Fatalf("markers that do not move: %v", err)
	}
}
