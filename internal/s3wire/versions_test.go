package s3wire

import (
	"context"
	"io"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

func TestEntryOrder(t *testing.T) {
	t.Parallel()
	doc := `<?xml version="1.0"?><ListVersionsResult xmlns="x"><Name>b</Name>` +
		`<Version><Key>a</Key><VersionId>Version</VersionId><Owner><ID>1</ID></Owner></Version>` +
		`<DeleteMarker><Key>&lt;DeleteMarker&gt;</Key></DeleteMarker><Version/>` +
		`<CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes><DeleteMarker><Key>z</Key></DeleteMarker></ListVersionsResult>`
	got, ok := entryOrder([]byte(doc))
	if want := []bool{false, true, false, true}; !ok || !slices.Equal(got, want) {
		t.Fatalf("entryOrder = %v %v, want %v", got, ok, want)
	}
	if _, ok := entryOrder([]byte(`<R><Version><Key><![CDATA[x]]></Key></Version></R>`)); ok {
		t.Fatal("CDATA read as if understood")
	}
}

const versionsPage = `<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>false</IsTruncated>` +
	`<DeleteMarker><Key>a</Key><VersionId>3</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-07T10:00:03.000Z</LastModified></DeleteMarker>` +
	`<Version><Key>a</Key><VersionId>2</VersionId><LastModified>2026-12-07T10:00:02.000Z</LastModified><ETag>"e"</ETag><Size>1</Size></Version>` +
	`<Version><Key>b</Key><VersionId>1</VersionId><LastModified>2026-12-07T10:00:01.000Z</LastModified><ETag>"e"</ETag><Size>1</Size></Version>` +
	`</ListVersionsResult>`

// TestRecordOrder: the order of a page's versions and delete markers is
// recorded beside the SDK's own result, which is what the SDK reads without
// the option; a failed call, markup left to the SDK or another operation
// records nothing.
func TestRecordOrder(t *testing.T) {
	t.Parallel()
	in := &s3.ListObjectVersionsInput{Bucket: aws.String("b")}
	for _, c := range []struct {
		name   string
		answer canned
		want   []bool // nil: nothing recorded
	}{
		{"page", canned{status: 200, body: versionsPage}, []bool{true, false, false}},
		{"empty page", canned{status: 200, body: `<ListVersionsResult><Name>b</Name></ListVersionsResult>`}, []bool{}},
		{"CDATA", canned{status: 200, body: `<ListVersionsResult><Version><Key><![CDATA[x]]></Key></Version></ListVersionsResult>`}, nil},
		{"connection dropped mid-body", canned{status: 200, body: versionsPage[:len(versionsPage)/2], readErr: io.ErrUnexpectedEOF}, nil},
		{"no such bucket", canned{status: 404, body: `<Error><Code>NoSuchBucket</Code><Message>m</Message></Error>`}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			api := cannedClient(&c.answer)
			sdk, sdkErr := api.ListObjectVersions(context.Background(), in)
			got, gotErr := api.ListObjectVersions(context.Background(), in, RecordOrder)
			if (sdkErr == nil) != (gotErr == nil) || sdkErr != nil && sdkErr.Error() != gotErr.Error() {
				t.Fatalf("error %v, SDK's %v", gotErr, sdkErr)
			}
			if _, ok := VersionOrder(metadata(sdk)); ok {
				t.Error("an order recorded without RecordOrder")
			}
			order, ok := VersionOrder(metadata(got))
			if ok != (c.want != nil) || !slices.Equal(order, c.want) {
				t.Fatalf("order %v (recorded %v), want %v", order, ok, c.want)
			}
			if ok && len(got.Versions)+len(got.DeleteMarkers) != len(order) {
				t.Errorf("%d versions and %d markers for an order of %d", len(got.Versions), len(got.DeleteMarkers), len(order))
			}
		})
	}
	// Another operation is left alone.
	api := cannedClient(&canned{status: 200, body: `<ListBucketResult><Name>b</Name></ListBucketResult>`})
	out, err := api.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("b")}, RecordOrder)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := VersionOrder(out.ResultMetadata); ok || FastDecoded(out.ResultMetadata) {
		t.Error("RecordOrder acted on ListObjectsV2")
	}
}

func metadata(out *s3.ListObjectVersionsOutput) middleware.Metadata {
	if out == nil {
		return middleware.Metadata{}
	}
	return out.ResultMetadata
}
