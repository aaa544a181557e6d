package testbed

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

var (
	contentsRE = regexp.MustCompile(`(?s)<Contents>.*?</Contents>`)
	keyRE      = regexp.MustCompile(`(?s)<Key>(.*?)</Key>`)
	etagRE     = regexp.MustCompile(`(?s)<ETag>(.*?)</ETag>`)
	classRE    = regexp.MustCompile(`(?s)<StorageClass>(.*?)</StorageClass>`)
	// The fields S3 encodes with encoding-type=url.
	encodedRE = regexp.MustCompile(`(?s)<(Key|Prefix|StartAfter|Delimiter)>(.*?)</(Key|Prefix|StartAfter|Delimiter)>`)
)

// rewriteList shows archived and SSE-KMS keys as S3 lists them, and names
// as S3 writes them: URL-encoded when asked to (encoding-type=url), else
// raw, where S3 writes a character XML 1.0 cannot hold as a character
// reference (which parsers refuse) and a carriage return as it is (which
// parsers read as a line feed). versitygw writes both as U+FFFD and &#xD;,
// so the true names are read from its files.
func (m *Manners) rewriteList(resp *http.Response, r *http.Request, q request) error {
	encode := r.URL.Query().Get("encoding-type") == "url"
	return rewriteBody(resp, func(b []byte) []byte {
		contents, names := m.trueNamer(q.bucket), m.trueNamer(q.bucket)
		b = contentsRE.ReplaceAllFunc(b, func(c []byte) []byte {
			k := keyRE.FindSubmatch(c)
			if k == nil {
				return c
			}
			key := contents("K", xmlUnescape(string(k[1])))
			if m.has(mannerArchive, q.bucket, key) {
				c = classRE.ReplaceAll(c, []byte("<StorageClass>GLACIER</StorageClass>"))
			}
			if m.encryptedKMS(q.bucket, key) {
				c = etagRE.ReplaceAllFunc(c, func(tag []byte) []byte {
					real := xmlUnescape(string(etagRE.FindSubmatch(tag)[1]))
					return []byte("<ETag>" + xmlEscape(kmsETag(q.bucket, key, real)) + "</ETag>")
				})
			}
			return c
		})
		b = encodedRE.ReplaceAllFunc(b, func(f []byte) []byte {
			p := encodedRE.FindSubmatch(f)
			name := xmlUnescape(string(p[2]))
			if p[1][0] == 'K' || p[1][0] == 'P' {
				name = names(string(p[1]), name)
			}
			if encode {
				name = s3Encode(name)
			} else {
				name = s3XML(name)
			}
			return []byte("<" + string(p[1]) + ">" + name + "</" + string(p[1]) + ">")
		})
		b = encodingRE.ReplaceAll(b, nil) // versitygw writes one, empty, whatever was asked
		if !encode {
			return b
		}
		root := rootRE.FindIndex(b)
		if root == nil {
			return b
		}
		return slices.Concat(b[:root[1]], []byte("<EncodingType>url</EncodingType>"), b[root[1]:])
	})
}

var (
	rootRE     = regexp.MustCompile(`<ListBucketResult[^>]*>`)
	encodingRE = regexp.MustCompile(`<EncodingType>[^<]*</EncodingType>`)
)

// trueNamer reads the true names behind one listing of bucket, in order:
// each name versitygw shows is the same, unless it holds U+FFFD, which
// stands for any character XML cannot carry; then it is the name of a file
// (or folder) in its data that it stands for. Names that show alike (two
// keys differing only in such characters) are listed in key order, so the
// n-th of them in a listing (of one kind of element) is the n-th such file.
func (m *Manners) trueNamer(bucket string) func(kind, name string) string {
	seen := map[string]int{}
	return func(kind, name string) string {
		if !strings.ContainsRune(name, '\uFFFD') {
			return name
		}
		n := seen[kind+name]
		seen[kind+name]++
		if names := m.trueNames(bucket, name); n < len(names) {
			return names[n]
		}
		return name
	}
}

// trueNames is every name in bucket's data that versitygw would show as
// name, in key order.
func (m *Manners) trueNames(bucket, name string) []string {
	paths := []string{""}
	root := filepath.Join(m.env.dir, "s3", bucket)
	parts := strings.Split(name, "/")
	for i, part := range parts {
		var next []string
		for _, p := range paths {
			join := func(s string) string {
				if i == 0 {
					return s
				}
				return p + "/" + s
			}
			if !strings.ContainsRune(part, '\uFFFD') {
				next = append(next, join(part))
				continue
			}
			entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(p)))
			if err != nil {
				continue
			}
			for _, e := range entries {
				if xmlSanitized(e.Name()) == part {
					next = append(next, join(e.Name()))
				}
			}
		}
		paths = next
	}
	slices.Sort(paths)
	return paths
}
