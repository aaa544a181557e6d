package testbed

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	smithyhttp "github.com/aws/smithy-go/transport/http"
)

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
