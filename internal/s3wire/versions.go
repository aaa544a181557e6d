package s3wire

import (
	"bytes"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// RecordOrder is a per-call option for ListObjectVersions that reads, from
// a successful answer's XML, the order of its Version and DeleteMarker
// elements, which the SDK's two lists (Versions, DeleteMarkers) lose, and
// keeps it in the result's metadata for VersionOrder. The SDK's
// deserializer reads the same bytes as it would have and stays the only
// reader of the result. Any other operation is left alone.
func RecordOrder(o *s3.Options) { recordOrder(o) }

var recordOrder = readFirst("ListObjectVersions", func(_ *smithyhttp.Response, body []byte) (any, func(*middleware.Metadata)) {
	return nil, func(md *middleware.Metadata) {
		if order, ok := entryOrder(body); ok {
			md.Set(orderKey{}, order)
		}
	}
})

type orderKey struct{}

// VersionOrder is the order RecordOrder read from a ListObjectVersions
// answer: one entry per Version (false) or DeleteMarker (true), in document
// order. ok is false when nothing was recorded (the option was not given,
// the call failed, or the answer held markup S3 does not send).
func VersionOrder(md middleware.Metadata) (order []bool, ok bool) {
	order, ok = md.Get(orderKey{}).([]bool)
	return order, ok
}

// entryOrder lists the Version (false) and DeleteMarker (true) children of
// a ListVersionsResult in document order. Text cannot hold a raw "<", so
// every "<" opens markup; false for markup S3 does not send (CDATA).
func entryOrder(doc []byte) ([]bool, bool) {
	var order []bool
	depth := 0
	for {
		i := bytes.IndexByte(doc, '<')
		if i < 0 {
			return order, true
		}
		doc = doc[i+1:]
		switch {
		case bytes.HasPrefix(doc, []byte("![CDATA[")):
			return nil, false
		case len(doc) > 0 && (doc[0] == '?' || doc[0] == '!'):
			continue
		case len(doc) > 0 && doc[0] == '/':
			depth--
			continue
		}
		end := bytes.IndexAny(doc, " \t\r\n/>")
		if end < 0 {
			return nil, false
		}
		name := string(doc[:end])
		closing := bytes.IndexByte(doc, '>')
		if closing < 0 {
			return nil, false
		}
		if depth == 1 && (name == "Version" || name == "DeleteMarker") {
			order = append(order, name == "DeleteMarker")
		}
		if doc[closing-1] != '/' {
			depth++
		}
	}
}
