package testbed

import (
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

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
