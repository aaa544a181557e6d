package plan

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Location is a bucket and a key prefix: s3://bucket/prefix, and, once a
// planner has found it, the bucket's region.
type Location struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix,omitempty"`
	Region string `json:"region,omitempty"`
	// Owner is the account that must own the bucket (every request says
	// so: S3 refuses it if another account does); "" for no check.
	Owner string `json:"owner,omitempty"`
	// RequesterPays: the bucket is Requester Pays, and this account pays.
	RequesterPays bool `json:"payer,omitempty"`
}

func (l Location) String() string { return "s3://" + l.Bucket + "/" + l.Prefix }

// ParseLocation parses s3://BUCKET[/PREFIX]. The prefix is kept as written:
// s3://b/photos/ is the "photos/" directory, s3://b/photos also matches
// "photos-2024/...". Errors say what is wrong with the URL.
func ParseLocation(raw string) (Location, error) {
	rest, ok := strings.CutPrefix(raw, "s3://")
	if !ok {
		return Location{}, fmt.Errorf("%q is not an S3 URL: write it as s3://BUCKET or s3://BUCKET/PREFIX", raw)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if err := checkBucket(bucket); err != nil {
		return Location{}, fmt.Errorf("%q: %w", raw, err)
	}
	if DirectoryBucket(bucket) {
		return Location{}, fmt.Errorf("%q is an S3 Express One Zone directory bucket: directory buckets list keys out of order and refuse StartAfter, "+
			"which s3clone's parallel listing and its --diff, verify and cutover depend on, and their storage class is refused by general purpose buckets; "+
			"s3clone does not copy to or from them (copy it with aws s3 sync, or to a general purpose bucket first)", raw)
	}
	if !utf8.ValidString(prefix) {
		return Location{}, fmt.Errorf("%q: the prefix is not valid UTF-8", raw)
	}
	if len(prefix) > 1024 {
		return Location{}, fmt.Errorf("%q: the prefix is longer than S3's 1,024-byte key limit", raw)
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

// DirectoryBucket reports an S3 Express One Zone directory bucket: S3's
// naming rules for them end every name in --ZONE-ID--x-s3
// (bucket-base-name--usw2-az1--x-s3), a suffix no general purpose bucket
// may have.
func DirectoryBucket(bucket string) bool {
	return strings.HasSuffix(bucket, "--x-s3")
}

// checkBucket applies S3's general-purpose bucket naming rules.
func checkBucket(b string) error {
	if b == "" {
		return errors.New("the bucket name is missing")
	}
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", b)
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("bucket name %q may hold only lowercase letters, digits, '-' and '.'", b)
		}
	}
	first, last := b[0], b[len(b)-1]
	if first == '-' || first == '.' || last == '-' || last == '.' {
		return fmt.Errorf("bucket name %q must begin and end with a letter or digit", b)
	}
	return nil
}

// DestKey maps a source key under src.Prefix onto dst.Prefix:
// with s3://a/x/ → s3://b/y/, x/k is copied to y/k.
func DestKey(src, dst Location, key string) string {
	return dst.Prefix + strings.TrimPrefix(key, src.Prefix)
}

// CheckPair rejects a source and destination that would copy onto
// themselves or feed their own output back into the listing.
func CheckPair(src, dst Location) error {
	if src.Bucket != dst.Bucket {
		return nil
	}
	if src.Prefix == dst.Prefix {
		return fmt.Errorf("source and destination are both %s: choose another destination bucket or prefix", src)
	}
	if strings.HasPrefix(dst.Prefix, src.Prefix) {
		return fmt.Errorf("destination %s lies inside source %s, so the copy would list its own copies: choose a destination outside the source prefix", dst, src)
	}
	if strings.HasPrefix(src.Prefix, dst.Prefix) {
		return fmt.Errorf("source %s lies inside destination %s: choose a destination that does not contain the source", src, dst)
	}
	return nil
}
