package ownership

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestFillsEveryInput: each request says the owner of the bucket it names
// and of its copy source, and that the requester pays where either bucket
// is Requester Pays; a field the caller set is left as it is, and buckets
// the book does not know get nothing.
func TestFillsEveryInput(t *testing.T) {
	t.Parallel()
	var b Book
	b.Set("src", Bucket{Owner: "111111111111", RequesterPays: true})
	b.Set("dst", Bucket{Owner: "222222222222"})

	list := &s3.ListObjectsV2Input{Bucket: aws.String("src")}
	b.fill(list)
	if aws.ToString(list.ExpectedBucketOwner) != "111111111111" || list.RequestPayer != types.RequestPayerRequester {
		t.Errorf("list: owner %q payer %q", aws.ToString(list.ExpectedBucketOwner), list.RequestPayer)
	}
	cp := &s3.CopyObjectInput{Bucket: aws.String("dst"), Key: aws.String("k"), CopySource: aws.String("src/a%2Fb")}
	b.fill(cp)
	if aws.ToString(cp.ExpectedBucketOwner) != "222222222222" || aws.ToString(cp.ExpectedSourceBucketOwner) != "111111111111" || cp.RequestPayer != types.RequestPayerRequester {
		t.Errorf("copy: owner %q source owner %q payer %q", aws.ToString(cp.ExpectedBucketOwner), aws.ToString(cp.ExpectedSourceBucketOwner), cp.RequestPayer)
	}
	part := &s3.UploadPartCopyInput{Bucket: aws.String("dst"), CopySource: aws.String("/src/k"), ExpectedBucketOwner: aws.String("333333333333")}
	b.fill(part)
	if aws.ToString(part.ExpectedBucketOwner) != "333333333333" || aws.ToString(part.ExpectedSourceBucketOwner) != "111111111111" {
		t.Errorf("a field the caller set was changed, or the source's owner not set: %q %q", aws.ToString(part.ExpectedBucketOwner), aws.ToString(part.ExpectedSourceBucketOwner))
	}
	website := &s3.GetBucketWebsiteInput{Bucket: aws.String("src")} // no RequestPayer field
	b.fill(website)
	if aws.ToString(website.ExpectedBucketOwner) != "111111111111" {
		t.Errorf("website: owner %q", aws.ToString(website.ExpectedBucketOwner))
	}
	other := &s3.HeadObjectInput{Bucket: aws.String("ledger"), Key: aws.String("k")}
	b.fill(other)
	if other.ExpectedBucketOwner != nil || other.RequestPayer != "" {
		t.Errorf("a bucket the book does not know got owner %q payer %q", aws.ToString(other.ExpectedBucketOwner), other.RequestPayer)
	}
	// A copy between prefixes of one bucket: the bucket takes both entries.
	var one Book
	one.SetPair("b", Bucket{Owner: "111111111111", RequesterPays: true}, "b", Bucket{})
	if got := one.Of("b"); got != (Bucket{Owner: "111111111111", RequesterPays: true}) {
		t.Errorf("one bucket, source and destination: %+v", got)
	}
	var none *Book
	none.fill(list) // a nil book sets nothing and does not fail
	if o, so, pays := none.Copy("dst", "src"); o != "" || so != "" || pays {
		t.Errorf("a nil book: %q %q %v", o, so, pays)
	}
}
