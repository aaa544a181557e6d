package listing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/s3clone/s3clone/internal/s3wire"
)

// VersionsAPI is the part of the S3 client an as-of listing uses.
type VersionsAPI interface {
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, optFns ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
}

var _ VersionsAPI = (*s3.Client)(nil)

// AsOf lists a versioned bucket as it stood at a point in time. It is an
// API: its ListObjectsV2 answers from ListObjectVersions, page for page,
// with the objects that were there at that time, so that Lister and Paired
// (and everything built on them: sharding, splitting, the diff) list the
// past exactly as they list the present.
//
// Each key is what its newest entry (version or delete marker, in S3's
// order, newest first) whose LastModified is not after the time says: that
// version, or nothing for a delete marker or a key with no entry that old.
// A version id of "null" (written while versioning was off or suspended) is
// a version like any other. A key's entries may span pages; the
// continuation token carries where it stands. Each page's objects carry
// their version id (VersionIDs), which Lister and Paired put in
// Object.VersionID.
//
// S3 returns versions and delete markers interleaved in its order; the SDK
// parses them into two lists, so the order is read from the answer itself
// (s3wire.RecordOrder). Safe for concurrent use.
type AsOf struct {
	api VersionsAPI
	at  time.Time
}

// NewAsOf returns an AsOf listing through api as of at.
func NewAsOf(api VersionsAPI, at time.Time) *AsOf { return &AsOf{api: api, at: at} }

var _ API = (*AsOf)(nil)

// asOfToken is where an as-of listing stands between pages: S3's markers,
// the key whose entries were being read, and whether its state at the time
// is already known (its later entries on the next page are then skipped).
type asOfToken struct {
	KeyMarker     string `json:"k"`
	VersionMarker string `json:"v,omitempty"`
	Key           string `json:"c,omitempty"`
	Decided       bool   `json:"d,omitempty"`
	After         string `json:"a,omitempty"`
}

func (t asOfToken) encode() *string {
	b, _ := json.Marshal(t) // strings and a bool always encode
	return aws.String(base64.RawURLEncoding.EncodeToString(b))
}

func decodeToken(s string) (asOfToken, error) {
	var t asOfToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil {
		return t, fmt.Errorf("not an as-of continuation token: %q", s)
	}
	return t, nil
}

type versionIDsKey struct{}

type listedUpToKey struct{}

// listedUpTo is the last key or common prefix of the versions behind a page
// AsOf answered, listed or not; "" for any other page. A lister's progress
// (where it may split a shard, where a shard is past its end) goes by it:
// the page's objects alone can fall well short of it, or be none.
func listedUpTo(page *s3.ListObjectsV2Output) string {
	v, _ := page.ResultMetadata.Get(listedUpToKey{}).(string)
	return v
}

// VersionIDs returns the version id of each object of a page AsOf answered,
// index for index with its Contents; nil for any other page.
func VersionIDs(md middleware.Metadata) []string {
	v, _ := md.Get(versionIDsKey{}).([]string)
	return v
}

// versionOf is the version id of a page's i-th object, "" when the page
// carries none.
func versionOf(page *s3.ListObjectsV2Output, i int) string {
	if ids := VersionIDs(page.ResultMetadata); i < len(ids) {
		return ids[i]
	}
	return ""
}

// ListObjectsV2 lists one page of the bucket as it stood, with
// ListObjectVersions: Prefix, Delimiter, StartAfter, ContinuationToken,
// MaxKeys and EncodingType as ListObjectsV2 takes them (names come back
// decoded, and the answer says no encoding). A page may hold fewer objects
// than MaxKeys, or none, and still be truncated.
func (a *AsOf) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	st := asOfToken{KeyMarker: aws.ToString(in.StartAfter), After: aws.ToString(in.StartAfter)}
	if tok := aws.ToString(in.ContinuationToken); tok != "" {
		var err error
		if st, err = decodeToken(tok); err != nil {
			return nil, err
		}
	}
	req := &s3.ListObjectVersionsInput{
		Bucket: in.Bucket, Prefix: in.Prefix, Delimiter: in.Delimiter, MaxKeys: in.MaxKeys, EncodingType: in.EncodingType,
		ExpectedBucketOwner: in.ExpectedBucketOwner, RequestPayer: in.RequestPayer,
		KeyMarker: optional(st.KeyMarker), VersionIdMarker: optional(st.VersionMarker),
	}
	page, err := a.api.ListObjectVersions(ctx, req, append(slices.Clip(optFns), s3wire.RecordOrder)...)
	if err != nil {
		return nil, err
	}
	entries, err := inOrder(page)
	if err != nil {
		return nil, fmt.Errorf("list versions of s3://%s/%s: %w", aws.ToString(in.Bucket), aws.ToString(in.Prefix), err)
	}
	out := &s3.ListObjectsV2Output{Name: in.Bucket, Prefix: in.Prefix, Delimiter: in.Delimiter, MaxKeys: in.MaxKeys,
		StartAfter: in.StartAfter, ContinuationToken: in.ContinuationToken, RequestCharged: page.RequestCharged, IsTruncated: aws.Bool(false)}
	var ids []string
	upTo := ""
	for _, e := range entries {
		upTo = max(upTo, e.key)
		obj, id, ok := st.take(e, a.at)
		if ok {
			out.Contents = append(out.Contents, obj)
			ids = append(ids, id)
		}
	}
	for _, cp := range page.CommonPrefixes {
		p := aws.ToString(cp.Prefix)
		if err := a.decode(page, &p); err != nil {
			return nil, err
		}
		out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(p)})
		upTo = max(upTo, p)
	}
	out.KeyCount = aws.Int32(int32(len(out.Contents) + len(out.CommonPrefixes)))
	if err := a.next(page, req, &st, out); err != nil {
		return nil, fmt.Errorf("list versions of s3://%s/%s: %w", aws.ToString(in.Bucket), aws.ToString(in.Prefix), err)
	}
	out.ResultMetadata.Set(versionIDsKey{}, ids)
	out.ResultMetadata.Set(listedUpToKey{}, upTo)
	return out, nil
}

// next sets out's continuation from a truncated page, with the care Lister
// takes: a truncated page without a marker, or one that would ask for the
// same page again, is an error rather than a listing that starts over or
// never ends. (The SDK's ListObjectVersionsPaginator restarts from the
// first key when NextKeyMarker is missing, and cannot stop on a repeated
// key marker: a key's versions may span pages under the same one.)
func (a *AsOf) next(page *s3.ListObjectVersionsOutput, req *s3.ListObjectVersionsInput, st *asOfToken, out *s3.ListObjectsV2Output) error {
	if !aws.ToBool(page.IsTruncated) {
		return nil
	}
	key := aws.ToString(page.NextKeyMarker)
	if err := a.decode(page, &key); err != nil {
		return err
	}
	ver := aws.ToString(page.NextVersionIdMarker)
	if key == "" {
		return errors.New("a truncated page without NextKeyMarker")
	}
	if key == aws.ToString(req.KeyMarker) && ver == aws.ToString(req.VersionIdMarker) {
		return fmt.Errorf("the server answered key marker %q, version %q with the same markers again", key, ver)
	}
	if key < aws.ToString(req.KeyMarker) {
		return fmt.Errorf("the server's next key marker %q goes back before %q", key, aws.ToString(req.KeyMarker))
	}
	st.KeyMarker, st.VersionMarker = key, ver
	out.IsTruncated, out.NextContinuationToken = aws.Bool(true), st.encode()
	return nil
}

// decode URL-decodes a name of a page S3 encoded (EncodingType url).
func (a *AsOf) decode(page *s3.ListObjectVersionsOutput, s *string) error {
	if page.EncodingType != types.EncodingTypeUrl {
		return nil
	}
	return decodeName(s)
}

// entry is one version or delete marker, as listed.
type entry struct {
	marker       bool
	key, version string
	modified     time.Time
	etag         string
	size         int64
	class        string
}

// take reads the next entry in S3's order: the object it makes listed, if
// it is the first of its key not after at and a version (not a delete
// marker). A key decided on an earlier page, or any key at or before
// StartAfter, takes nothing.
func (st *asOfToken) take(e entry, at time.Time) (types.Object, string, bool) {
	if st.After != "" && e.key <= st.After {
		return types.Object{}, "", false
	}
	if e.key != st.Key {
		st.Key, st.Decided = e.key, false
	}
	if st.Decided || e.modified.After(at) {
		return types.Object{}, "", false
	}
	st.Decided = true
	if e.marker {
		return types.Object{}, "", false
	}
	return types.Object{Key: aws.String(e.key), Size: aws.Int64(e.size), ETag: aws.String(e.etag),
		StorageClass: types.ObjectStorageClass(e.class), LastModified: aws.Time(e.modified)}, e.version, true
}

// inOrder interleaves a page's versions and delete markers in the order S3
// wrote them (s3wire.RecordOrder), with keys decoded.
func inOrder(page *s3.ListObjectVersionsOutput) ([]entry, error) {
	order, ok := s3wire.VersionOrder(page.ResultMetadata)
	if !ok || len(order) != len(page.Versions)+len(page.DeleteMarkers) {
		return nil, fmt.Errorf("cannot tell the order of %d versions and %d delete markers in the answer", len(page.Versions), len(page.DeleteMarkers))
	}
	entries := make([]entry, 0, len(order))
	vs, ds := page.Versions, page.DeleteMarkers
	for _, marker := range order {
		var e entry
		if marker {
			d := ds[0]
			ds = ds[1:]
			e = entry{marker: true, key: aws.ToString(d.Key), version: aws.ToString(d.VersionId), modified: aws.ToTime(d.LastModified)}
		} else {
			v := vs[0]
			vs = vs[1:]
			e = entry{key: aws.ToString(v.Key), version: aws.ToString(v.VersionId), modified: aws.ToTime(v.LastModified),
				etag: aws.ToString(v.ETag), size: aws.ToInt64(v.Size), class: string(v.StorageClass)}
		}
		if page.EncodingType == types.EncodingTypeUrl {
			if err := decodeName(&e.key); err != nil {
				return nil, err
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// VersionAt is what key held at the time, as an object with its VersionID,
// and false when it held nothing (no version yet, or a delete marker).
func (a *AsOf) VersionAt(ctx context.Context, bucket, key string) (Object, bool, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(key), MaxKeys: aws.Int32(100)}
	for {
		page, err := Page(ctx, a, in)
		if err != nil {
			return Object{}, false, err
		}
		for i, o := range page.Contents {
			if aws.ToString(o.Key) == key {
				return Object{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), StorageClass: string(o.StorageClass),
					LastModified: aws.ToTime(o.LastModified), VersionID: versionOf(page, i)}, true, nil
			}
		}
		// The key sorts first under its own prefix: once the listing is
		// past it, it held nothing.
		if !aws.ToBool(page.IsTruncated) || listedUpTo(page) > key {
			return Object{}, false, nil
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}
