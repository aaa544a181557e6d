package copier

import (
	"context"
	"errors"
	"net/http"
	"reflect"

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

// multipart is the checksum to ask of a copy in parts of an object with c:
// the same algorithm and type, except that S3 computes full-object
// checksums of multipart uploads only for the CRC algorithms (the S3 user
// guide, "Checking object integrity"): an object with a SHA checksum is
// copied with a composite one of the same algorithm.
func (c checksum) multipart() checksum {
	switch c.algorithm {
	case "":
		return checksum{}
	case types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmCrc64nvme:
		if c.algorithm == types.ChecksumAlgorithmCrc64nvme || c.typ == types.ChecksumTypeFullObject || c.typ == "" {
			return checksum{algorithm: c.algorithm, typ: types.ChecksumTypeFullObject, value: c.value}
		}
		return checksum{algorithm: c.algorithm, typ: types.ChecksumTypeComposite}
	}
	return checksum{algorithm: c.algorithm, typ: types.ChecksumTypeComposite}
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
