package testbed

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

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
