package testbed

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// versitygw v1.8.0 answers ListObjectVersions unlike S3 in three ways:
//   - an entry that is no longer current shows as LastModified the time it
//     stopped being current (a version to the second, a delete marker to
//     the nanosecond), not when it was written;
//   - every delete marker of a page comes before every version, where S3
//     interleaves them: keys in order, and each key's versions and delete
//     markers "in the order in which they were stored, with the most
//     recently stored returned first" (S3 user guide, "Listing objects in a
//     versioning-enabled bucket",
//     https://docs.aws.amazon.com/AmazonS3/latest/userguide/list-obj-version-enabled-bucket.html);
//   - it ignores encoding-type=url, with which S3 encodes KeyMarker,
//     NextKeyMarker, Prefix, Key and Delimiter and says EncodingType url
//     (ListObjectVersions, S3 API reference,
//     https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html).
//
// Its paging differs too: its key-marker is inclusive (S3 starts after
// the key), and a version-id-marker naming a key's current version lists
// that version again, while one of "null" lists the null version again and
// nothing after it.
//
// So the proxy notes when each write it sees succeed made a version or a
// delete marker, and makes the page itself: it asks versitygw from the key
// marker, without a version marker, for as much as it gives (1,000
// entries), and answers with S3's page from that: each entry's
// LastModified is when it was written (for an object made by
// CompleteMultipartUpload, when its upload was initiated: S3 user guide,
// "Working with object metadata"), to the second as S3's listings give
// it; entries and common prefixes in S3's order; what is up to the markers
// left out; cut to max-keys, with S3's next markers (the last key and
// version listed).
//
// Only writes through the proxy are known: an entry written straight to
// versitygw (Env.S3, S3Direct) keeps versitygw's LastModified, and is
// ordered by it. Writes are noted in every bucket, versioned or not, since
// an object written before versioning is enabled becomes the version
// "null" (a map entry per write: a few megabytes for a hundred thousand).

// versionBook is when each version and delete marker written through the
// proxy was made. Safe for concurrent use.
type versionBook struct {
	now       func() time.Time
	mu        sync.Mutex
	created   map[versionRef]time.Time
	initiated map[string]time.Time // upload id -> when CreateMultipartUpload answered
}

// versionRef names one version (or delete marker) of a key.
type versionRef struct{ bucket, key, version string }

func newVersionBook(now func() time.Time) *versionBook {
	return &versionBook{now: now, created: map[versionRef]time.Time{}, initiated: map[string]time.Time{}}
}

// note records what a successful write made: a version (PutObject,
// CopyObject, CompleteMultipartUpload), a delete marker (DeleteObject
// without a version id on a versioned bucket) or an upload initiated; and
// forgets what a delete removed for good.
func (b *versionBook) note(resp *http.Response, r *http.Request, q request) error {
	if resp.StatusCode/100 != 2 || q.bucket == "" || q.key == "" {
		return nil
	}
	query := r.URL.Query()
	query.Del("x-id") // the SDK names the operation
	ref := versionRef{q.bucket, q.key, cmp.Or(resp.Header.Get("X-Amz-Version-Id"), "null")}
	now := b.now()
	switch {
	case r.Method == http.MethodPost && query.Has("uploads"):
		var id string
		err := rewriteBody(resp, func(body []byte) []byte {
			if g := uploadIDRE.FindSubmatch(body); g != nil {
				id = xmlUnescape(string(g[1]))
			}
			return body
		})
		if id != "" {
			b.mu.Lock()
			b.initiated[id] = now
			b.mu.Unlock()
		}
		return err
	case r.Method == http.MethodPost && query.Has("uploadId"):
		b.mu.Lock()
		defer b.mu.Unlock()
		id := query.Get("uploadId")
		if at, ok := b.initiated[id]; ok {
			now = at
		}
		delete(b.initiated, id)
		b.created[ref] = now
	case r.Method == http.MethodDelete && len(query) == 1 && query.Has("uploadId"):
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.initiated, query.Get("uploadId"))
	case r.Method == http.MethodPut && len(query) == 0:
		b.mu.Lock()
		defer b.mu.Unlock()
		b.created[ref] = now
	case r.Method == http.MethodDelete && len(query) == 0:
		b.mu.Lock()
		defer b.mu.Unlock()
		if resp.Header.Get("X-Amz-Delete-Marker") == "true" {
			b.created[ref] = now
		} else {
			delete(b.created, versionRef{q.bucket, q.key, "null"}) // an unversioned bucket's object, gone
		}
	case r.Method == http.MethodDelete && len(query) == 1 && query.Has("versionId"):
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.created, versionRef{q.bucket, q.key, query.Get("versionId")})
	}
	return nil
}

// deleted records what a DeleteObjects deleted: delete markers made, and
// versions removed for good.
func (b *versionBook) deleted(bucket string, entries []deletedEntry) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range entries {
		switch {
		case d.DeleteMarker && d.VersionID == "":
			b.created[versionRef{bucket, d.Key, cmp.Or(d.DeleteMarkerVersionID, "null")}] = now
		default:
			delete(b.created, versionRef{bucket, d.Key, cmp.Or(d.VersionID, "null")})
		}
	}
}

// listsVersions reports a ListObjectVersions request.
func listsVersions(r *http.Request, q request) bool {
	return r.Method == http.MethodGet && q.bucket != "" && q.key == "" && r.URL.Query().Has("versions")
}

// versionsAsked is the page a ListObjectVersions request asked for.
type versionsAsked struct {
	keyMarker, versionMarker string
	maxKeys                  int
	encode                   bool
}

// versitygwMaxKeys is the most versitygw lists in one answer.
const versitygwMaxKeys = 1000

// askedFor reads the page a ListObjectVersions request asks for.
func askedFor(r *http.Request) (versionsAsked, error) {
	query := r.URL.Query()
	asked := versionsAsked{keyMarker: query.Get("key-marker"), versionMarker: query.Get("version-id-marker"), maxKeys: versitygwMaxKeys,
		encode: query.Get("encoding-type") == "url"}
	if s := query.Get("max-keys"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return asked, fmt.Errorf("max-keys %q", s)
		}
		asked.maxKeys = min(n, versitygwMaxKeys)
	}
	return asked, nil
}

// widen rewrites a ListObjectVersions request for versitygw, whose paging
// differs from S3's: it asks from the key marker, without a version
// marker, for as much as versitygw gives, and the answer is cut to the
// page asked for (s3Versions). The caller signs the request again.
func widen(r *http.Request) {
	query := r.URL.Query()
	query.Del("version-id-marker")
	query.Set("max-keys", strconv.Itoa(versitygwMaxKeys))
	r.URL.RawQuery = query.Encode()
}

// rewrite makes a ListObjectVersions answer S3's page.
func (b *versionBook) rewrite(resp *http.Response, q request, asked versionsAsked) error {
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var err error
	rerr := rewriteBody(resp, func(body []byte) []byte {
		var out []byte
		out, err = b.s3Versions(q.bucket, body, asked)
		return out
	})
	return errors.Join(rerr, err)
}

// versitygwVersions is the part of versitygw's answer the page is made of.
type versitygwVersions struct {
	Name, Prefix, Delimiter string
	IsTruncated             bool
	Versions                []versitygwEntry `xml:"Version"`
	DeleteMarkers           []versitygwEntry `xml:"DeleteMarker"`
	CommonPrefixes          []string         `xml:"CommonPrefixes>Prefix"`
}

type versitygwEntry struct {
	Key, VersionId, LastModified string
	Inner                        []byte `xml:",innerxml"`
}

// versionItem is one entry or common prefix of a page.
type versionItem struct {
	key     string // or the common prefix
	prefix  bool
	marker  bool
	version string
	when    time.Time // when it was written, or versitygw's LastModified if not known
	inner   []byte
}

var (
	keyElementRE   = regexp.MustCompile(`(?s)<Key>.*?</Key>`)
	lastModifiedRE = regexp.MustCompile(`(?s)<LastModified>.*?</LastModified>`)
)

// s3LastModified is how S3's listings write a time: to the second.
const s3LastModified = "2006-01-02T15:04:05.000Z"

// s3Versions makes versitygw's answer (to the widened request) for bucket
// the page S3 would give: each entry dated when it was written, entries and
// common prefixes in S3's order, those up to the markers left out, cut to
// max-keys, with S3's markers and names.
func (b *versionBook) s3Versions(bucket string, body []byte, asked versionsAsked) ([]byte, error) {
	var page versitygwVersions
	if err := xml.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("versitygw's ListObjectVersions answer: %w", err)
	}
	items := make([]versionItem, 0, len(page.Versions)+len(page.DeleteMarkers)+len(page.CommonPrefixes))
	b.mu.Lock()
	for i, e := range slices.Concat(page.Versions, page.DeleteMarkers) {
		it := versionItem{key: e.Key, marker: i >= len(page.Versions), version: cmp.Or(e.VersionId, "null"), inner: e.Inner}
		it.when, _ = time.Parse(time.RFC3339Nano, e.LastModified) // unreadable: the zero time, listed last of its key
		if at, ok := b.created[versionRef{bucket, it.key, it.version}]; ok {
			it.when = at
		}
		items = append(items, it)
	}
	b.mu.Unlock()
	for _, p := range page.CommonPrefixes {
		items = append(items, versionItem{key: p, prefix: true})
	}
	slices.SortStableFunc(items, func(x, y versionItem) int {
		return cmp.Or(strings.Compare(x.key, y.key), y.when.Compare(x.when))
	})
	items = afterMarkers(items, asked)
	truncated := page.IsTruncated || len(items) > asked.maxKeys
	items = items[:min(len(items), asked.maxKeys)]
	return writeVersions(page, items, asked, truncated), nil
}

// afterMarkers leaves out what a page starting at the request's markers
// does not hold: every key up to the key marker without a version marker;
// with one, the keys before it and the key's entries up to and including
// that version (all of them if it is gone).
func afterMarkers(items []versionItem, asked versionsAsked) []versionItem {
	if asked.keyMarker == "" {
		return items
	}
	if asked.versionMarker == "" {
		return slices.DeleteFunc(items, func(it versionItem) bool { return it.key <= asked.keyMarker })
	}
	past := false
	for _, it := range items {
		if it.key == asked.keyMarker && !it.prefix && it.version == asked.versionMarker {
			past = true
		}
	}
	seen := false
	return slices.DeleteFunc(items, func(it versionItem) bool {
		if it.key != asked.keyMarker {
			return it.key < asked.keyMarker
		}
		drop := !past || !seen
		if it.version == asked.versionMarker {
			seen = true
		}
		return drop
	})
}

// writeVersions writes a ListObjectVersions answer as S3 does.
func writeVersions(page versitygwVersions, items []versionItem, asked versionsAsked, truncated bool) []byte {
	name := s3XML
	if asked.encode {
		name = s3Encode
	}
	var w bytes.Buffer
	el := func(tag, text string) { w.WriteString("<" + tag + ">" + text + "</" + tag + ">") }
	w.WriteString(xml.Header + `<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`)
	el("Name", xmlEscape(page.Name))
	el("Prefix", name(page.Prefix))
	el("KeyMarker", name(asked.keyMarker))
	el("VersionIdMarker", xmlEscape(asked.versionMarker))
	if truncated && len(items) > 0 {
		last := items[len(items)-1]
		el("NextKeyMarker", name(last.key))
		if !last.prefix {
			el("NextVersionIdMarker", xmlEscape(last.version))
		}
	}
	el("MaxKeys", strconv.Itoa(asked.maxKeys))
	if page.Delimiter != "" {
		el("Delimiter", name(page.Delimiter))
	}
	el("IsTruncated", strconv.FormatBool(truncated))
	if asked.encode {
		el("EncodingType", "url")
	}
	for _, it := range items {
		if it.prefix {
			continue
		}
		inner := keyElementRE.ReplaceAllLiteral(it.inner, []byte("<Key>"+name(it.key)+"</Key>"))
		inner = lastModifiedRE.ReplaceAllLiteral(inner, []byte("<LastModified>"+it.when.UTC().Truncate(time.Second).Format(s3LastModified)+"</LastModified>"))
		tag := "Version"
		if it.marker {
			tag = "DeleteMarker"
		}
		el(tag, string(inner))
	}
	for _, it := range items {
		if it.prefix {
			w.WriteString("<CommonPrefixes>")
			el("Prefix", name(it.key))
			w.WriteString("</CommonPrefixes>")
		}
	}
	w.WriteString("</ListVersionsResult>")
	return w.Bytes()
}
