package listing

import (
	"context"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/internal/s3wire"
)

// Page lists one page as every listing here does: with EncodingType=url,
// read by s3wire.FastDecode, and with every name decoded again. XML 1.0 cannot
// carry some characters a key may hold: a control character makes an
// unencoded answer unreadable, and a carriage return comes back as a line
// feed, naming another key. Asked to, S3 URL-encodes keys, prefixes, the
// delimiter and StartAfter; a server that does not (it leaves out
// EncodingType in its answer) has its names taken as they are.
func Page(ctx context.Context, api API, in *s3.ListObjectsV2Input) (*s3.ListObjectsV2Output, error) {
	in.EncodingType = types.EncodingTypeUrl
	page, err := api.ListObjectsV2(ctx, in, s3wire.FastDecode)
	if err != nil {
		return nil, err
	}
	if page.EncodingType != types.EncodingTypeUrl {
		return page, nil
	}
	if err := decodeNames(page); err != nil {
		return nil, fmt.Errorf("list s3://%s/%s: %w", aws.ToString(in.Bucket), aws.ToString(in.Prefix), err)
	}
	return page, nil
}

// decodeNames decodes the URL-encoded names of a page in place.
func decodeNames(page *s3.ListObjectsV2Output) error {
	for _, p := range []**string{&page.Prefix, &page.Delimiter, &page.StartAfter} {
		if err := decodeName(*p); err != nil {
			return err
		}
	}
	for i := range page.Contents {
		if err := decodeName(page.Contents[i].Key); err != nil {
			return err
		}
	}
	for i := range page.CommonPrefixes {
		if err := decodeName(page.CommonPrefixes[i].Prefix); err != nil {
			return err
		}
	}
	return nil
}

func decodeName(s *string) error {
	if s == nil {
		return nil
	}
	v, err := url.QueryUnescape(*s)
	if err != nil {
		return fmt.Errorf("a URL-encoded name %q in the listing: %w", *s, err)
	}
	*s = v
	return nil
}
