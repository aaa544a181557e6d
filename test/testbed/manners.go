package testbed

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Manners is a proxy in front of the local S3 server that answers as
// Amazon S3 does where versitygw is more forgiving, or where S3 has
// features versitygw lacks. Every binary a test runs reaches S3 through it
// (Env.S3Endpoint). Always on:
//   - ListObjectsV2 honours encoding-type=url (versitygw ignores it and
//     writes a control character in a key as U+FFFD), and without it
//     writes names as S3 does, unreadable to XML parsers;
//   - DeleteObjects honours each object's ETag (S3's conditional delete;
//     versitygw deletes regardless);
//   - HeadBucket answers a request signed for the wrong region with 301
//     and the bucket's region, as S3 does;
//   - a caller without s3:ListBucket on a bucket (by the bucket's policy,
//     which versitygw keeps) gets 403, not 404, for a key that does not
//     exist there, as S3 answers (versitygw answers 404 to everyone);
//   - ListObjectVersions (versions.go) gives each version and delete
//     marker written through the proxy the LastModified of when it was
//     written (versitygw gives an entry no longer current the time it was
//     superseded), lists them in S3's order (each key's newest first, where
//     versitygw lists a page's delete markers before its versions), pages
//     by S3's markers (versitygw's key-marker is inclusive, and some
//     version-id-markers repeat or lose entries), and honours
//     encoding-type=url.
//
// Switched on per bucket, prefix or access key by a test:
//   - Region: the bucket lives in another region, served by a second
//     versitygw (same data) that refuses requests signed for any other;
//   - Expire: a caller's credentials are refused as ExpiredToken;
//   - Archive: keys under a prefix are in GLACIER (listed so, and 403
//     InvalidObjectState to a read or copy);
//   - KMS: keys under a prefix read as SSE-KMS objects: ETags that are not
//     the MD5 of the body (different in each bucket), and the header;
//   - SSEC: keys under a prefix are encrypted with a customer key: 400 to
//     a read or copy without it;
//   - LoseUploads: the first multipart upload of each key under a prefix
//     is aborted just before it is completed (as a lifecycle rule that
//     aborts incomplete uploads would), and its completion answered 404
//     NoSuchUpload;
//   - RequireOnWrite: a bucket's policy refuses writes without a canned
//     ACL or an encryption (403 AccessDenied), as the S3 user guide's
//     policies requiring bucket-owner-full-control or SSE-KMS do;
//   - event notifications (events.go): a bucket's notification
//     configuration (PUT and GET ?notification, kept here), and S3's event
//     messages for every write, sent to local SQS queues, and EventBridge's
//     to the queues of EventBridgeRule; Events and HoldNext delay,
//     reorder, duplicate and coalesce them.
//
// An object written with x-amz-server-side-encryption: aws:kms reads back
// as SSE-KMS (versitygw ignores the header), and Written tells what every
// write asked for (versitygw keeps no storage class).
type Manners struct {
	URL string
	env *Env

	mu       sync.Mutex
	servers  map[string]string                  // region -> versitygw endpoint
	regions  map[string]string                  // bucket -> region (absent: Region)
	secrets  map[string]string                  // access key -> secret key, for re-signing
	canList  map[[2]string]listRight            // (access key, bucket) -> may it list, lately
	expired  map[string]bool                    // access keys refused as expired
	prefixes map[string]map[string][]string     // manner -> bucket -> key prefixes
	lost     map[string]bool                    // bucket/key whose upload was lost
	require  map[string]Written                 // bucket -> what its writes must ask for
	written  map[string]Written                 // bucket/key -> what its last write asked for
	uploads  map[string]types.ChecksumAlgorithm // upload id -> the checksum it asked for
	// annotations: bucket/key -> name -> annotation (annotations.go)
	annotations map[string]map[string]annotation
	owners      map[string]string      // bucket -> the account that owns it (owners.go)
	payers      map[string]bool        // Requester Pays buckets
	unchecked   map[string]int64       // bucket -> requests that did not say its owner
	defaults    map[string]defaultRule // bucket -> its default retention, lately (lock.go)
	events      *eventHub              // S3 event notifications (events.go)
	versions    *versionBook           // when each version was written (versions.go)
}

// Written is what a write (PutObject, CopyObject, CreateMultipartUpload)
// asked of the object it wrote.
type Written struct {
	ACL, SSE, KMSKeyID, StorageClass string
}

// Per-prefix manners.
const (
	mannerArchive = "archive"
	mannerKMS     = "kms"
	mannerSSEC    = "ssec"
	mannerLose    = "lose-uploads"
)

func (e *Env) startManners() {
	m := &Manners{env: e, servers: map[string]string{Region: e.S3Direct}, regions: map[string]string{},
		secrets: map[string]string{AccessKey: SecretKey}, canList: map[[2]string]listRight{}, expired: map[string]bool{},
		prefixes: map[string]map[string][]string{}, lost: map[string]bool{}, require: map[string]Written{}, written: map[string]Written{},
		uploads: map[string]types.ChecksumAlgorithm{}, annotations: map[string]map[string]annotation{},
		owners: map[string]string{}, payers: map[string]bool{}, defaults: map[string]defaultRule{}, unchecked: map[string]int64{},
		events: newEventHub(e.sqsSender), versions: newVersionBook(time.Now)}
	srv := httptest.NewServer(m)
	e.manners, e.mannersSrv = m, srv
	m.URL = srv.URL
	e.S3Endpoint = srv.URL
}

// Manners is the proxy every binary reaches S3 through.
func (e *Env) Manners() *Manners { return e.manners }

// Region puts bucket in region: from now on it answers only requests
// signed for that region, and says so as S3 does. The first use of a
// region starts a versitygw for it over the same data.
func (m *Manners) Region(t testing.TB, bucket, region string) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.servers[region]; !ok {
		endpoint, err := m.env.startRegion(region)
		if err != nil {
			t.Fatal(err)
		}
		m.servers[region] = endpoint
	}
	m.regions[bucket] = region
}

// mayGet reports whether the caller may read key (s3:GetObject), as
// versitygw judges by the bucket's policy: a HEAD in the caller's name
// refused with 403.
func (m *Manners) mayGet(ctx context.Context, access, bucket, key string) bool {
	if access == AccessKey || access == "" {
		return true
	}
	_, err := m.callerClient(access, bucket).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return !forbidden(err)
}

// callerClient asks versitygw in the caller's name (its access key and
// the secret the test gave it), without retries.
func (m *Manners) callerClient(access, bucket string) *s3.Client {
	m.mu.Lock()
	secret := m.secrets[access]
	m.mu.Unlock()
	return s3.New(m.client(bucket).Options(), func(o *s3.Options) {
		o.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(access, secret, ""))
		o.RetryMaxAttempts = 1
	})
}

// forbidden reports a 403 answer.
func forbidden(err error) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}

// mayDeleteMissing reports whether the caller may delete key, which is
// not there, as versitygw judges by the bucket's policy: asked with an
// unconditional delete in the caller's name, which deletes nothing (on a
// versioned bucket it leaves a delete marker on the missing key, which
// listings do not show).
func (m *Manners) mayDeleteMissing(ctx context.Context, access, bucket, key string) bool {
	if access == AccessKey || access == "" {
		return true
	}
	_, err := m.callerClient(access, bucket).DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return !forbidden(err)
}

// listRight is whether a caller may list a bucket, as found at a time.
type listRight struct {
	may bool
	at  time.Time
}

// mayList reports whether the caller may list bucket (s3:ListBucket), as
// versitygw judges by the bucket's policy: asked with an empty listing in
// the caller's name, and remembered for a second (tests change policies).
func (m *Manners) mayList(ctx context.Context, access, bucket string) bool {
	if access == AccessKey || access == "" {
		return true // the root user may do anything
	}
	m.mu.Lock()
	known, ok := m.canList[[2]string{access, bucket}]
	m.mu.Unlock()
	if ok && time.Since(known.at) < time.Second {
		return known.may
	}
	_, err := m.callerClient(access, bucket).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)})
	may := err == nil
	m.mu.Lock()
	m.canList[[2]string{access, bucket}] = listRight{may, time.Now()}
	m.mu.Unlock()
	return may
}

// Expire refuses every request signed with access key (or lets them
// through again, with false) as S3 refuses an expired session's.
func (m *Manners) Expire(access string, expired bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expired[access] = expired
}

// Archive puts the keys under prefix in bucket in GLACIER.
func (m *Manners) Archive(bucket, prefix string) { m.addPrefix(mannerArchive, bucket, prefix) }

// KMS makes the keys under prefix in bucket read as SSE-KMS objects.
func (m *Manners) KMS(bucket, prefix string) { m.addPrefix(mannerKMS, bucket, prefix) }

// SSEC makes the keys under prefix in bucket SSE-C objects.
func (m *Manners) SSEC(bucket, prefix string) { m.addPrefix(mannerSSEC, bucket, prefix) }

// RequireOnWrite refuses, as the bucket's policy would, every write into
// bucket that does not ask for want's ACL and encryption (each "" for
// either): the policies of the S3 user guide's "Granting cross-account
// permissions to upload objects while ensuring the bucket owner has full
// control" (a Deny unless s3:x-amz-acl is bucket-owner-full-control) and
// "Requiring server-side encryption with AWS KMS keys" (a Deny unless
// s3:x-amz-server-side-encryption is aws:kms). S3 evaluates these on
// PutObject, CopyObject and CreateMultipartUpload; versitygw cannot, as it
// never reads the encryption header.
func (m *Manners) RequireOnWrite(bucket string, want Written) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.require[bucket] = want
}

// Written is what the last write of bucket/key through the proxy asked
// for, and whether there was one.
func (m *Manners) Written(bucket, key string) (Written, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.written[bucket+"/"+key]
	return w, ok
}

// writeOf is what r asks of the object it writes, if it is a write.
func writeOf(r *http.Request, q request) (Written, bool) {
	query := r.URL.Query()
	create := r.Method == http.MethodPost && query.Has("uploads")
	put := r.Method == http.MethodPut && !query.Has("partNumber") && !query.Has("tagging") && !query.Has("acl") &&
		!query.Has("retention") && !query.Has("legal-hold")
	if q.key == "" || !(create || put) {
		return Written{}, false
	}
	h := r.Header
	return Written{ACL: h.Get("X-Amz-Acl"), SSE: h.Get("X-Amz-Server-Side-Encryption"),
		KMSKeyID: h.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"), StorageClass: h.Get("X-Amz-Storage-Class")}, true
}

// refusesWrite reports a write bucket's policy refuses.
func (m *Manners) refusesWrite(w Written, bucket string) bool {
	m.mu.Lock()
	want, ok := m.require[bucket]
	m.mu.Unlock()
	return ok && ((want.ACL != "" && w.ACL != want.ACL) || (want.SSE != "" && w.SSE != want.SSE))
}

// wrote notes a write that succeeded: what it asked for, and whether its
// object now reads as SSE-KMS.
func (m *Manners) wrote(bucket, key string, w Written) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.written[bucket+"/"+key] = w
}

// encryptedKMS reports an object that reads as SSE-KMS: under a KMS
// prefix, or last written asking for it.
func (m *Manners) encryptedKMS(bucket, key string) bool {
	if m.has(mannerKMS, bucket, key) {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.written[bucket+"/"+key].SSE == "aws:kms"
}

// LoseUploads aborts the first multipart upload of each key under prefix
// in bucket as it is being completed, answering NoSuchUpload.
func (m *Manners) LoseUploads(bucket, prefix string) { m.addPrefix(mannerLose, bucket, prefix) }

// loseUpload aborts r's multipart upload if it is a completion LoseUploads
// applies to and the key has not lost one yet.
func (m *Manners) loseUpload(r *http.Request, q request) bool {
	id := r.URL.Query().Get("uploadId")
	if r.Method != http.MethodPost || id == "" || q.key == "" || !m.has(mannerLose, q.bucket, q.key) {
		return false
	}
	m.mu.Lock()
	if m.lost[q.bucket+"/"+q.key] {
		m.mu.Unlock()
		return false
	}
	m.lost[q.bucket+"/"+q.key] = true
	m.mu.Unlock()
	_, err := m.client(q.bucket).AbortMultipartUpload(r.Context(), &s3.AbortMultipartUploadInput{
		Bucket: aws.String(q.bucket), Key: aws.String(q.key), UploadId: aws.String(id)})
	return err == nil
}

func (m *Manners) addPrefix(manner, bucket, prefix string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.prefixes[manner] == nil {
		m.prefixes[manner] = map[string][]string{}
	}
	m.prefixes[manner][bucket] = append(m.prefixes[manner][bucket], prefix)
}

func (m *Manners) has(manner, bucket, key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.prefixes[manner][bucket] {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (m *Manners) region(bucket string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.regions[bucket]; ok {
		return r
	}
	return Region
}

func (m *Manners) server(bucket string) string {
	r := m.region(bucket)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.servers[r]
}

// client is a root client of the server holding bucket, signing for its region.
func (m *Manners) client(bucket string) *s3.Client {
	c := m.env.Client(m.server(bucket))
	return s3.New(c.Options(), func(o *s3.Options) { o.Region = m.region(bucket) })
}

// Client is a root client reaching bucket through the proxy, signing for
// the bucket's region: a test's view of S3 as the binaries see it.
func (m *Manners) Client(bucket string) *s3.Client {
	c := m.env.Client(m.URL)
	return s3.New(c.Options(), func(o *s3.Options) { o.Region = m.region(bucket) })
}

// request is what the proxy reads of one S3 request.
type request struct {
	bucket, key           string
	access, region        string
	srcBucket, srcKey     string // of a copy
	srcVersion            string // of a copy of a version
	head, get, list, dels bool
}

var credentialRE = regexp.MustCompile(`Credential=([^/]+)/\d{8}/([^/]+)/`)

func parseRequest(r *http.Request) request {
	var q request
	path := strings.TrimPrefix(r.URL.Path, "/")
	q.bucket, q.key, _ = strings.Cut(path, "/")
	if c := credentialRE.FindStringSubmatch(r.Header.Get("Authorization")); c != nil {
		q.access, q.region = c[1], c[2]
	}
	if src := r.Header.Get("X-Amz-Copy-Source"); src != "" {
		path, query, _ := strings.Cut(strings.TrimPrefix(src, "/"), "?")
		if s, err := url.PathUnescape(path); err == nil {
			q.srcBucket, q.srcKey, _ = strings.Cut(s, "/")
		}
		if v, err := url.ParseQuery(query); err == nil {
			q.srcVersion = v.Get("versionId")
		}
	}
	query := r.URL.Query()
	q.head = r.Method == http.MethodHead && q.key != ""
	q.get = r.Method == http.MethodGet && q.key != "" && !query.Has("tagging") && !query.Has("uploadId")
	q.list = r.Method == http.MethodGet && q.key == "" && q.bucket != "" && query.Get("list-type") == "2"
	q.dels = r.Method == http.MethodPost && q.key == "" && query.Has("delete")
	return q
}

func (m *Manners) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := parseRequest(r)
	m.mu.Lock()
	expired := m.expired[q.access]
	m.mu.Unlock()
	switch {
	case expired:
		s3Error(w, http.StatusBadRequest, "ExpiredToken", "The provided token has expired.")
		return
	case r.Method == http.MethodHead && q.key == "" && q.bucket != "" && q.region != m.region(q.bucket):
		w.Header().Set("X-Amz-Bucket-Region", m.region(q.bucket))
		w.WriteHeader(http.StatusMovedPermanently)
		return
	case q.srcBucket != "" && m.has(mannerSSEC, q.srcBucket, q.srcKey),
		(q.get || q.head) && m.has(mannerSSEC, q.bucket, q.key):
		s3Error(w, http.StatusBadRequest, "InvalidRequest", "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.")
		return
	case q.srcBucket != "" && m.has(mannerArchive, q.srcBucket, q.srcKey),
		q.get && m.has(mannerArchive, q.bucket, q.key):
		s3Error(w, http.StatusForbidden, "InvalidObjectState", "The operation is not valid for the object's storage class")
		return
	case m.loseUpload(r, q):
		s3Error(w, http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
		return
	}
	if m.refusesOwnership(r, q) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return
	}
	if err := m.dropOwnership(r); err != nil {
		s3Error(w, http.StatusInternalServerError, "InternalError", "manners: "+err.Error())
		return
	}
	if annotationRequest(r, q) {
		m.serveAnnotation(w, r, q)
		return
	}
	if notificationRequest(r, q) {
		m.serveNotification(w, r, q)
		return
	}
	if r.Method == http.MethodDelete && q.key != "" && r.Header.Get("If-Match") != "" && m.refuseConditionalDelete(w, r, q) {
		return
	}
	write, isWrite := writeOf(r, q)
	if isWrite && m.refusesWrite(write, q.bucket) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return
	}
	if err := m.rewriteRequest(r, q); err != nil {
		s3Error(w, http.StatusInternalServerError, "InternalError", "manners: "+err.Error())
		return
	}
	if q.dels {
		m.deleteObjects(w, r, q)
		return
	}
	var versions versionsAsked
	if listsVersions(r, q) {
		var err error
		if versions, err = askedFor(r); err != nil {
			s3Error(w, http.StatusBadRequest, "InvalidArgument", err.Error())
			return
		}
		if r.Header.Get("Authorization") != "" { // signed in its headers: it can be signed again
			widen(r)
			if err := m.resign(r, nil); err != nil {
				s3Error(w, http.StatusInternalServerError, "InternalError", "manners: "+err.Error())
				return
			}
		}
	}
	target, _ := url.Parse(m.server(q.bucket))
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the client signed this Host
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode == http.StatusOK {
				completed := r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
				if isWrite {
					m.wrote(q.bucket, q.key, write)
				}
				if (isWrite && !r.URL.Query().Has("uploads")) || completed {
					m.replaced(r, q)
					if err := m.applyDefaultRetention(r, q); err != nil {
						return err
					}
				}
				var err error
				switch query := r.URL.Query(); {
				case r.Method == http.MethodPost && query.Has("uploads"):
					err = m.noteUpload(resp, r)
				case r.Method == http.MethodPut && query.Has("partNumber") && q.srcBucket != "":
					err = m.fixPartChecksum(resp, r, q)
				}
				if err != nil {
					return err
				}
			}
			if err := m.versions.note(resp, r, q); err != nil {
				return err
			}
			m.noteEvent(resp, r, q)
			if err := m.rewriteResponse(resp, r, q); err != nil {
				return err
			}
			if listsVersions(r, q) {
				return m.versions.rewrite(resp, q, versions)
			}
			return nil
		},
	}
	proxy.ServeHTTP(w, r)
}

// rewriteRequest translates what the client sent in S3's terms into what
// versitygw understands: an If-Match on an emulated SSE-KMS ETag becomes
// the real one (then the request is signed again).
func (m *Manners) rewriteRequest(r *http.Request, q request) error {
	changed := false
	for _, h := range []struct{ header, bucket, key string }{
		{"If-Match", q.bucket, q.key},
		{"X-Amz-Copy-Source-If-Match", q.srcBucket, q.srcKey},
	} {
		v := r.Header.Get(h.header)
		if v == "" || !m.encryptedKMS(h.bucket, h.key) {
			continue
		}
		real, err := m.realETag(r.Context(), h.bucket, h.key)
		if err != nil {
			continue // a missing object: let the server answer for it
		}
		if strings.Trim(v, `"`) == strings.Trim(kmsETag(h.bucket, h.key, real), `"`) {
			r.Header.Set(h.header, real)
			changed = true
		}
	}
	if _, isWrite := writeOf(r, q); isWrite && decodeMetadata(r.Header) {
		changed = true
	}
	if !changed {
		return nil
	}
	return m.resign(r, nil)
}

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

func (m *Manners) realETag(ctx context.Context, bucket, key string) (string, error) {
	out, err := m.client(bucket).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// shownETag is the ETag bucket/key shows a client, given its real one.
func (m *Manners) shownETag(bucket, key, real string) string {
	if m.encryptedKMS(bucket, key) {
		return kmsETag(bucket, key, real)
	}
	return real
}

// kmsETag is the ETag an emulated SSE-KMS object shows: not the MD5 of its
// body, and different for the same body in another bucket or key.
func kmsETag(bucket, key, real string) string {
	sum := md5.Sum([]byte("kms\x00" + bucket + "\x00" + key + "\x00" + strings.Trim(real, `"`)))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// resign signs r again with its caller's secret, over body when it was
// replaced (nil: the payload hash the client sent stands).
func (m *Manners) resign(r *http.Request, body []byte) error {
	q := parseRequest(r)
	m.mu.Lock()
	secret, ok := m.secrets[q.access]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("no secret known for %q", q.access)
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if body != nil {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
		r.Header.Set("X-Amz-Content-Sha256", hash)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %w", err)
	}
	r.Header.Del("Authorization")
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	return signer.SignHTTP(r.Context(), aws.Credentials{AccessKeyID: q.access, SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")},
		r, hash, "s3", q.region, when)
}

// rewriteResponse makes versitygw's answer S3's.
func (m *Manners) rewriteResponse(resp *http.Response, r *http.Request, q request) error {
	// S3 names a bucket's region on HeadBucket's answers, and on a refusal
	// of a request signed for another region; not on other answers.
	headBucket := r.Method == http.MethodHead && q.bucket != "" && q.key == ""
	wrongRegion := q.bucket != "" && q.region != "" && q.region != m.region(q.bucket) && resp.StatusCode >= 300
	if headBucket || wrongRegion {
		resp.Header.Set("X-Amz-Bucket-Region", m.region(q.bucket))
	} else {
		resp.Header.Del("X-Amz-Bucket-Region")
	}
	if q.head || q.get {
		encodeMetadata(resp.Header)
	}
	missing := resp.StatusCode == http.StatusNotFound
	switch {
	case missing && (q.head || q.get) && !m.mayList(r.Context(), q.access, q.bucket),
		missing && q.srcBucket != "" && !m.mayList(r.Context(), q.access, q.srcBucket):
		return replaceWithError(resp, http.StatusForbidden, "AccessDenied", "Access Denied", q.head)
	case resp.StatusCode != http.StatusOK:
		return nil
	case (q.head || q.get) && m.encryptedKMS(q.bucket, q.key):
		resp.Header.Set("ETag", kmsETag(q.bucket, q.key, resp.Header.Get("ETag")))
		resp.Header.Set("X-Amz-Server-Side-Encryption", "aws:kms")
	case q.head && m.has(mannerArchive, q.bucket, q.key):
		resp.Header.Set("X-Amz-Storage-Class", "GLACIER")
	case q.list:
		return m.rewriteList(resp, r, q)
	case q.srcBucket != "" && m.encryptedKMS(q.bucket, q.key) && r.URL.Query().Get("partNumber") == "":
		return rewriteBody(resp, func(b []byte) []byte {
			return etagRE.ReplaceAllFunc(b, func(tag []byte) []byte {
				real := string(etagRE.FindSubmatch(tag)[1])
				return []byte("<ETag>" + xmlEscape(kmsETag(q.bucket, q.key, xmlUnescape(real))) + "</ETag>")
			})
		})
	}
	return nil
}

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

// xmlSanitized is name as Go's XML writer (versitygw's) writes it: every
// character XML 1.0 cannot hold made U+FFFD.
func xmlSanitized(name string) string {
	return strings.Map(func(r rune) rune {
		if !xmlChar(r) {
			return '\uFFFD'
		}
		return r
	}, name)
}

func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// s3XML writes a name as S3 does without encoding-type: escaped, with
// characters XML cannot hold as character references and a carriage
// return raw.
func s3XML(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == '\r':
			b.WriteByte('\r')
		case !xmlChar(r):
			fmt.Fprintf(&b, "&#x%X;", r)
		default:
			b.WriteString(xmlEscape(string(r)))
		}
	}
	return b.String()
}

// s3Encode encodes a name as S3 does for encoding-type=url: form encoding,
// a space as "+", "/" kept.
func s3Encode(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "%2F", "/")
}

func xmlUnescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var out strings.Builder
	d := xml.NewDecoder(strings.NewReader("<x>" + s + "</x>"))
	d.Strict = false
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if cd, ok := tok.(xml.CharData); ok {
			out.Write(cd)
		}
	}
	return out.String()
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}

func rewriteBody(resp *http.Response, fn func([]byte) []byte) error {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	body = fn(body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Md5")
	return nil
}

func replaceWithError(resp *http.Response, status int, code, msg string, head bool) error {
	resp.Body.Close()
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>manners</RequestId></Error>`, code, msg)
	if head {
		body = "" // HEAD answers carry no body
	}
	resp.StatusCode, resp.Status = status, fmt.Sprintf("%d %s", status, http.StatusText(status))
	resp.Body = io.NopCloser(strings.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Content-Type", "application/xml")
	resp.Header.Del("ETag")
	return nil
}

// refuseConditionalDelete answers a DeleteObject with If-Match as S3 does
// where versitygw does not (the S3 user guide, "How to perform conditional
// deletes"): 403 to a caller without s3:GetObject, which a delete
// conditional on an ETag needs besides s3:DeleteObject, 403 to one without
// s3:DeleteObject, and 404 NoSuchKey for a key that is not there
// (versitygw answers 204). It reports whether
// it answered; if not, versitygw judges the ETag.
func (m *Manners) refuseConditionalDelete(w http.ResponseWriter, r *http.Request, q request) bool {
	if !m.mayGet(r.Context(), q.access, q.bucket, q.key) {
		s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
		return true
	}
	if _, err := m.realETag(r.Context(), q.bucket, q.key); err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			// S3 authorizes before it evaluates the condition: a caller
			// without s3:DeleteObject gets 403, not 404.
			if !m.mayDeleteMissing(r.Context(), q.access, q.bucket, q.key) {
				s3Error(w, http.StatusForbidden, "AccessDenied", "Access Denied")
				return true
			}
			s3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
			return true
		}
	}
	return false
}

var objectRE = regexp.MustCompile(`(?s)<Object>(.*?)</Object>`)

// deleteObjects deletes, as S3 does, only the objects whose ETag (when the
// request names one) is still the one given: the others come back as
// PreconditionFailed errors. The rest goes to versitygw, signed again.
func (m *Manners) deleteObjects(w http.ResponseWriter, r *http.Request, q request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s3Error(w, http.StatusBadRequest, "IncompleteBody", err.Error())
		return
	}
	var refused, denied, gone []string
	kept := objectRE.ReplaceAllFunc(body, func(o []byte) []byte {
		k, e := keyRE.FindSubmatch(o), etagRE.FindSubmatch(o)
		if k == nil || e == nil {
			return o
		}
		key := xmlUnescape(string(k[1]))
		// S3 requires s3:GetObject of a delete conditional on an ETag.
		if !m.mayGet(r.Context(), q.access, q.bucket, key) {
			denied = append(denied, key)
			return []byte{}
		}
		want := strings.Trim(xmlUnescape(string(e[1])), `"`)
		real, err := m.realETag(r.Context(), q.bucket, key)
		if err != nil {
			gone = append(gone, key) // gone already: nothing to delete (S3 says deleted)
			return []byte{}
		}
		if m.encryptedKMS(q.bucket, key) {
			real = kmsETag(q.bucket, key, real)
		}
		if strings.Trim(real, `"`) != want {
			refused = append(refused, key)
			return []byte{}
		}
		return etagRE.ReplaceAll(o, nil) // versitygw would not know what to make of it
	})
	var result struct {
		XMLName xml.Name       `xml:"DeleteResult"`
		Deleted []deletedEntry `xml:"Deleted"`
		Errors  []struct {
			Key     string `xml:"Key"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		} `xml:"Error"`
	}
	if bytes.Contains(kept, []byte("<Object>")) {
		setChecksums(r, kept)
		if err := m.resign(r, kept); err != nil {
			s3Error(w, http.StatusInternalServerError, "InternalError", "manners: "+err.Error())
			return
		}
		target, _ := url.Parse(m.server(q.bucket))
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		r.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			s3Error(w, http.StatusBadGateway, "InternalError", err.Error())
			return
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body) // an answer cut short fails the decode below
		if resp.StatusCode != http.StatusOK {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(data) // the client sees a broken answer as such
			return
		}
		if err := xml.Unmarshal(data, &result); err != nil {
			s3Error(w, http.StatusBadGateway, "InternalError", "manners: "+err.Error())
			return
		}
	}
	m.versions.deleted(q.bucket, result.Deleted)
	for _, k := range gone {
		result.Deleted = append(result.Deleted, deletedEntry{Key: k})
	}
	m.objectsDeleted(r, q.bucket, result.Deleted)
	if bytes.Contains(body, []byte("<Quiet>true</Quiet>")) {
		result.Deleted = nil
	}
	for _, k := range refused {
		result.Errors = append(result.Errors, struct {
			Key     string `xml:"Key"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}{k, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"})
	}
	for _, k := range denied {
		result.Errors = append(result.Errors, struct {
			Key     string `xml:"Key"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}{k, "AccessDenied", "Access Denied"})
	}
	writeXML(w, result)
}

// writeXML answers with v as an XML document.
func writeXML(w http.ResponseWriter, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		s3Error(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write(append([]byte(xml.Header), out...)) // the client sees a broken answer as such
}

// setChecksums sets the body checksum headers the client sent, for body.
func setChecksums(r *http.Request, body []byte) {
	if r.Header.Get("Content-Md5") != "" {
		sum := md5.Sum(body)
		r.Header.Set("Content-Md5", base64.StdEncoding.EncodeToString(sum[:]))
	}
	for header, table := range map[string]*crc32.Table{"X-Amz-Checksum-Crc32": crc32.IEEETable, "X-Amz-Checksum-Crc32c": crc32.MakeTable(crc32.Castagnoli)} {
		if r.Header.Get(header) == "" {
			continue
		}
		var b [4]byte
		v := crc32.Checksum(body, table)
		b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		r.Header.Set(header, base64.StdEncoding.EncodeToString(b[:]))
	}
}

// startRegion starts a versitygw serving the testbed's data as region.
func (e *Env) startRegion(region string) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(e.versitygw, "--access", AccessKey, "--secret", SecretKey, "--port", addr, "--region", region,
		"--iam-dir", filepath.Join(e.dir, "iam"), "--iam-cache-disable", "--keep-alive", "--quiet", "posix", "--versioning-dir", e.versions(), filepath.Join(e.dir, "s3"))
	if err := e.spawn(cmd, filepath.Join(e.dir, "versitygw-"+region+".log")); err != nil {
		return "", err
	}
	if err := waitTCP(addr, 30*time.Second); err != nil {
		return "", errors.Join(err, errors.New(e.LogTail("versitygw-"+region+".log")))
	}
	return "http://" + addr, nil
}
