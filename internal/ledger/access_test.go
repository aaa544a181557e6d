package ledger

import (
	"errors"
	"testing"

	"github.com/aws/smithy-go"
)

// TestRefusalsSayWhichCall: a refused ledger call is an *AccessError naming
// the operation and the key under the prefix, and still ErrDenied.
func TestRefusalsSayWhichCall(t *testing.T) {
	s := New(nil, "led", "s3clone/")
	refused := &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}
	err := s.classify(refused, "PutObject", "s3clone/runs/r1/run.json")
	var denied *AccessError
	if !errors.As(err, &denied) || !errors.Is(err, ErrDenied) || !errors.Is(err, refused) {
		t.Fatalf("classify = %#v, want an *AccessError wrapping ErrDenied and S3's answer", err)
	}
	if denied.Op != "PutObject" || denied.Bucket != "led" || denied.Prefix != "s3clone/" || denied.Key != "runs/r1/run.json" {
		t.Fatalf("AccessError %+v", denied)
	}
	if err := s.classify(&smithy.GenericAPIError{Code: "NoSuchBucket"}, "PutObject", "s3clone/x"); !errors.Is(err, ErrNoBucket) || errors.As(err, &denied) && denied.Op != "PutObject" {
		t.Fatalf("a missing bucket: %v", err)
	}
}
