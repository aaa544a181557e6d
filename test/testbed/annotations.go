package testbed

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3 object annotations (PutObjectAnnotation, GetObjectAnnotation,
// ListObjectAnnotations, DeleteObjectAnnotation): named payloads attached
// to an object version, which CopyObject copies by default (its
// x-amz-object-annotation-directive is COPY unless EXCLUDE) and a
// multipart upload never has (CopyObject's API reference). versitygw knows
// none of it: it takes PUT /bucket/key?annotation for a PutObject and
// overwrites the object. So the proxy serves annotations itself, never
// passing such a request on, and keeps them per object: a write replaces
// the object and its annotations, a copy brings the source's along.

// annotation is one annotation's payload.
type annotation struct {
	payload  []byte
	modified time.Time
}

// Annotations returns the annotations of bucket/key, name to payload.
func (m *Manners) Annotations(bucket, key string) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for name, a := range m.annotations[bucket+"/"+key] {
		out[name] = string(a.payload)
	}
	return out
}

// annotationRequest reports a request about an object's annotations.
func annotationRequest(r *http.Request, q request) bool {
	return q.key != "" && r.URL.Query().Has("annotation")
}

// serveAnnotation answers an annotation request.
func (m *Manners) serveAnnotation(w http.ResponseWriter, r *http.Request, q request) {
	name := r.URL.Query().Get("annotationName")
	id := q.bucket + "/" + q.key
	real, err := m.realETag(r.Context(), q.bucket, q.key)
	var re *smithyhttp.ResponseError
	switch {
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		s3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	case err != nil:
		s3Error(w, http.StatusInternalServerError, "InternalError", "manners: "+err.Error())
		return
	}
	shown := m.shownETag(q.bucket, q.key, real)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case r.Method == http.MethodPut:
		if match := r.Header.Get("X-Amz-Object-If-Match"); match != "" && strings.Trim(match, `"`) != strings.Trim(shown, `"`) {
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
			return
		}
		payload, err := io.ReadAll(r.Body)
		if err != nil {
			s3Error(w, http.StatusBadRequest, "IncompleteBody", err.Error())
			return
		}
		if m.annotations[id] == nil {
			m.annotations[id] = map[string]annotation{}
		}
		m.annotations[id][name] = annotation{payload: payload, modified: time.Now().UTC()}
		sum := md5.Sum(payload)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
	case r.Method == http.MethodDelete:
		delete(m.annotations[id], name)
		w.WriteHeader(http.StatusNoContent)
	case name != "":
		a, ok := m.annotations[id][name]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchAnnotation", "The specified annotation does not exist.")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(a.payload)))
		_, _ = w.Write(a.payload) // the client sees a short answer as such
	default:
		m.listAnnotations(w, id)
	}
}

// listAnnotations answers ListObjectAnnotations, all in one page.
func (m *Manners) listAnnotations(w http.ResponseWriter, id string) {
	type entry struct {
		AnnotationName string    `xml:"AnnotationName"`
		Size           int       `xml:"Size"`
		LastModified   time.Time `xml:"LastModified"`
	}
	var result struct {
		XMLName     xml.Name `xml:"ListObjectAnnotationsResult"`
		Count       int      `xml:"AnnotationCount"`
		Annotations []entry  `xml:"Annotations>AnnotationEntry"`
	}
	names := slices.Sorted(maps.Keys(m.annotations[id]))
	for _, name := range names {
		a := m.annotations[id][name]
		result.Annotations = append(result.Annotations, entry{name, len(a.payload), a.modified})
	}
	result.Count = len(names)
	writeXML(w, result)
}

// replaced notes that bucket/key was written anew (its annotations go with
// the object it replaced), from the copy source's when a CopyObject brings
// them along.
func (m *Manners) replaced(r *http.Request, q request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := q.bucket + "/" + q.key
	delete(m.annotations, id)
	if q.srcBucket == "" || strings.EqualFold(r.Header.Get("X-Amz-Object-Annotation-Directive"), "EXCLUDE") {
		return
	}
	if from := m.annotations[q.srcBucket+"/"+q.srcKey]; len(from) > 0 {
		m.annotations[id] = maps.Clone(from)
	}
}
