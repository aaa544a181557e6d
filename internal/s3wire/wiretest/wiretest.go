// Package wiretest is an HTTP client for the S3 client's tests of
// s3wire and copier: it records every request and answers each as a
// script says, so the SDK's and s3wire's requests can be compared and
// their reading of an answer checked, with no server.
package wiretest

import (
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Scripted records requests and answers each with the next of Answers
// (the last one repeats), or by By when it is set.
type Scripted struct {
	mu      sync.Mutex
	Reqs    []*http.Request
	Answers []Answer
	By      func(*http.Request) Answer
}

// Answer is one scripted response: Err fails the request instead.
type Answer struct {
	Status int
	Body   string
	Err    error
	Header http.Header
}

// CopyResult is a CopyObject answer's body.
const CopyResult = `<?xml version="1.0" encoding="UTF-8"?>
<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LastModified>2026-11-25T21:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>`

// S3Error is an S3 error answer's body with code.
func S3Error(code string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>` + code + `</Code><Message>scripted</Message><RequestId>R1</RequestId></Error>`
}

// Do records req and answers it.
func (s *Scripted) Do(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Reqs = append(s.Reqs, req)
	var a Answer
	if s.By != nil {
		a = s.By(req)
	} else {
		a = s.Answers[min(len(s.Reqs), len(s.Answers))-1]
	}
	if a.Err != nil {
		return nil, a.Err
	}
	h := http.Header{"Content-Type": {"application/xml"}, "X-Amz-Request-Id": {"R1"}, "X-Amz-Version-Id": {"v7"}}
	maps.Copy(h, a.Header)
	return &http.Response{StatusCode: a.Status, Header: h, Body: io.NopCloser(strings.NewReader(a.Body)), Request: req}, nil
}

// Client is an S3 client in us-east-1 with static credentials, no
// retries, and its HTTP through s; opt changes its options further.
func Client(s *Scripted, opt func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:      "us-east-1",
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "session-token")),
		HTTPClient:  s,
	}, opt, func(o *s3.Options) {
		o.Retryer = aws.NopRetryer{}
	})
}
