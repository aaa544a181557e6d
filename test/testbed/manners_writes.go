package testbed

import (
	"net/http"
)

// Written is what a write (PutObject, CopyObject, CreateMultipartUpload)
// asked of the object it wrote.
type Written struct {
	ACL, SSE, KMSKeyID, StorageClass string
}

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
