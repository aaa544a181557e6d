package testbed

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The AWS pages these tests hold ListObjectVersions to:
//   - https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html
//     (EncodingType: KeyMarker, NextKeyMarker, Prefix, Key and Delimiter
//     encoded);
//   - https://docs.aws.amazon.com/AmazonS3/latest/userguide/list-obj-version-enabled-bucket.html
//     ("in the order in which they were stored, with the most recently
//     stored returned first");
//   - https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html
//     (a multipart upload's object is dated when the upload was initiated).

// ---- Unit tests: no servers. ----

// An answer as versitygw v1.8.0 writes it: delete markers first, an entry
// no longer current dated when it was superseded, an empty EncodingType.
const versitygwAnswer = `<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes>` +
	`<DeleteMarker><IsLatest>false</IsLatest><Key>a</Key><LastModified>2026-12-07T10:00:05.123456789Z</LastModified><VersionId>01M</VersionId></DeleteMarker>` +
	`<DeleteMarker><IsLatest>true</IsLatest><Key>b c+d</Key><LastModified>2026-12-07T10:00:09.5Z</LastModified><VersionId>01Q</VersionId></DeleteMarker>` +
	`<Delimiter>/</Delimiter><EncodingType></EncodingType><IsTruncated>false</IsTruncated><KeyMarker></KeyMarker><MaxKeys>1000</MaxKeys><Name>bk</Name><NextKeyMarker></NextKeyMarker><NextVersionIdMarker></NextVersionIdMarker><Prefix></Prefix><VersionIdMarker></VersionIdMarker>` +
	`<Version><ETag>"e1"</ETag><IsLatest>true</IsLatest><Key>a</Key><LastModified>2026-12-07T10:00:08Z</LastModified><Size>1</Size><StorageClass>STANDARD</StorageClass><VersionId>01N</VersionId></Version>` +
	`<Version><ETag>"e2"</ETag><IsLatest>false</IsLatest><Key>a</Key><LastModified>2026-12-07T10:00:05Z</LastModified><Size>2</Size><StorageClass>STANDARD</StorageClass><VersionId>01L</VersionId></Version>` +
	`<Version><ETag>"e3"</ETag><IsLatest>false</IsLatest><Key>a</Key><LastModified>2026-12-07T10:00:04Z</LastModified><Size>3</Size><StorageClass>STANDARD</StorageClass><VersionId>null</VersionId></Version>` +
	`<Version><ETag>"e4"</ETag><IsLatest>false</IsLatest><Key>b c+d</Key><LastModified>2026-12-07T10:00:09Z</LastModified><Size>4</Size><StorageClass>STANDARD</StorageClass><VersionId>01P</VersionId></Version>` +
	`<Version><ETag>"e5"</ETag><IsLatest>true</IsLatest><Key>e</Key><LastModified>2026-12-07T10:00:10Z</LastModified><Size>5</Size><StorageClass>STANDARD</StorageClass><VersionId>01R</VersionId></Version>` +
	`</ListVersionsResult>`

// entriesOf lists an answer's entries and common prefixes in document
// order, as "kind key version lastModified" and "prefix P".
func entriesOf(body []byte) []string {
	var out []string
	for _, e := range regexp.MustCompile(`(?s)<Version>.*?</Version>|<DeleteMarker>.*?</DeleteMarker>|<CommonPrefixes>.*?</CommonPrefixes>`).FindAll(body, -1) {
		field := func(tag string) string {
			if m := regexp.MustCompile(`<` + tag + `>([^<]*)</` + tag + `>`).FindSubmatch(e); m != nil {
				return string(m[1])
			}
			return "?"
		}
		switch {
		case bytes.HasPrefix(e, []byte("<CommonPrefixes>")):
			out = append(out, "prefix "+field("Prefix"))
		case bytes.HasPrefix(e, []byte("<DeleteMarker>")):
			out = append(out, "DeleteMarker "+field("Key")+" "+field("VersionId")+" "+field("LastModified"))
		default:
			out = append(out, "Version "+field("Key")+" "+field("VersionId")+" "+field("LastModified"))
		}
	}
	return out
}

func TestVersionsListedAsS3ListsThem(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, "2026-12-07T"+s+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	b := newVersionBook(time.Now)
	b.created[versionRef{"bk", "a", "null"}] = at("09:00:00.250") // before versioning was enabled
	b.created[versionRef{"bk", "a", "01L"}] = at("10:00:01.900")
	b.created[versionRef{"bk", "a", "01M"}] = at("10:00:05.123")
	b.created[versionRef{"bk", "a", "01N"}] = at("10:00:08.000")
	b.created[versionRef{"bk", "b c+d", "01P"}] = at("10:00:03.700")
	b.created[versionRef{"other", "b c+d", "01Q"}] = at("08:00:00") // another bucket's
	all := []string{
		"Version a 01N 2026-12-07T10:00:08.000Z",
		"DeleteMarker a 01M 2026-12-07T10:00:05.000Z",
		"Version a 01L 2026-12-07T10:00:01.000Z",
		"Version a null 2026-12-07T09:00:00.000Z",
		// Not written through the proxy: versitygw's time, to the second.
		"DeleteMarker b c+d 01Q 2026-12-07T10:00:09.000Z",
		"Version b c+d 01P 2026-12-07T10:00:03.000Z",
		"prefix d/",
		"Version e 01R 2026-12-07T10:00:10.000Z",
	}
	for _, c := range []struct {
		name      string
		asked     versionsAsked
		want      []string
		next      string // NextKeyMarker NextVersionIdMarker, "" when not truncated
		truncMore bool   // versitygw had more
	}{
		{name: "all", asked: versionsAsked{maxKeys: 1000}, want: all},
		{name: "first page", asked: versionsAsked{maxKeys: 2}, want: all[:2], next: "a 01M"},
		{name: "after a version", asked: versionsAsked{keyMarker: "a", versionMarker: "01M", maxKeys: 2}, want: all[2:4], next: "a null"},
		{name: "after the null version", asked: versionsAsked{keyMarker: "a", versionMarker: "null", maxKeys: 3}, want: all[4:7], next: "d/"},
		{name: "after a key", asked: versionsAsked{keyMarker: "a", maxKeys: 1000}, want: all[4:]},
		{name: "after a common prefix", asked: versionsAsked{keyMarker: "d/", maxKeys: 1000}, want: all[7:]},
		{name: "after a version gone", asked: versionsAsked{keyMarker: "a", versionMarker: "01X", maxKeys: 1}, want: all[4:5], next: "b c+d 01Q"},
		{name: "versitygw had more", asked: versionsAsked{keyMarker: "b c+d", maxKeys: 5}, want: all[6:], next: "e 01R", truncMore: true},
	} {
		answer := versitygwAnswer
		if c.truncMore {
			answer = strings.Replace(answer, "<IsTruncated>false", "<IsTruncated>true", 1)
		}
		got, err := b.s3Versions("bk", []byte(answer), c.asked)
		if err != nil {
			t.Fatal(err)
		}
		// S3 writes a page's common prefixes after its entries.
		want := slices.Concat(slices.DeleteFunc(slices.Clone(c.want), func(s string) bool { return strings.HasPrefix(s, "prefix ") }),
			slices.DeleteFunc(slices.Clone(c.want), func(s string) bool { return !strings.HasPrefix(s, "prefix ") }))
		if e := entriesOf(got); !slices.Equal(e, want) {
			t.Errorf("%s: entries\n%s\nwant\n%s", c.name, strings.Join(e, "\n"), strings.Join(want, "\n"))
		}
		out := decodeVersions(t, got)
		next := strings.TrimSpace(aws.ToString(out.NextKeyMarker) + " " + aws.ToString(out.NextVersionIdMarker))
		if aws.ToBool(out.IsTruncated) != (c.next != "") || next != c.next {
			t.Errorf("%s: truncated %v, next %q; want %q", c.name, aws.ToBool(out.IsTruncated), next, c.next)
		}
		if aws.ToString(out.KeyMarker) != c.asked.keyMarker || aws.ToString(out.VersionIdMarker) != c.asked.versionMarker || aws.ToInt32(out.MaxKeys) != int32(c.asked.maxKeys) {
			t.Errorf("%s: markers %q %q, max %d: not what was asked", c.name, aws.ToString(out.KeyMarker), aws.ToString(out.VersionIdMarker), aws.ToInt32(out.MaxKeys))
		}
		if out.EncodingType != "" || aws.ToString(out.Delimiter) != "/" {
			t.Errorf("%s: EncodingType %q, Delimiter %q", c.name, out.EncodingType, aws.ToString(out.Delimiter))
		}
	}
	// What the SDK reads of an entry is versitygw's, but for LastModified.
	out := decodeVersions(t, must(b.s3Versions("bk", []byte(versitygwAnswer), versionsAsked{maxKeys: 1000})))
	if v := out.Versions[0]; aws.ToString(v.ETag) != `"e1"` || aws.ToInt64(v.Size) != 1 || !aws.ToBool(v.IsLatest) || v.StorageClass != "STANDARD" {
		t.Errorf("first version read as %+v", v)
	}

	enc, err := b.s3Versions("bk", []byte(versitygwAnswer), versionsAsked{keyMarker: "a b", maxKeys: 1, encode: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<EncodingType>url</EncodingType>", "<Key>b+c%2Bd</Key>", "<NextKeyMarker>b+c%2Bd</NextKeyMarker>", "<KeyMarker>a+b</KeyMarker>"} {
		if !bytes.Contains(enc, []byte(want)) {
			t.Errorf("encoded answer: no %s in\n%s", want, enc)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestWidenAsksVersitygwForAll(t *testing.T) {
	t.Parallel()
	r := fakeRequest("GET", "/bk?versions&key-marker=a&version-id-marker=null&max-keys=2&encoding-type=url&prefix=p")
	asked, err := askedFor(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := (versionsAsked{keyMarker: "a", versionMarker: "null", maxKeys: 2, encode: true}); asked != want {
		t.Errorf("asked %+v, want %+v", asked, want)
	}
	widen(r)
	q := r.URL.Query()
	if q.Has("version-id-marker") || q.Get("max-keys") != "1000" || q.Get("key-marker") != "a" || q.Get("prefix") != "p" || !q.Has("versions") {
		t.Errorf("versitygw asked %s", r.URL.RawQuery)
	}
	if asked, _ := askedFor(fakeRequest("GET", "/bk?versions&max-keys=5000")); asked.maxKeys != 1000 {
		t.Errorf("max-keys 5000: %d, want S3's most, 1000", asked.maxKeys)
	}
	if _, err := askedFor(fakeRequest("GET", "/bk?versions&max-keys=x")); err == nil {
		t.Error("max-keys x: no error")
	}
}

// decodeVersions reads a ListObjectVersions answer body with the SDK.
func decodeVersions(t *testing.T, body []byte) *s3.ListObjectVersionsOutput {
	t.Helper()
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://s3.test"), UsePathStyle: true,
		HTTPClient: fixedAnswer(body), Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	out, err := c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String("bk")})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type fixedAnswer []byte

func (f fixedAnswer) Do(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(bytes.NewReader(f))}, nil
}

func TestVersionBookNotesWrites(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	b := newVersionBook(func() time.Time { return clock })
	write := func(method, target string, status int, header http.Header, body string) {
		t.Helper()
		r := fakeRequest(method, target)
		resp := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(strings.NewReader(body))}
		if err := b.note(resp, r, parseRequest(r)); err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(resp.Body); string(got) != body {
			t.Errorf("%s %s: the answer's body became %q", method, target, got)
		}
		clock = clock.Add(time.Second)
	}
	v := func(id string) http.Header { return http.Header{"X-Amz-Version-Id": {id}} }
	write("PUT", "/bk/plain?x-id=PutObject", 200, http.Header{}, "")                                                              // 10:00:00, unversioned: null
	write("PUT", "/bk/k?x-id=PutObject", 200, v("V1"), "")                                                                        // 10:00:01
	write("PUT", "/bk/k?tagging", 200, v("V1"), "")                                                                               // not a version
	write("PUT", "/bk/k?x-id=PutObject", 503, v("V9"), "")                                                                        // refused
	write("POST", "/bk/big?uploads", 200, http.Header{}, "<InitiateMultipartUploadResult><UploadId>U1</UploadId>")                // 10:00:04
	write("PUT", "/bk/big?partNumber=1&uploadId=U1", 200, http.Header{}, "")                                                      // a part
	write("POST", "/bk/big?uploadId=U1", 200, v("V2"), "<CompleteMultipartUploadResult/>")                                        // dated 10:00:04
	write("DELETE", "/bk/k?x-id=DeleteObject", 204, http.Header{"X-Amz-Version-Id": {"M1"}, "X-Amz-Delete-Marker": {"true"}}, "") // 10:00:07
	write("DELETE", "/bk/plain?x-id=DeleteObject", 204, http.Header{}, "")                                                        // gone for good
	write("DELETE", "/bk/k?versionId=V1&x-id=DeleteObject", 204, v("V1"), "")                                                     // gone for good
	b.deleted("bk", []deletedEntry{{Key: "big", DeleteMarker: true, DeleteMarkerVersionID: "M2"}, {Key: "gone", VersionID: "V7"}})
	want := map[versionRef]time.Time{
		{"bk", "big", "V2"}: time.Date(2026, 12, 7, 10, 0, 4, 0, time.UTC),
		{"bk", "k", "M1"}:   time.Date(2026, 12, 7, 10, 0, 7, 0, time.UTC),
		{"bk", "big", "M2"}: clock,
	}
	if len(b.created) != len(want) {
		t.Errorf("noted %v, want %v", b.created, want)
	}
	for ref, at := range want {
		if !b.created[ref].Equal(at) {
			t.Errorf("%v: noted %v, want %v", ref, b.created[ref], at)
		}
	}
	if len(b.initiated) != 0 {
		t.Errorf("uploads still noted after completion: %v", b.initiated)
	}
}

func fakeRequest(method, target string) *http.Request {
	u, _ := url.Parse("http://s3.test" + target) // the tests' own constant targets
	return &http.Request{Method: method, URL: u, Header: http.Header{}}
}

// ---- Integration tests: versitygw behind the proxy. ----

// TestVersionsThroughTheProxy: a versioned bucket written through the
// proxy lists as S3 lists it, page by page: each key's entries newest
// first, delete markers among them, each dated when it was written (a
// version from before versioning, and one superseded since, keep their own
// time; an object made in parts is dated when its upload began).
func TestVersionsThroughTheProxy(t *testing.T) {
	env := Get(t)
	t.Parallel()
	ctx := context.Background()
	bucket := env.Bucket(t)
	c := env.Manners().Client(bucket)
	put := func(key, body string) string {
		t.Helper()
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	del := func(key string) string {
		t.Helper()
		out, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	pause := func() { time.Sleep(1100 * time.Millisecond) }
	// when is the span a write's time must be in, as S3 lists it: from
	// the second it started in to its end.
	type span struct{ from, to time.Time }
	timed := func(write func()) span {
		from := time.Now().Truncate(time.Second)
		write()
		return span{from, time.Now()}
	}

	nullAt := timed(func() { put("a", "before versioning") })
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	var up *s3.CreateMultipartUploadOutput
	initiatedAt := timed(func() {
		var err error
		if up, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("c d+e")}); err != nil {
			t.Fatal(err)
		}
	})
	pause()
	var a2, marker, b1, a3 string
	a2At := timed(func() { a2 = put("a", "second") })
	pause()
	markerAt := timed(func() { marker = del("a") })
	b1At := timed(func() { b1 = put("b", "b") })
	part, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String("c d+e"), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader("part")})
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("c d+e"), UploadId: up.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	pause()
	a3At := timed(func() { a3 = put("a", "third") })

	want := []struct {
		entry string // kind key version
		at    span
	}{
		{"Version a " + a3, a3At},
		{"DeleteMarker a " + marker, markerAt},
		{"Version a " + a2, a2At},
		{"Version a null", nullAt},
		{"Version b " + b1, b1At},
		{"Version c+d%2Be " + aws.ToString(done.VersionId), initiatedAt},
	}
	for _, pageSize := range []int32{100, 2, 1} {
		var got []string
		var keyMarker, versionMarker string
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("page size %d: more than 20 pages", pageSize)
			}
			body, out := rawVersions(t, c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), MaxKeys: aws.Int32(pageSize), EncodingType: s3types.EncodingTypeUrl,
				KeyMarker: optionalString(keyMarker), VersionIdMarker: optionalString(versionMarker)})
			if !bytes.Contains(body, []byte("<EncodingType>url</EncodingType>")) {
				t.Fatalf("an answer asked for encoding-type=url does not say it:\n%s", body)
			}
			got = append(got, entriesOf(body)...)
			if !aws.ToBool(out.IsTruncated) {
				break
			}
			keyMarker, versionMarker = aws.ToString(out.NextKeyMarker), aws.ToString(out.NextVersionIdMarker)
			if keyMarker, err = url.QueryUnescape(keyMarker); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("page size %d: entries\n%s\nwant %d", pageSize, strings.Join(got, "\n"), len(want))
		}
		for i, w := range want {
			entry, shown, _ := strings.Cut(got[i], " 20")
			at, err := time.Parse(time.RFC3339, "20"+shown)
			if entry != w.entry || err != nil || at.Before(w.at.from) || at.After(w.at.to) || at.Nanosecond() != 0 {
				t.Errorf("page size %d: entry %d is %q, want %s written from %s to %s, to the second", pageSize, i, got[i], w.entry,
					w.at.from.UTC().Format(time.RFC3339Nano), w.at.to.UTC().Format(time.RFC3339Nano))
			}
		}
	}
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// rawVersions asks c for one ListObjectVersions page and returns the
// answer's body as sent, and as the SDK read it.
func rawVersions(t *testing.T, c *s3.Client, in *s3.ListObjectVersionsInput) ([]byte, *s3.ListObjectVersionsOutput) {
	t.Helper()
	tap := &bodyTap{next: c.Options().HTTPClient}
	out, err := c.ListObjectVersions(context.Background(), in, func(o *s3.Options) { o.HTTPClient = tap })
	if err != nil {
		t.Fatal(err)
	}
	return tap.body, out
}

// bodyTap keeps the body of the last answer it passes on.
type bodyTap struct {
	next interface {
		Do(*http.Request) (*http.Response, error)
	}
	body []byte
}

func (b *bodyTap) Do(r *http.Request) (*http.Response, error) {
	resp, err := b.next.Do(r)
	if err != nil {
		return resp, err
	}
	b.body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b.body))
	return resp, err
}
