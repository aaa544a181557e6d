package s3wire

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3clone/s3clone/test/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }

// TestFastDecodeOnTheRealServer lists awkward keys from versitygw both
// ways, page by page, and wants the same pages.
func TestFastDecodeOnTheRealServer(t *testing.T) {
	env := testbed.Get(t)
	bucket := env.Bucket(t)
	var objs []testbed.Object
	for i := range 40 {
		objs = append(objs, testbed.Object{Key: fmt.Sprintf("d%d/k %02d & <x> \"q\" 'a' ü+%%#?=.jpg", i%3, i), Body: []byte(strings.Repeat("x", i))})
	}
	env.Put(t, bucket, objs)
	for _, delim := range []*string{nil, aws.String("/")} {
		in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(7), Delimiter: delim}
		pages, keys := 0, 0
		for {
			sdk, fast, sdkErr, fastErr, fastRead := listBoth(t, env.S3, in)
			if sdkErr != nil || fastErr != nil {
				t.Fatalf("SDK %v, fast %v", sdkErr, fastErr)
			}
			if !reflect.DeepEqual(sdk, fast) {
				t.Fatalf("page %d differs:\n fast %s\n SDK  %s", pages, dump(fast), dump(sdk))
			}
			if !fastRead {
				t.Fatal("versitygw's page was not read by FastDecode")
			}
			pages++
			keys += len(fast.Contents) + len(fast.CommonPrefixes)
			if !aws.ToBool(fast.IsTruncated) {
				break
			}
			in.ContinuationToken = fast.NextContinuationToken
		}
		if want := map[bool]int{true: 3, false: 40}[delim != nil]; keys != want {
			t.Errorf("delimiter %v: %d entries in %d pages, want %d", aws.ToString(delim), keys, pages, want)
		}
	}
}
