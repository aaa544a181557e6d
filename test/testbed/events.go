package testbed

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3 event notifications, which versitygw does not send. The proxy keeps
// each bucket's notification configuration itself (PUT and GET
// /bucket?notification never reach versitygw) and, for every write
// versitygw accepts through it, sends S3's event message to the local SQS
// queue of each queue configuration whose event types and key filter
// match, and EventBridge's event to the queues a test named as the
// targets of an EventBridge rule. It follows the Amazon S3 User Guide:
//   - "Amazon S3 Event Notifications" (EventNotifications.html,
//     NotificationHowTo.html): the empty configuration, a PUT replacing
//     the whole of it, the s3:TestEvent sent when it is set, delivery at
//     least once, and "if two writes are made to a single non-versioned
//     object at the same time, it is possible that only a single event
//     notification will be sent" (Coalesce);
//   - "Event message structure" (notification-content-structure.html): the
//     record, the URL-encoded key ("red flower.jpg" becomes
//     "red+flower.jpg"), the sequencer;
//   - "Configuring event notifications using object key name filtering"
//     (notification-how-to-filtering.html): prefix and suffix rules, and
//     which configurations overlap;
//   - "Using EventBridge", "EventBridge event message structure" and
//     "Amazon EventBridge mapping and troubleshooting" (EventBridge.html,
//     ev-events.html, ev-mapping-troubleshooting.html): EventBridge's
//     events, sent for every event type once a bucket enables it.
//
// What is not played: SNS topics and Lambda functions (kept and returned,
// never delivered), ObjectCreated:Post, ObjectRestore, ObjectAcl,
// replication and lifecycle events, and the permission S3 needs on the
// queue (any existing local queue is a valid destination).

// s3Namespace is the XML namespace of S3's answers.
const s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

// notificationConfig is a bucket's notification configuration, as
// PutBucketNotificationConfiguration sends it and
// GetBucketNotificationConfiguration reads it.
type notificationConfig struct {
	XMLName     xml.Name      `xml:"NotificationConfiguration"`
	Xmlns       string        `xml:"xmlns,attr,omitempty"`
	Topics      []destination `xml:"TopicConfiguration"`
	Queues      []destination `xml:"QueueConfiguration"`
	Functions   []destination `xml:"CloudFunctionConfiguration"`
	EventBridge *struct{}     `xml:"EventBridgeConfiguration"`
}

// destination is one topic, queue or function configuration.
type destination struct {
	ID       string   `xml:"Id,omitempty"`
	Topic    string   `xml:"Topic,omitempty"`
	Queue    string   `xml:"Queue,omitempty"`
	Function string   `xml:"CloudFunction,omitempty"`
	Events   []string `xml:"Event"`
	Filter   *struct {
		Rules []filterRule `xml:"S3Key>FilterRule"`
	} `xml:"Filter,omitempty"`
	queueURL string // of a queue configuration, once validated
}

type filterRule struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

// keyFilter is a configuration's prefix and suffix ("" for none).
func (d destination) keyFilter() (prefix, suffix string) {
	if d.Filter == nil {
		return "", ""
	}
	for _, r := range d.Filter.Rules {
		switch strings.ToLower(r.Name) {
		case "prefix":
			prefix = r.Value
		case "suffix":
			suffix = r.Value
		}
	}
	return prefix, suffix
}

// matches reports whether an event of type name (as "s3:ObjectCreated:Put")
// on key is one the configuration asks for. S3 compares the rules with the
// key as its events show it, URL-encoded: the filtering page says a space
// in a prefix or suffix must be given as "+", other special characters
// percent-encoded.
func (d destination) matches(name, key string) bool {
	prefix, suffix := d.keyFilter()
	shown := eventKey(key)
	if !strings.HasPrefix(shown, prefix) || !strings.HasSuffix(shown, suffix) {
		return false
	}
	for _, e := range d.Events {
		if eventTypesOverlap(e, name) {
			return true
		}
	}
	return false
}

// eventTypes are the event types a configuration may name (the user
// guide's "Supported event types").
var eventTypes = regexp.MustCompile(`^s3:(TestEvent|ObjectCreated:(\*|Put|Post|Copy|CompleteMultipartUpload)|` +
	`ObjectRemoved:(\*|Delete|DeleteMarkerCreated)|ObjectRestore:(\*|Post|Completed|Delete)|ReducedRedundancyLostObject|` +
	`Replication:(\*|OperationFailedReplication|OperationMissedThreshold|OperationReplicatedAfterThreshold|OperationNotTracked)|` +
	`LifecycleExpiration:(\*|Delete|DeleteMarkerCreated)|LifecycleTransition|IntelligentTiering|` +
	`ObjectTagging:(\*|Put|Delete)|ObjectAcl:Put)$`)

// eventTypesOverlap reports whether two event types share an event:
// equal, or one the wildcard of the other's family (s3:ObjectCreated:*
// and s3:ObjectCreated:Put).
func eventTypesOverlap(a, b string) bool {
	if a == b {
		return true
	}
	if fam, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(b, fam) {
		return true
	}
	fam, ok := strings.CutSuffix(b, "*")
	return ok && strings.HasPrefix(a, fam)
}

// overlap reports whether two configurations can both match one event:
// an event type in common, prefixes one of which begins the other, and
// suffixes one of which ends the other (no prefix or suffix matches any).
// The filtering page: "two prefixes are considered overlapping if a given
// string can begin with both prefixes", suffixes alike, and overlapping
// prefixes are allowed with suffixes that do not overlap.
func overlap(a, b destination) bool {
	common := false
	for _, x := range a.Events {
		for _, y := range b.Events {
			common = common || eventTypesOverlap(x, y)
		}
	}
	pa, sa := a.keyFilter()
	pb, sb := b.keyFilter()
	return common && (strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)) &&
		(strings.HasSuffix(sa, sb) || strings.HasSuffix(sb, sa))
}

// refusal is an S3 error answer.
type refusal struct {
	status        int
	code, message string
}

func (r *refusal) Error() string { return r.code + ": " + r.message }

func invalidArgument(msg string) *refusal {
	return &refusal{http.StatusBadRequest, "InvalidArgument", msg}
}

// validate checks a configuration as S3 does before it looks at the
// destinations, and gives each configuration without an Id one.
func (c *notificationConfig) validate() error {
	all := c.all()
	for i, d := range all {
		if len(d.Events) == 0 {
			return &refusal{http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema"}
		}
		for _, e := range d.Events {
			if !eventTypes.MatchString(e) || e == "s3:TestEvent" {
				return invalidArgument("The event is not supported for notifications")
			}
		}
		if d.Filter != nil {
			seen := map[string]bool{}
			for _, r := range d.Filter.Rules {
				name := strings.ToLower(r.Name)
				if name != "prefix" && name != "suffix" {
					return invalidArgument("filter rule name must be either prefix or suffix")
				}
				if seen[name] {
					return invalidArgument("Cannot specify more than one " + name + " rule in a filter.")
				}
				seen[name] = true
			}
		}
		for _, e := range all[:i] {
			if overlap(*d, *e) {
				return invalidArgument("Configurations overlap. Configurations on the same bucket cannot share a common event type.")
			}
		}
		if d.ID == "" {
			d.ID = randomID()
		}
	}
	return nil
}

// all is every configuration, of every kind.
func (c *notificationConfig) all() []*destination {
	var out []*destination
	for _, list := range [][]destination{c.Topics, c.Queues, c.Functions} {
		for i := range list {
			out = append(out, &list[i])
		}
	}
	return out
}

// queueName is the name in an SQS queue ARN, arn:aws:sqs:REGION:ACCOUNT:NAME.
func queueName(arn string) (string, bool) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return "", false
	}
	return parts[5], true
}

// notificationRequest reports a request for a bucket's notification
// configuration.
func notificationRequest(r *http.Request, q request) bool {
	return q.bucket != "" && q.key == "" && r.URL.Query().Has("notification")
}

// serveNotification answers GET and PUT /bucket?notification.
func (m *Manners) serveNotification(w http.ResponseWriter, r *http.Request, q request) {
	if q.access != AccessKey {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return
	}
	_, err := m.client(q.bucket).HeadBucket(r.Context(), &s3.HeadBucketInput{Bucket: aws.String(q.bucket)})
	var re *smithyhttp.ResponseError
	switch {
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		s3Error(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
		return
	case err != nil:
		s3Error(w, http.StatusInternalServerError, "InternalError", "manners: "+err.Error())
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeXML(w, m.events.configuration(q.bucket))
	case http.MethodPut:
		if err := m.putNotification(r, q.bucket); err != nil {
			var ref *refusal
			if !errors.As(err, &ref) {
				ref = &refusal{http.StatusInternalServerError, "InternalError", "manners: " + err.Error()}
			}
			s3Error(w, ref.status, ref.code, ref.message)
		}
	default:
		s3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
	}
}

// putNotification validates and keeps a bucket's new configuration, then
// sends each of its queues S3's test message.
func (m *Manners) putNotification(r *http.Request, bucket string) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return &refusal{http.StatusBadRequest, "IncompleteBody", err.Error()}
	}
	var c notificationConfig
	if err := xml.Unmarshal(body, &c); err != nil {
		return &refusal{http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema"}
	}
	if err := c.validate(); err != nil {
		return err
	}
	urls := map[string]bool{}
	for i, d := range c.Queues {
		name, ok := queueName(d.Queue)
		var out *sqs.GetQueueUrlOutput
		if ok {
			out, err = m.env.SQS.GetQueueUrl(r.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		}
		if !ok || err != nil {
			return invalidArgument("Unable to validate the following destination configurations")
		}
		c.Queues[i].queueURL = aws.ToString(out.QueueUrl)
		urls[c.Queues[i].queueURL] = true
	}
	test, err := json.Marshal(testEvent{Service: "Amazon S3", Event: "s3:TestEvent", Time: eventTime(time.Now()),
		Bucket: bucket, RequestID: randomHex(8), HostID: randomID()})
	if err != nil {
		return err
	}
	for u := range urls {
		if _, err := m.env.SQS.SendMessage(r.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(u), MessageBody: aws.String(string(test))}); err != nil {
			return invalidArgument("Unable to validate the following destination configurations")
		}
	}
	m.events.configure(bucket, &c)
	return nil
}

// testEvent is the message S3 sends a destination when it is configured.
type testEvent struct {
	Service   string `json:"Service"`
	Event     string `json:"Event"`
	Time      string `json:"Time"`
	Bucket    string `json:"Bucket"`
	RequestID string `json:"RequestId"`
	HostID    string `json:"HostId"`
}

// objectEvent is one event on one object, before it is written for a
// destination.
type objectEvent struct {
	Name                string // the event type without "s3:", as "ObjectCreated:Put"
	Bucket, Key, Region string
	Size                int64 // -1: no size (deletes, tagging)
	ETag                string
	VersionID           string
	Sequencer           string
	Time                time.Time
	Requester, SourceIP string
	RequestID, HostID   string
	Account             string // the bucket owner's
}

// eventOf names the event a successful request makes, if it makes one.
func eventOf(r *http.Request, q request) (string, bool) {
	query := r.URL.Query()
	if q.key == "" {
		return "", false
	}
	switch r.Method {
	case http.MethodPut:
		for _, sub := range []string{"partNumber", "uploadId", "acl", "retention", "legal-hold", "annotation"} {
			if query.Has(sub) {
				return "", false
			}
		}
		switch {
		case query.Has("tagging"):
			return "ObjectTagging:Put", true
		case r.Header.Get("X-Amz-Copy-Source") != "":
			return "ObjectCreated:Copy", true
		}
		return "ObjectCreated:Put", true
	case http.MethodPost:
		if query.Has("uploadId") {
			return "ObjectCreated:CompleteMultipartUpload", true
		}
	case http.MethodDelete:
		switch {
		case query.Has("tagging"):
			return "ObjectTagging:Delete", true
		case query.Has("uploadId") || query.Has("annotation"):
			return "", false
		}
		return "ObjectRemoved:Delete", true
	}
	return "", false
}

// noteEvent makes the event of a write versitygw accepted, if the bucket
// sends events. It reads what the event says of the object from the
// answer, or for a copy, a completed upload or tagging from a HeadObject
// of the version written; the event itself goes out later.
func (m *Manners) noteEvent(resp *http.Response, r *http.Request, q request) {
	if resp.StatusCode/100 != 2 || !m.events.watching(q.bucket) {
		return
	}
	name, ok := eventOf(r, q)
	if !ok {
		return
	}
	ev := m.newEvent(r, resp, q.bucket, q.key, name)
	ctx := context.WithoutCancel(r.Context()) // the write is done: its event must not be lost with the client
	version := r.URL.Query().Get("versionId")
	if version == "" {
		version = resp.Header.Get("X-Amz-Version-Id")
	}
	switch name {
	case "ObjectRemoved:Delete":
		ev.VersionID = version
		if r.URL.Query().Get("versionId") == "" && resp.Header.Get("X-Amz-Delete-Marker") == "true" {
			ev.Name = "ObjectRemoved:DeleteMarkerCreated"
		}
	case "ObjectCreated:Put":
		ev.ETag, ev.VersionID, ev.Size = resp.Header.Get("ETag"), version, r.ContentLength
		if n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64); err == nil {
			ev.Size = n
		}
		if ev.Size < 0 && !m.headEvent(ctx, &ev, version) {
			return
		}
	default:
		if !m.headEvent(ctx, &ev, version) {
			return
		}
		if strings.HasPrefix(name, "ObjectTagging:") {
			ev.Size = -1
		}
	}
	ev.ETag = strings.Trim(m.shownETag(q.bucket, q.key, ev.ETag), `"`)
	m.events.emit(ev)
}

// headEvent fills in the size, ETag and version of ev's object from a
// HeadObject, of version when there is one. It reports whether it could.
func (m *Manners) headEvent(ctx context.Context, ev *objectEvent, version string) bool {
	in := &s3.HeadObjectInput{Bucket: aws.String(ev.Bucket), Key: aws.String(ev.Key)}
	if version != "" && version != "null" {
		in.VersionId = aws.String(version)
	}
	out, err := m.client(ev.Bucket).HeadObject(ctx, in)
	if err != nil {
		return false
	}
	ev.Size, ev.ETag, ev.VersionID = aws.ToInt64(out.ContentLength), aws.ToString(out.ETag), aws.ToString(out.VersionId)
	return true
}

// newEvent is an event on bucket/key made by r, answered by resp, with
// what every event says: who, from where, when, its sequencer.
func (m *Manners) newEvent(r *http.Request, resp *http.Response, bucket, key, name string) objectEvent {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	requestID := resp.Header.Get("X-Amz-Request-Id")
	if requestID == "" {
		requestID = strings.ToUpper(randomHex(8))
	}
	hostID := resp.Header.Get("X-Amz-Id-2")
	if hostID == "" {
		hostID = randomID()
	}
	q := parseRequest(r)
	m.mu.Lock()
	account := m.owners[bucket]
	m.mu.Unlock()
	if account == "" {
		account = MotoAccount
	}
	return objectEvent{Name: name, Bucket: bucket, Key: key, Region: m.region(bucket), Size: -1,
		Sequencer: nextSequencer(), Time: time.Now().UTC(), Requester: q.access, SourceIP: ip,
		RequestID: requestID, HostID: hostID, Account: account}
}

// deletedEntry is one <Deleted> element of a DeleteObjects answer.
type deletedEntry struct {
	Key                   string `xml:"Key"`
	VersionID             string `xml:"VersionId,omitempty"`
	DeleteMarker          bool   `xml:"DeleteMarker,omitempty"`
	DeleteMarkerVersionID string `xml:"DeleteMarkerVersionId,omitempty"`
}

// objectsDeleted makes the events of the keys a DeleteObjects deleted
// (versitygw lists them even when the request asks it to be quiet).
func (m *Manners) objectsDeleted(r *http.Request, bucket string, deleted []deletedEntry) {
	if !m.events.watching(bucket) {
		return
	}
	resp := &http.Response{Header: http.Header{}}
	for _, d := range deleted {
		ev := m.newEvent(r, resp, bucket, d.Key, "ObjectRemoved:Delete")
		ev.VersionID = d.VersionID
		if d.DeleteMarker && d.VersionID == "" {
			ev.Name, ev.VersionID = "ObjectRemoved:DeleteMarkerCreated", d.DeleteMarkerVersionID
		}
		m.events.emit(ev)
	}
}

// lastSequence is the last sequencer given, as a number.
var lastSequence atomic.Uint64

// nextSequencer is a sequencer greater than every one given before: the
// time in nanoseconds, or one more than the last, as 18 hexadecimal
// digits (S3's are 16 or 18). All have one length, so comparing them as
// strings, padded or not, orders them.
func nextSequencer() string {
	for {
		last := lastSequence.Load()
		next := max(uint64(time.Now().UnixNano()), last+1)
		if lastSequence.CompareAndSwap(last, next) {
			return fmt.Sprintf("%018X", next)
		}
	}
}

// compareSequencers orders two sequencers of one key as the event message
// structure page says to: pad the shorter with zeros on the right, then
// compare as strings.
func compareSequencers(a, b string) int {
	n := max(len(a), len(b))
	a, b = a+strings.Repeat("0", n-len(a)), b+strings.Repeat("0", n-len(b))
	return strings.Compare(strings.ToUpper(a), strings.ToUpper(b))
}

// eventKey is a key as S3's event records show it: URL-encoded as a form
// value (a space as "+", "+" as "%2B"), "/" kept, as S3 sends it (the
// event message structure page; minio issue 11665 on "/").
func eventKey(key string) string { return s3Encode(key) }

// eventTime is S3's eventTime: UTC to the millisecond.
func eventTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// s3Message is S3's event message: one record.
type s3Message struct {
	Records []s3Record `json:"Records"`
}

type s3Record struct {
	EventVersion string `json:"eventVersion"`
	EventSource  string `json:"eventSource"`
	AWSRegion    string `json:"awsRegion"`
	EventTime    string `json:"eventTime"`
	EventName    string `json:"eventName"`
	UserIdentity struct {
		PrincipalID string `json:"principalId"`
	} `json:"userIdentity"`
	RequestParameters struct {
		SourceIPAddress string `json:"sourceIPAddress"`
	} `json:"requestParameters"`
	ResponseElements struct {
		RequestID string `json:"x-amz-request-id"`
		HostID    string `json:"x-amz-id-2"`
	} `json:"responseElements"`
	S3 struct {
		SchemaVersion   string `json:"s3SchemaVersion"`
		ConfigurationID string `json:"configurationId"`
		Bucket          struct {
			Name          string `json:"name"`
			OwnerIdentity struct {
				PrincipalID string `json:"principalId"`
			} `json:"ownerIdentity"`
			ARN string `json:"arn"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      *int64 `json:"size,omitempty"`
			ETag      string `json:"eTag,omitempty"`
			VersionID string `json:"versionId,omitempty"`
			Sequencer string `json:"sequencer,omitempty"`
		} `json:"object"`
	} `json:"s3"`
}

// s3Body is ev as S3 sends it to a destination of configuration id.
// Tagging events are of version 2.3, the others 2.1 (the event message
// structure page); a versionId only on a versioned bucket, a size and an
// eTag on created objects (and the eTag on tagging), a sequencer on
// creates and deletes ("only used with PUTs and DELETEs").
func s3Body(ev objectEvent, id string) string {
	var rec s3Record
	rec.EventVersion, rec.EventSource, rec.AWSRegion = "2.1", "aws:s3", ev.Region
	if strings.HasPrefix(ev.Name, "ObjectTagging:") {
		rec.EventVersion = "2.3"
	}
	rec.EventTime, rec.EventName = eventTime(ev.Time), ev.Name
	rec.UserIdentity.PrincipalID = "AWS:" + ev.Requester
	rec.RequestParameters.SourceIPAddress = ev.SourceIP
	rec.ResponseElements.RequestID, rec.ResponseElements.HostID = ev.RequestID, ev.HostID
	s := &rec.S3
	s.SchemaVersion, s.ConfigurationID = "1.0", id
	s.Bucket.Name, s.Bucket.ARN = ev.Bucket, "arn:aws:s3:::"+ev.Bucket
	s.Bucket.OwnerIdentity.PrincipalID = ev.Account
	s.Object.Key, s.Object.VersionID = eventKey(ev.Key), realVersion(ev.VersionID)
	if strings.HasPrefix(ev.Name, "ObjectCreated:") {
		s.Object.Size = &ev.Size
	}
	if !strings.HasPrefix(ev.Name, "ObjectRemoved:") {
		s.Object.ETag = ev.ETag
	}
	if !strings.HasPrefix(ev.Name, "ObjectTagging:") {
		s.Object.Sequencer = ev.Sequencer
	}
	return marshalEvent(s3Message{Records: []s3Record{rec}})
}

// realVersion is a version id, or "" for none (an unversioned bucket's
// "null").
func realVersion(v string) string {
	if v == "null" {
		return ""
	}
	return v
}

// bridgeEvent is EventBridge's event for S3, as a rule's SQS target
// receives it.
type bridgeEvent struct {
	Version    string       `json:"version"`
	ID         string       `json:"id"`
	DetailType string       `json:"detail-type"`
	Source     string       `json:"source"`
	Account    string       `json:"account"`
	Time       string       `json:"time"`
	Region     string       `json:"region"`
	Resources  []string     `json:"resources"`
	Detail     bridgeDetail `json:"detail"`
}

type bridgeDetail struct {
	Version string `json:"version"`
	Bucket  struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object struct {
		Key       string `json:"key"`
		Size      *int64 `json:"size,omitempty"`
		ETag      string `json:"etag,omitempty"`
		VersionID string `json:"version-id,omitempty"`
		Sequencer string `json:"sequencer,omitempty"`
	} `json:"object"`
	RequestID    string `json:"request-id"`
	Requester    string `json:"requester"`
	SourceIP     string `json:"source-ip-address,omitempty"`
	Reason       string `json:"reason,omitempty"`
	DeletionType string `json:"deletion-type,omitempty"`
}

// bridgeTypes maps S3's event types to EventBridge's detail types and
// reasons (ev-mapping-troubleshooting.html, ev-events.html).
var bridgeTypes = map[string][2]string{
	"ObjectCreated:Put":                     {"Object Created", "PutObject"},
	"ObjectCreated:Copy":                    {"Object Created", "CopyObject"},
	"ObjectCreated:CompleteMultipartUpload": {"Object Created", "CompleteMultipartUpload"},
	"ObjectRemoved:Delete":                  {"Object Deleted", "DeleteObject"},
	"ObjectRemoved:DeleteMarkerCreated":     {"Object Deleted", "DeleteObject"},
	"ObjectTagging:Put":                     {"Object Tags Added", ""},
	"ObjectTagging:Delete":                  {"Object Tags Deleted", ""},
}

// emptyETag is the ETag EventBridge's examples show on a deleted object.
const emptyETag = "d41d8cd98f00b204e9800998ecf8427e"

// bridgeBody is ev as EventBridge delivers it. The key is not URL-encoded:
// the user guide's examples do not say, but events seen from S3 carry
// keys as they are (a ":" unencoded, which S3's records encode), and AWS's
// own media-lake guidance (PR 21) takes EventBridge keys as they come.
func bridgeBody(ev objectEvent) string {
	kind := bridgeTypes[ev.Name]
	e := bridgeEvent{Version: "0", ID: uuid4(), DetailType: kind[0], Source: "aws.s3", Account: ev.Account,
		Time: ev.Time.UTC().Format(time.RFC3339), Region: ev.Region, Resources: []string{"arn:aws:s3:::" + ev.Bucket}}
	d := &e.Detail
	d.Version = "0"
	d.Bucket.Name = ev.Bucket
	d.Object.Key, d.Object.ETag, d.Object.VersionID = ev.Key, ev.ETag, realVersion(ev.VersionID)
	if strings.HasPrefix(ev.Name, "ObjectCreated:") {
		d.Object.Size = &ev.Size
	}
	if !strings.HasPrefix(ev.Name, "ObjectTagging:") {
		d.Object.Sequencer = ev.Sequencer
	}
	d.RequestID, d.Requester, d.SourceIP, d.Reason = ev.RequestID, ev.Account, ev.SourceIP, kind[1]
	switch ev.Name {
	case "ObjectRemoved:Delete":
		d.Object.ETag, d.DeletionType = emptyETag, "Permanently Deleted"
	case "ObjectRemoved:DeleteMarkerCreated":
		d.Object.ETag, d.DeletionType = emptyETag, "Delete Marker Created"
	}
	return marshalEvent(e)
}

// marshalEvent writes v as AWS does: without Go's escaping of <, > and &.
func marshalEvent(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // these types always encode
	return strings.TrimSuffix(b.String(), "\n")
}

// EventManners are how a bucket's events reach their queues. The zero
// value sends each event once, at once.
type EventManners struct {
	// Delay holds every event this long before it is sent.
	Delay time.Duration
	// Jitter holds each delivery a further random 0..Jitter, which
	// reorders events that are close together.
	Jitter time.Duration
	// Duplicate is the probability (0..1) that a delivery is sent twice,
	// the copy a little later: S3 delivers at least once.
	Duplicate float64
	// Coalesce makes the object-created events of one key of an
	// unversioned bucket within this window of the first one event: the
	// first's (its ETag and size), sent when the window closes. S3 says it
	// may send one notification for two writes at the same time.
	Coalesce time.Duration
}

// EventStats count a test bed's events since it started.
type EventStats struct {
	Sent      int // messages sent to queues, copies included, test events not
	Pending   int // deliveries due, not yet sent
	Coalesced int // events not sent because an earlier one stood for them
	Failed    int // deliveries SQS refused three times (a deleted queue)
}

// Events sets how bucket's events are delivered, from now on.
func (m *Manners) Events(bucket string, e EventManners) {
	h := m.events
	h.mu.Lock()
	defer h.mu.Unlock()
	h.manners[bucket] = e
}

// HoldNext holds the next event of bucket/key d longer than its manners
// would, so that it arrives after events made later.
func (m *Manners) HoldNext(bucket, key string, d time.Duration) {
	h := m.events
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holds[bucket+"/"+key] += d
}

// EventBridgeRule stands for an EventBridge rule matching bucket's events
// whose target is the queue at queueURL: once the bucket's configuration
// enables EventBridge, every event of the bucket is sent there, as
// EventBridge delivers it to SQS (the bare event as the message body).
func (m *Manners) EventBridgeRule(bucket, queueURL string) {
	h := m.events
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rules[bucket] = append(h.rules[bucket], queueURL)
}

// EventsPending is the number of deliveries made and not yet sent.
func (m *Manners) EventsPending() int { return m.EventStats().Pending }

// EventsSent is the number of event messages sent to queues so far.
func (m *Manners) EventsSent() int { return m.EventStats().Sent }

// EventStats counts the events so far.
func (m *Manners) EventStats() EventStats {
	h := m.events
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

// EventsSettled waits until every delivery made so far has been sent (or
// has failed), or ctx ends. Each write's events are made before the write
// is answered, so after a write returns, EventsSettled covers them.
func (m *Manners) EventsSettled(ctx context.Context) error { return m.events.settled(ctx) }

// settled waits until nothing is pending, or ctx ends.
func (h *eventHub) settled(ctx context.Context) error {
	for {
		h.mu.Lock()
		if h.stats.Pending == 0 {
			h.mu.Unlock()
			return nil
		}
		idle := h.idle
		h.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			h.mu.Lock()
			n := h.stats.Pending
			h.mu.Unlock()
			return fmt.Errorf("%d event deliveries pending: %w", n, ctx.Err())
		}
	}
}

// delivery is one message due to one queue.
type delivery struct {
	due   time.Time
	order uint64 // ties broken in the order made
	queue string
	body  string
}

type deliveries []delivery

func (d deliveries) Len() int { return len(d) }
func (d deliveries) Less(i, j int) bool {
	return d[i].due.Before(d[j].due) || d[i].due.Equal(d[j].due) && d[i].order < d[j].order
}
func (d deliveries) Swap(i, j int) { d[i], d[j] = d[j], d[i] }
func (d *deliveries) Push(x any)   { *d = append(*d, x.(delivery)) }
func (d *deliveries) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

// eventHub keeps the configurations and sends the events: one goroutine
// holds the deliveries in the order they are due and hands each, when
// due, to one of a few senders.
type eventHub struct {
	send func(ctx context.Context, queueURL, body string) error

	mu      sync.Mutex
	configs map[string]*notificationConfig // bucket -> configuration
	rules   map[string][]string            // bucket -> EventBridge rule targets
	manners map[string]EventManners        // bucket -> delivery manners
	holds   map[string]time.Duration       // bucket/key -> extra hold of its next event
	windows map[string]time.Time           // bucket/key -> end of its coalescing window
	due     deliveries
	made    uint64
	stats   EventStats
	idle    chan struct{} // closed when nothing is pending
	wake    chan struct{}
	stop    chan struct{}
	start   sync.Once
	closed  bool
}

// eventSenders is how many deliveries go to SQS at once.
const eventSenders = 4

func newEventHub(send func(ctx context.Context, queueURL, body string) error) *eventHub {
	idle := make(chan struct{})
	close(idle)
	return &eventHub{send: send, configs: map[string]*notificationConfig{}, rules: map[string][]string{},
		manners: map[string]EventManners{}, holds: map[string]time.Duration{}, windows: map[string]time.Time{},
		idle: idle, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// sqsSender sends a message with the test bed's SQS client.
func (e *Env) sqsSender(ctx context.Context, queueURL, body string) error {
	_, err := e.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(body)})
	return err
}

// configure sets bucket's configuration; with no destination it has none.
func (h *eventHub) configure(bucket string, c *notificationConfig) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(c.Topics)+len(c.Queues)+len(c.Functions) == 0 && c.EventBridge == nil {
		delete(h.configs, bucket)
		return
	}
	h.configs[bucket] = c
}

// configuration is bucket's configuration as GET answers it.
func (h *eventHub) configuration(bucket string) notificationConfig {
	h.mu.Lock()
	defer h.mu.Unlock()
	var c notificationConfig
	if kept := h.configs[bucket]; kept != nil {
		c = *kept
	}
	c.XMLName, c.Xmlns = xml.Name{}, s3Namespace
	return c
}

// watching reports whether bucket has a configuration, so writes to it
// make events.
func (h *eventHub) watching(bucket string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.configs[bucket] != nil
}

// emit makes ev's deliveries: one to each matching queue configuration,
// one to each EventBridge rule target, each held by the bucket's manners.
func (h *eventHub) emit(ev objectEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.configs[ev.Bucket]
	if c == nil || h.closed {
		return
	}
	type target struct{ queue, body string }
	var targets []target
	for _, d := range c.Queues {
		if d.matches("s3:"+ev.Name, ev.Key) {
			targets = append(targets, target{d.queueURL, s3Body(ev, d.ID)})
		}
	}
	if c.EventBridge != nil {
		for _, q := range h.rules[ev.Bucket] {
			targets = append(targets, target{q, bridgeBody(ev)})
		}
	}
	if len(targets) == 0 {
		return
	}
	k, id := h.manners[ev.Bucket], ev.Bucket+"/"+ev.Key
	base := ev.Time.Add(k.Delay + h.holds[id])
	delete(h.holds, id)
	if k.Coalesce > 0 && strings.HasPrefix(ev.Name, "ObjectCreated:") && realVersion(ev.VersionID) == "" {
		if ev.Time.Before(h.windows[id]) {
			h.stats.Coalesced++
			return
		}
		h.windows[id] = ev.Time.Add(k.Coalesce)
		base = maxTime(base, h.windows[id])
	}
	for _, t := range targets {
		due := base.Add(randomUpTo(k.Jitter))
		h.push(delivery{due: due, queue: t.queue, body: t.body})
		if k.Duplicate > 0 && mrand.Float64() < k.Duplicate {
			h.push(delivery{due: due.Add(10*time.Millisecond + randomUpTo(max(k.Jitter, 50*time.Millisecond))), queue: t.queue, body: t.body})
		}
	}
	h.start.Do(func() { go h.run() })
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// push adds a delivery; the caller holds h.mu.
func (h *eventHub) push(d delivery) {
	h.made++
	d.order = h.made
	heap.Push(&h.due, d)
	if h.stats.Pending == 0 {
		h.idle = make(chan struct{})
	}
	h.stats.Pending++
}

// run hands each delivery, when due, to a sender, until close.
func (h *eventHub) run() {
	work := make(chan delivery)
	defer close(work)
	for range eventSenders {
		go h.sender(work)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h.mu.Lock()
		wait := time.Hour
		if len(h.due) > 0 {
			wait = time.Until(h.due[0].due)
		}
		if wait <= 0 {
			d := heap.Pop(&h.due).(delivery)
			h.mu.Unlock()
			select {
			case work <- d:
			case <-h.stop:
				return
			}
			continue
		}
		h.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-h.wake:
		case <-h.stop:
			return
		}
	}
}

// sender sends deliveries, trying each three times.
func (h *eventHub) sender(work <-chan delivery) {
	for d := range work {
		var err error
		for attempt := range 3 {
			if attempt > 0 {
				select {
				case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
				case <-h.stop:
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = h.send(ctx, d.queue, d.body)
			cancel()
			if err == nil {
				break
			}
		}
		h.mu.Lock()
		if err != nil {
			h.stats.Failed++
		} else {
			h.stats.Sent++
		}
		h.stats.Pending--
		if h.stats.Pending == 0 {
			close(h.idle)
		}
		h.mu.Unlock()
	}
}

// close stops sending; deliveries not yet sent are dropped.
func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.stop)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// randomUpTo is a random duration in [0, d].
func randomUpTo(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// randomID is an identifier such as S3 gives an unnamed configuration.
func randomID() string { return randomHex(16) }

// uuid4 is a random (version 4) UUID, as EventBridge gives each event.
func uuid4() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
