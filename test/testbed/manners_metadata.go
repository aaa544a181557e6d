package testbed

import (
	"mime"
	"net/http"
	"strings"
)

// decodeMetadata decodes user metadata sent RFC 2047-encoded, as S3 does
// before storing it, and reports whether any was (the S3 user guide,
// "Working with object metadata": non-US-ASCII values are decoded per RFC
// 2047 before storing and encoded per RFC 2047 when returned). A copy in
// parts sends back the metadata as HeadObject returned it, encoded.
func decodeMetadata(h http.Header) bool {
	changed := false
	var dec mime.WordDecoder
	for name, vs := range h {
		if !strings.HasPrefix(name, "X-Amz-Meta-") {
			continue
		}
		for i, v := range vs {
			if d, err := dec.DecodeHeader(v); err == nil && d != v {
				vs[i], changed = d, true
			}
		}
	}
	return changed
}

// encodeMetadata encodes non-US-ASCII user metadata as S3 returns it.
func encodeMetadata(h http.Header) {
	for name, vs := range h {
		if !strings.HasPrefix(name, "X-Amz-Meta-") {
			continue
		}
		for i, v := range vs {
			for _, c := range []byte(v) {
				if c >= 0x80 {
					vs[i] = mime.BEncoding.Encode("UTF-8", v)
					break
				}
			}
		}
	}
}
