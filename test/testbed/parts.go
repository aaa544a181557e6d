package testbed

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// versitygw's UploadPartCopy reports, and keeps, the whole source object's
// checksum for a part copied from a byte range of it, so an upload with an
// additional checksum completes with a wrong one or is refused (BadDigest).
// S3 computes each part's from the bytes copied (the S3 user guide,
// "Checking object integrity"). So the proxy remembers the checksum
// algorithm each multipart upload asked for and, once versitygw has copied
// a part (and judged the caller's rights to), writes the same bytes again as
// that part with their true checksum, and answers with it.

// uploadIDRE finds the id in a CreateMultipartUpload answer.
var uploadIDRE = regexp.MustCompile(`<UploadId>([^<]+)</UploadId>`)

// noteUpload remembers the checksum algorithm of an upload being created.
func (m *Manners) noteUpload(resp *http.Response, r *http.Request) error {
	alg := r.Header.Get("X-Amz-Checksum-Algorithm")
	if alg == "" {
		return nil
	}
	var id string
	err := rewriteBody(resp, func(b []byte) []byte {
		if g := uploadIDRE.FindSubmatch(b); g != nil {
			id = string(g[1])
		}
		return b
	})
	if id != "" {
		m.mu.Lock()
		m.uploads[id] = types.ChecksumAlgorithm(strings.ToUpper(alg))
		m.mu.Unlock()
	}
	return err
}

// fixPartChecksum gives a part versitygw copied the checksum of its bytes.
func (m *Manners) fixPartChecksum(resp *http.Response, r *http.Request, q request) error {
	query := r.URL.Query()
	m.mu.Lock()
	alg := m.uploads[query.Get("uploadId")]
	m.mu.Unlock()
	if alg == "" {
		return nil
	}
	part, err := strconv.Atoi(query.Get("partNumber"))
	if err != nil {
		return nil // versitygw has answered for it
	}
	ctx := r.Context()
	get := &s3.GetObjectInput{Bucket: aws.String(q.srcBucket), Key: aws.String(q.srcKey)}
	if q.srcVersion != "" {
		get.VersionId = aws.String(q.srcVersion)
	}
	if rng := r.Header.Get("X-Amz-Copy-Source-Range"); rng != "" {
		get.Range = aws.String(rng)
	}
	obj, err := m.client(q.srcBucket).GetObject(ctx, get)
	if err != nil {
		return fmt.Errorf("manners: read the copied range: %w", err)
	}
	data, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		return err
	}
	sum, ok := partChecksum(alg, data)
	if !ok {
		return nil // an algorithm the proxy cannot compute: left as versitygw made it
	}
	in := &s3.UploadPartInput{Bucket: aws.String(q.bucket), Key: aws.String(q.key), UploadId: aws.String(query.Get("uploadId")),
		PartNumber: aws.Int32(int32(part)), Body: bytes.NewReader(data)}
	setPartChecksum(in, alg, sum)
	if _, err := m.client(q.bucket).UploadPart(context.WithoutCancel(ctx), in); err != nil {
		return fmt.Errorf("manners: write the part with its checksum: %w", err)
	}
	tag := "Checksum" + string(alg)
	re := regexp.MustCompile(`<` + tag + `>[^<]*</` + tag + `>`)
	return rewriteBody(resp, func(b []byte) []byte {
		return re.ReplaceAll(b, []byte("<"+tag+">"+sum+"</"+tag+">"))
	})
}

// partChecksum is the base64 checksum of data under alg, false for an
// algorithm the proxy does not compute.
func partChecksum(alg types.ChecksumAlgorithm, data []byte) (string, bool) {
	var h hash.Hash
	switch alg {
	case types.ChecksumAlgorithmCrc32:
		h = crc32.NewIEEE()
	case types.ChecksumAlgorithmCrc32c:
		h = crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case types.ChecksumAlgorithmCrc64nvme:
		h = crc64.New(crc64.MakeTable(0x9a6c9329ac4bc9b5)) // CRC-64/NVME, reflected
	case types.ChecksumAlgorithmSha1:
		h = sha1.New()
	case types.ChecksumAlgorithmSha256:
		h = sha256.New()
	case types.ChecksumAlgorithmSha512:
		h = sha512.New()
	case types.ChecksumAlgorithmMd5:
		h = md5.New()
	default:
		return "", false
	}
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), true
}

// setPartChecksum sets the checksum header an UploadPart carries.
func setPartChecksum(in *s3.UploadPartInput, alg types.ChecksumAlgorithm, sum string) {
	switch alg {
	case types.ChecksumAlgorithmCrc32:
		in.ChecksumCRC32 = aws.String(sum)
	case types.ChecksumAlgorithmCrc32c:
		in.ChecksumCRC32C = aws.String(sum)
	case types.ChecksumAlgorithmCrc64nvme:
		in.ChecksumCRC64NVME = aws.String(sum)
	case types.ChecksumAlgorithmSha1:
		in.ChecksumSHA1 = aws.String(sum)
	case types.ChecksumAlgorithmSha256:
		in.ChecksumSHA256 = aws.String(sum)
	default:
		in.ChecksumAlgorithm = alg
	}
}
