package copier

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// checksum is an object's additional checksum: its algorithm, its type
// (FULL_OBJECT or COMPOSITE) and, for a full-object one, its value.
type checksum struct {
	algorithm types.ChecksumAlgorithm
	typ       types.ChecksumType
	value     *string
}

// checksumOf is the checksum HeadObject (with checksum mode) reports of an
// object: S3 keeps one algorithm per object, so the first field set.
func checksumOf(head *s3.HeadObjectOutput) checksum {
	for _, alg := range types.ChecksumAlgorithm("").Values() {
		if v := checksumField(head, alg); v != nil && aws.ToString(*v) != "" {
			return checksum{algorithm: alg, typ: head.ChecksumType, value: *v}
		}
	}
	return checksum{}
}

// multipart is the checksum to ask of a copy in parts of an object with c,
// by what S3 computes for multipart uploads (the S3 user guide, "Checking
// object integrity"): full-object checksums for the CRC algorithms only,
// composite ones for CRC32, CRC32C, SHA1 and SHA256. So a source with a
// full-object CRC gets the same (and its value, which S3 checks the copy
// against); a composite or SHA one gets a composite checksum of the same
// algorithm; a source whose algorithm S3 does not take for multipart
// uploads (MD5, SHA512, XXHASH) gets S3's default, as does one with none.
func (c checksum) multipart() checksum {
	composite := c.typ == types.ChecksumTypeComposite || c.value != nil && strings.Contains(*c.value, "-")
	switch c.algorithm {
	case types.ChecksumAlgorithmCrc64nvme:
		return checksum{algorithm: c.algorithm, typ: types.ChecksumTypeFullObject, value: c.value}
	case types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c:
		if composite {
			return checksum{algorithm: c.algorithm, typ: types.ChecksumTypeComposite}
		}
		return checksum{algorithm: c.algorithm, typ: types.ChecksumTypeFullObject, value: c.value}
	case types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256:
		return checksum{algorithm: c.algorithm, typ: types.ChecksumTypeComposite}
	}
	return checksum{}
}

// checksumField is the Checksum<ALGORITHM> field of an S3 input or output
// struct (HeadObjectOutput, CopyPartResult, CompletedPart,
// CompleteMultipartUploadInput name them alike), nil if it has none.
func checksumField(v any, alg types.ChecksumAlgorithm) **string {
	f := reflect.ValueOf(v).Elem().FieldByName("Checksum" + string(alg))
	if !f.IsValid() || f.Type() != reflect.TypeFor[*string]() {
		return nil
	}
	return f.Addr().Interface().(**string)
}

// headWithChecksum reads an object's metadata with its checksum. Reading the
// checksum of an SSE-KMS object needs kms:Decrypt on its key: refused that
// (403), it reads the metadata alone, and the copy takes S3's default
// checksum.
func headWithChecksum(ctx context.Context, api SourceAPI, in *s3.HeadObjectInput) (*s3.HeadObjectOutput, error) {
	in.ChecksumMode = types.ChecksumModeEnabled
	head, err := api.HeadObject(ctx, in)
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		in.ChecksumMode = ""
		head, err = api.HeadObject(ctx, in)
	}
	return head, err
}
