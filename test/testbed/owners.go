package testbed

import (
	"net/http"
)

// Bucket owners and Requester Pays, which versitygw does not have: S3
// refuses (403 AccessDenied) a request whose x-amz-expected-bucket-owner,
// or x-amz-source-expected-bucket-owner for a copy's source, is not the
// account that owns the bucket (the S3 user guide, "Verifying bucket
// ownership with bucket owner condition"), and, from any account but the
// owner's, a request to a Requester Pays bucket that does not say
// x-amz-request-payer: requester (the S3 user guide, "Using Requester Pays
// buckets"). The proxy plays every caller as another account than the
// buckets' owner.

// Owner makes account the owner of bucket, for the bucket owner condition.
func (m *Manners) Owner(bucket, account string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.owners[bucket] = account
}

// RequesterPays makes bucket a Requester Pays bucket.
func (m *Manners) RequesterPays(bucket string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.payers[bucket] = true
}

// Unchecked returns how many requests to bucket (or copies from it) did not
// say which account must own it since the last call, and starts again.
func (m *Manners) Unchecked(bucket string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.unchecked[bucket]
	delete(m.unchecked, bucket)
	return n
}

// refusesOwnership reports a request S3 would refuse for its bucket's
// owner or payer.
func (m *Manners) refusesOwnership(r *http.Request, q request) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	wrongOwner := func(bucket, expected string) bool {
		owner, ok := m.owners[bucket]
		if ok && expected == "" {
			m.unchecked[bucket]++
		}
		return ok && expected != "" && expected != owner
	}
	if q.bucket != "" && wrongOwner(q.bucket, r.Header.Get("X-Amz-Expected-Bucket-Owner")) {
		return true
	}
	if q.srcBucket != "" && wrongOwner(q.srcBucket, r.Header.Get("X-Amz-Source-Expected-Bucket-Owner")) {
		return true
	}
	// Object requests and listings take the payer's word; bucket settings
	// (HeadBucket, GetBucketWebsite, ...) have no field for it.
	pays := r.Header.Get("X-Amz-Request-Payer") == "requester"
	objectLevel := q.key != "" || q.list || q.dels
	return !pays && ((objectLevel && m.payers[q.bucket]) || (q.srcBucket != "" && m.payers[q.srcBucket]))
}

// dropOwnership takes the owner and payer headers off a request the proxy
// has judged, signing it again: versitygw judges an expected owner by its
// own accounts (the access key that made the bucket) and would refuse the
// test's made-up ones.
func (m *Manners) dropOwnership(r *http.Request) error {
	dropped := false
	for _, h := range []string{"X-Amz-Expected-Bucket-Owner", "X-Amz-Source-Expected-Bucket-Owner", "X-Amz-Request-Payer"} {
		if r.Header.Get(h) != "" {
			r.Header.Del(h)
			dropped = true
		}
	}
	if !dropped {
		return nil
	}
	return m.resign(r, nil)
}
