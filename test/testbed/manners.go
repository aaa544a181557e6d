package testbed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
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
//
// This file is the proxy itself: what it reads of a request, ServeHTTP
// (which answers for a manner before versitygw, or hands the request on)
// and rewriteResponse (which makes versitygw's answer S3's). Each
// behaviour has a file of its own: manners_regions.go (Region),
// manners_access.go (Expire, and what a caller may do by the bucket's
// policy), manners_encryption.go (KMS, SSEC), manners_writes.go
// (RequireOnWrite, Written), manners_metadata.go (RFC 2047 metadata),
// manners_uploads.go (LoseUploads), manners_deletes.go (conditional
// deletes), manners_list.go (ListObjectsV2's names, classes and ETags)
// and manners_xml.go (XML and body rewriting); then annotations.go,
// events.go, lock.go, owners.go, parts.go and versions.go.
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

// Archive puts the keys under prefix in bucket in GLACIER.
func (m *Manners) Archive(bucket, prefix string) { m.addPrefix(mannerArchive, bucket, prefix) }

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
