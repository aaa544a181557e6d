package listing

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// fakeS3 models ListObjectsV2 over a sorted key set: Prefix, Delimiter,
// StartAfter, ContinuationToken and MaxKeys, with common prefixes rolled up
// and a continuation past a common prefix skipping its whole subtree, as S3
// does. It lets the property tests below run thousands of listings with
// tiny pages; the same shapes also run against versitygw.
type fakeS3 struct {
	keys  []string
	calls atomic.Int64
	delay time.Duration
}

func newFake(keys []string) *fakeS3 {
	k := slices.Clone(keys)
	sort.Strings(k)
	return &fakeS3{keys: slices.Compact(k)}
}

func (f *fakeS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.calls.Add(1)
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	prefix, delim := aws.ToString(in.Prefix), aws.ToString(in.Delimiter)
	after := aws.ToString(in.StartAfter)
	token := aws.ToString(in.ContinuationToken)
	if token > after {
		after = token
	}
	limit := int(aws.ToInt32(in.MaxKeys))
	out := &s3.ListObjectsV2Output{}
	n := 0
	lastCP := ""
	for i := sort.SearchStrings(f.keys, max(after, prefix)); i < len(f.keys); i++ {
		k := f.keys[i]
		if k <= after {
			continue
		}
		if !strings.HasPrefix(k, prefix) {
			break // sorted: every later key is past the prefix too
		}
		if delim != "" && token != "" && strings.HasSuffix(token, delim) && strings.HasPrefix(k, token) {
			continue // the continuation was a common prefix: skip its subtree
		}
		entry, isCP := k, false
		if delim != "" {
			if j := strings.Index(k[len(prefix):], delim); j >= 0 {
				entry, isCP = k[:len(prefix)+j+len(delim)], true
			}
		}
		if isCP && entry == lastCP {
			continue
		}
		if n == limit {
			out.IsTruncated = aws.Bool(true)
			out.NextContinuationToken = aws.String(lastEntry(out))
			return out, nil
		}
		n++
		if isCP {
			lastCP = entry
			out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(entry)})
		} else {
			out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(k)))})
		}
	}
	out.IsTruncated = aws.Bool(false)
	return out, nil
}

func lastEntry(out *s3.ListObjectsV2Output) string {
	last := ""
	for _, o := range out.Contents {
		last = max(last, aws.ToString(o.Key))
	}
	for _, p := range out.CommonPrefixes {
		last = max(last, aws.ToString(p.Prefix))
	}
	return last
}
