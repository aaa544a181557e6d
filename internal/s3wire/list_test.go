package s3wire

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
)

// canned answers every request with one status and body.
type canned struct {
	status  int
	body    string
	header  http.Header
	readErr error // the body fails with this after its bytes
}

func (c *canned) Do(req *http.Request) (*http.Response, error) {
	h := http.Header{"Content-Type": {"application/xml"}, "X-Amz-Request-Id": {"R1"}, "X-Amz-Id-2": {"H1"}}
	for k, v := range c.header {
		h[k] = v
	}
	body := io.MultiReader(strings.NewReader(c.body), errReader{c.readErr})
	return &http.Response{StatusCode: c.status, Header: h, Body: io.NopCloser(body), Request: req}, nil
}

func cannedClient(c *canned) *s3.Client {
	return s3.New(s3.Options{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:  c,
		Retryer:     aws.NopRetryer{},
	})
}

// listBoth lists through the SDK's deserializer and through FastDecode and
// returns both results, without the metadata that differs per call, and
// whether FastDecode read the answer itself.
func listBoth(t testing.TB, api *s3.Client, in *s3.ListObjectsV2Input) (sdk, fast *s3.ListObjectsV2Output, sdkErr, fastErr error, fastRead bool) {
	t.Helper()
	sdk, sdkErr = api.ListObjectsV2(context.Background(), in)
	fast, fastErr = api.ListObjectsV2(context.Background(), in, FastDecode)
	if sdk != nil && FastDecoded(sdk.ResultMetadata) {
		t.Error("a result read without FastDecode says FastDecode read it")
	}
	fastRead = fast != nil && FastDecoded(fast.ResultMetadata)
	for _, o := range []*s3.ListObjectsV2Output{sdk, fast} {
		if o != nil {
			o.ResultMetadata = middleware.Metadata{}
		}
	}
	return sdk, fast, sdkErr, fastErr, fastRead
}

const awsPage = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>src-bucket</Name><Prefix>img/</Prefix><KeyCount>4</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwN=</NextContinuationToken><StartAfter>img/a</StartAfter><EncodingType>url</EncodingType>
<Contents><Key>img/2024/photo &amp; co &lt;1&gt; &quot;q&quot; &apos;a&apos; &#x1F600; &#233; &#9;tab.jpg</Key><LastModified>2026-11-25T21:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType><Size>65536</Size><Owner><DisplayName>ops</DisplayName><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID></Owner><StorageClass>GLACIER</StorageClass><RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress><RestoreExpiryDate>2026-12-01T00:00:00Z</RestoreExpiryDate></RestoreStatus></Contents>
  <Contents>
    <Key>img/2024/ünï/çødé.jpg</Key>
    <LastModified>2026-11-25T21:00:01.123456Z</LastModified>
    <ETag>"d41d8cd98f00b204e9800998ecf8427e-3"</ETag>
    <Size>0</Size>
    <StorageClass>STANDARD</StorageClass>
    <FutureField><Nested a="x>y">text<Deeper/></Nested></FutureField>
  </Contents>
  <!-- a comment -->
  <Contents><Key>img/empty-etag</Key><ETag></ETag><ETag/><Size>9223372036854775807</Size></Contents>
  <Contents/>
<CommonPrefixes><Prefix>img/2025/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>img/2026/</Prefix></CommonPrefixes><CommonPrefixes/></ListBucketResult>
`

// TestFastDecodeMatchesTheSDK feeds the same answers to the SDK's
// deserializer and to FastDecode and wants the same result or the same
// error: pages as AWS writes them (entities, character references,
// checksums, owners, restore status, unknown elements, comments), and
// answers the fast reader must leave to the SDK.
func TestFastDecodeMatchesTheSDK(t *testing.T) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String("src-bucket")}
	for _, c := range []struct {
		name   string
		answer canned
		fast   bool // FastDecode reads it itself
	}{
		{"aws page", canned{status: 200, body: awsPage, header: http.Header{"X-Amz-Request-Charged": {"requester"}}}, true},
		{"empty bucket", canned{status: 200, body: `<ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`}, true},
		{"whitespace value", canned{status: 200, body: `<ListBucketResult><Prefix> </Prefix></ListBucketResult>`}, true},
		{"empty body", canned{status: 200, body: ""}, false},
		{"CDATA", canned{status: 200, body: `<ListBucketResult><Contents><Key><![CDATA[a<b]]></Key></Contents></ListBucketResult>`}, false},
		{"raw carriage return", canned{status: 200, body: "<ListBucketResult><Contents><Key>a\r\nb</Key></Contents></ListBucketResult>"}, false},
		{"unknown entity", canned{status: 200, body: `<ListBucketResult><Contents><Key>&copy;</Key></Contents></ListBucketResult>`}, false},
		{"NUL reference", canned{status: 200, body: `<ListBucketResult><Contents><Key>a&#0;b</Key></Contents></ListBucketResult>`}, false},
		{"mismatched tags", canned{status: 200, body: `<ListBucketResult><Contents><Key>a</Size></Contents></ListBucketResult>`}, false},
		{"cut short", canned{status: 200, body: awsPage[:len(awsPage)/2]}, false},
		{"connection dropped mid-body", canned{status: 200, body: awsPage[:len(awsPage)/2], readErr: io.ErrUnexpectedEOF}, false},
		{"bad size", canned{status: 200, body: `<ListBucketResult><Contents><Size>12x</Size></Contents></ListBucketResult>`}, false},
		{"other root", canned{status: 200, body: `<Error><Code>InternalError</Code><Message>m</Message></Error>`}, false},
		{"no such bucket", canned{status: 404, body: `<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>`}, false},
		{"slow down", canned{status: 503, body: `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			answer := c.answer
			sdk, fast, sdkErr, fastErr, fastRead := listBoth(t, cannedClient(&answer), in)
			if fmt.Sprint(sdkErr) != fmt.Sprint(fastErr) {
				t.Fatalf("error %v, SDK's %v", fastErr, sdkErr)
			}
			if !reflect.DeepEqual(sdk, fast) {
				t.Fatalf("result differs:\n fast %s\n SDK  %s", dump(fast), dump(sdk))
			}
			if _, err := decodeListObjectsV2([]byte(c.answer.body)); (err == nil) != c.fast {
				t.Errorf("fast reader error %v; want it to read this itself: %v", err, c.fast)
			}
			// Through the client too: FastDecode did read it (or left it).
			if fastRead != c.fast {
				t.Errorf("read by FastDecode: %v, want %v", fastRead, c.fast)
			}
		})
	}
	// The page above really is read in full.
	page, err := decodeListObjectsV2([]byte(awsPage))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Contents) != 4 || len(page.CommonPrefixes) != 3 || aws.ToString(page.Contents[0].Key) != "img/2024/photo & co <1> \"q\" 'a' 😀 é \ttab.jpg" {
		t.Errorf("read %d objects, %d prefixes, first key %q", len(page.Contents), len(page.CommonPrefixes), aws.ToString(page.Contents[0].Key))
	}
}

func dump(o *s3.ListObjectsV2Output) string {
	if o == nil {
		return "nil"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%+v", *o)
	for _, c := range o.Contents {
		fmt.Fprintf(&b, "\n  %s %+v owner %+v restore %+v", aws.ToString(c.Key), c, c.Owner, c.RestoreStatus)
	}
	return b.String()
}

// BenchmarkDecodePage reads a 1,000-key page through the SDK's
// deserializer and through FastDecode (the whole ListObjectsV2 call, over
// a canned HTTP answer).
func BenchmarkDecodePage(b *testing.B) {
	var page strings.Builder
	page.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken>`)
	for i := range 1000 {
		fmt.Fprintf(&page, `<Contents><Key>img/%d/%02d/photo-%06d.jpg</Key><LastModified>2026-11-25T21:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType><Size>%d</Size><StorageClass>STANDARD</StorageClass></Contents>`, 2020+i%5, i%12, i, 1024+i)
	}
	page.WriteString(`</ListBucketResult>`)
	api := cannedClient(&canned{status: 200, body: page.String()})
	in := &s3.ListObjectsV2Input{Bucket: aws.String("b")}
	for _, c := range []struct {
		name string
		opts []func(*s3.Options)
	}{{"sdk", nil}, {"fast", []func(*s3.Options){FastDecode}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, err := api.ListObjectsV2(context.Background(), in, c.opts...)
				if err != nil || len(out.Contents) != 1000 {
					b.Fatalf("%v, %d keys", err, len(out.Contents))
				}
			}
		})
	}
}

// TestFastDecodeKnowsEveryField pins the fields of the SDK's output types
// that the fast page reader fills. An SDK upgrade that adds a field to
// ListObjectsV2's answer fails here, loudly, instead of the field reading
// as empty: teach decodeListObjectsV2 the new element, then add it here.
func TestFastDecodeKnowsEveryField(t *testing.T) {
	decoded := map[reflect.Type][]string{
		// RequestCharged is a header, read in HandleDeserialize;
		// ResultMetadata is the middleware's.
		reflect.TypeOf(s3.ListObjectsV2Output{}): {"CommonPrefixes", "Contents", "ContinuationToken", "Delimiter", "EncodingType", "IsTruncated",
			"KeyCount", "MaxKeys", "Name", "NextContinuationToken", "Prefix", "RequestCharged", "StartAfter", "ResultMetadata"},
		reflect.TypeOf(types.Object{}):        {"ChecksumAlgorithm", "ChecksumType", "ETag", "Key", "LastModified", "Owner", "RestoreStatus", "Size", "StorageClass"},
		reflect.TypeOf(types.CommonPrefix{}):  {"Prefix"},
		reflect.TypeOf(types.Owner{}):         {"DisplayName", "ID"},
		reflect.TypeOf(types.RestoreStatus{}): {"IsRestoreInProgress", "RestoreExpiryDate"},
	}
	for typ, want := range decoded {
		var got []string
		for _, f := range reflect.VisibleFields(typ) {
			if f.IsExported() {
				got = append(got, f.Name)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s has fields %q; the fast page reader knows %q", typ, got, want)
		}
	}
}
