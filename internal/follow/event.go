// Package follow keeps a destination in step with its source between the
// bulk copy and the freeze, from S3's own change notifications: the source
// bucket sends its object events to a queue, and follow turns them into
// sync work for the fleet (each key read and copied as it is now, or
// deleted while absent), recording in the ledger how far it has got and
// when each cutover's mark came through.
package follow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Change is what one event says: a key in a bucket may have changed at a
// time. It is never a state to copy: S3 sends events at least once, in no
// order across keys, and may send one event for two writes close together
// (the S3 user guide, "Amazon S3 Event Notifications": "it is possible
// that you will receive one event notification for two successful writes
// ... If you need to ensure that an event notification is sent for every
// successful write, you can enable S3 Versioning"), so the key is read
// again when it is copied.
type Change struct {
	Bucket    string
	Key       string // decoded
	Name      string // S3's event name (ObjectCreated:Put), or EventBridge's detail-type
	Removed   bool   // a deletion (the key may be gone)
	Time      time.Time
	Sequencer string // orders the events of one key; "" when the sender gave none
	ETag      string
	Size      int64
	// Caught: not an event, a key follow's catch-up listing found different.
	Caught bool
}

// ErrForeign marks a message body that is not an S3 event.
var ErrForeign = errors.New("not an S3 event notification")

// s3Event is S3's event notification message ("Event message structure",
// the S3 user guide): one or more records.
type s3Event struct {
	Records []struct {
		EventVersion string `json:"eventVersion"`
		EventSource  string `json:"eventSource"`
		EventTime    string `json:"eventTime"`
		EventName    string `json:"eventName"`
		S3           struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key       string `json:"key"`
				Size      int64  `json:"size"`
				ETag      string `json:"eTag"`
				Sequencer string `json:"sequencer"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
	// The test event S3 sends when a configuration is written.
	Event string `json:"Event"`
}

// bridgeEvent is an S3 event as EventBridge delivers it ("EventBridge
// event message structure", the S3 user guide).
type bridgeEvent struct {
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Time       string `json:"time"`
	Detail     struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			ETag      string `json:"etag"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"detail"`
}

// Decode reads one message body: S3's event notification, the test event
// S3 sends when a notification configuration is written (test: true, no
// changes), or an S3 event delivered by EventBridge. Event types that do
// not change an object's content, tags or presence (a restore, an ACL) give
// no change. A body of any other kind is an error wrapping ErrForeign.
func Decode(body []byte) (changes []Change, test bool, err error) {
	var probe struct {
		Records    json.RawMessage `json:"Records"`
		Event      string          `json:"Event"`
		DetailType string          `json:"detail-type"`
		Source     string          `json:"source"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrForeign, err)
	}
	switch {
	case probe.Event == "s3:TestEvent":
		return nil, true, nil
	case probe.Records != nil:
		return decodeS3(body)
	case probe.Source == "aws.s3" && probe.DetailType != "":
		return decodeBridge(body)
	}
	return nil, false, fmt.Errorf("%w: neither S3's Records, its test event nor an EventBridge event from aws.s3", ErrForeign)
}

func decodeS3(body []byte) ([]Change, bool, error) {
	var ev s3Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrForeign, err)
	}
	var out []Change
	for _, r := range ev.Records {
		if r.EventSource != "aws:s3" {
			return nil, false, fmt.Errorf("%w: a record from %q", ErrForeign, r.EventSource)
		}
		removed, ok := s3Kind(r.EventName)
		if !ok {
			continue
		}
		key, err := decodeKey(r.S3.Object.Key)
		if err != nil {
			return nil, false, err
		}
		at, err := parseTime(r.EventTime)
		if err != nil {
			return nil, false, err
		}
		out = append(out, Change{Bucket: r.S3.Bucket.Name, Key: key, Name: r.EventName, Removed: removed, Time: at,
			Sequencer: r.S3.Object.Sequencer, ETag: r.S3.Object.ETag, Size: r.S3.Object.Size})
	}
	return out, false, nil
}

func decodeBridge(body []byte) ([]Change, bool, error) {
	var ev bridgeEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrForeign, err)
	}
	removed, ok := bridgeKind(ev.DetailType)
	if !ok {
		return nil, false, nil
	}
	at, err := parseTime(ev.Time)
	if err != nil {
		return nil, false, err
	}
	c := Change{Bucket: ev.Detail.Bucket.Name, Key: ev.Detail.Object.Key, Name: ev.DetailType, Removed: removed, Time: at,
		Sequencer: ev.Detail.Object.Sequencer, ETag: ev.Detail.Object.ETag, Size: ev.Detail.Object.Size}
	// AWS does not say whether EventBridge's key is URL-encoded as in S3's
	// own events ("EventBridge event message structure" is silent; events
	// seen in the wild carry keys as they are). Both readings are taken
	// when they differ: a sync of a key that is not there deletes nothing
	// the source has, so the extra one is harmless, and the right one is
	// never missed.
	out := []Change{c}
	if decoded, err := url.QueryUnescape(c.Key); err == nil && decoded != c.Key {
		c.Key = decoded
		out = append(out, c)
	}
	return out, false, nil
}

// s3Kind says whether an S3 event name changes a key (ok) and whether it
// may have removed it. Created objects, deletions (by a caller or by a
// lifecycle rule, which S3 names LifecycleExpiration, not ObjectRemoved)
// and tag changes (tags are copied with the object) count; restores, ACLs,
// transitions and replication do not change what a clone holds.
func s3Kind(name string) (removed, ok bool) {
	family, _, _ := strings.Cut(name, ":")
	switch family {
	case "ObjectCreated", "ObjectTagging":
		return false, true
	case "ObjectRemoved", "LifecycleExpiration":
		return true, true
	}
	return false, false
}

// bridgeKind is s3Kind for EventBridge's detail types.
func bridgeKind(detailType string) (removed, ok bool) {
	switch detailType {
	case "Object Created", "Object Tags Added", "Object Tags Deleted":
		return false, true
	case "Object Deleted":
		return true, true
	}
	return false, false
}

// decodeKey undoes S3's encoding of a key in an event: URL-encoded as a
// form value, a space as "+" ("The object key name value is URL encoded.
// For example, 'red flower.jpg' becomes 'red+flower.jpg'", the S3 user
// guide, "Event message structure").
func decodeKey(k string) (string, error) {
	key, err := url.QueryUnescape(k)
	if err != nil {
		return "", fmt.Errorf("%w: key %q is not URL-encoded: %v", ErrForeign, k, err)
	}
	return key, nil
}

// parseTime reads an event's time. S3 writes ISO 8601 in UTC with a Z;
// a time without a zone (moto's) is taken as UTC, and one that cannot be
// read at all is zero, which the follower takes as the time it came: the
// key an event names matters more than its time, and is never dropped for
// it.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, nil
}

// Later reports whether sequencer a is later than b, for events of one key:
// S3 says to compare them as strings once the shorter is padded with
// leading zeros ("Event message structure": "the sequencer ... can be used
// to determine the sequence of events ... only for the same object key").
func Later(a, b string) bool {
	a, b = strings.ToUpper(a), strings.ToUpper(b)
	for len(a) < len(b) {
		a = "0" + a
	}
	for len(b) < len(a) {
		b = "0" + b
	}
	return a > b
}
