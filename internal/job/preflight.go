package job

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/worker"
)

// preflightSample is how many source keys preflight looks at for one it can
// copy with CopyObject.
const preflightSample = 10

// preflight checks, before anything is enqueued, that these credentials can
// do what the copy needs: read a sample source object and its tags, write
// and tag its copy (the real copy of that key, which the workers would make
// anyway), and send to the work queue (a probe message that workers delete
// unreported). An access refusal stops the plan with a UsageError naming the
// permission and the resource. A sample that fails for any other reason (an
// archived object, a folder marker the server will not copy, an object that
// just changed) proves nothing either way: the next sample is tried, and if
// none can be copied the plan goes ahead with a warning. A plan that
// deletes (--delete, and the cutover unless --no-delete) also proves it
// may delete, deleting nothing (mayDelete).
func preflight(ctx context.Context, j *Job, work *queue.SQS, sum *plan.Summary, deletes bool, log zerolog.Logger) error {
	direct := copier.NewDirect(j.DstAPI, nil)
	direct.Owners = j.owners
	var copies SampleCopier = copier.NewBetween(j.SrcAPI, direct, copier.Options{})
	if j.AsOf != nil {
		copies = versionSample{copies: copies, asOf: j.AsOf}
	}
	if err := j.PreflightS3(ctx, copies, sum, log); err != nil {
		return err
	}
	if deletes {
		if err := mayDelete(ctx, j.DstAPI, sum); err != nil {
			return err
		}
	}
	probe, err := plan.ProbeBody(sum)
	if err != nil {
		return err
	}
	if err := work.Send(ctx, []queue.Outgoing{{Body: probe, Run: sum.Run, Kind: plan.OpProbe}}); err != nil {
		return denied(err, "sqs:SendMessage", work.URL())
	}
	return nil
}

// SampleCopier copies the preflight's sample, as the workers will copy:
// *copier.Copier or *copier.Regional.
type SampleCopier interface {
	Copy(ctx context.Context, src copier.Source, dst copier.Target) error
}

// PreflightS3 is the S3 half of the preflight BeginPlan makes: read, copy
// and tag a sample, the copy made through copies, as the workers will make
// theirs (connect j first). An access refusal is a cli.UsageError naming
// the permission and the resource; a sample that fails otherwise proves
// nothing, and when none can be copied it warns and returns nil.
func (j *Job) PreflightS3(ctx context.Context, copies SampleCopier, sum *plan.Summary, log zerolog.Logger) error {
	src, api := sum.Source, j.SrcAPI
	page, err := listing.Page(ctx, api, &s3.ListObjectsV2Input{
		Bucket: aws.String(src.Bucket), Prefix: aws.String(src.Prefix), MaxKeys: aws.Int32(preflightSample),
	})
	if err != nil {
		return denied(err, "s3:ListBucket", bucketARN(src.Bucket))
	}
	// Objects too large for one CopyObject, and archived ones (which no
	// copy can read until restored), prove nothing about permissions.
	samples := slices.DeleteFunc(page.Contents, func(o types.Object) bool {
		return aws.ToInt64(o.Size) > copier.MaxCopyObjectSize || archived(o.StorageClass)
	})
	// Plain objects first, smallest first; folder markers last.
	slices.SortFunc(samples, func(a, b types.Object) int {
		am, bm := strings.HasSuffix(aws.ToString(a.Key), "/"), strings.HasSuffix(aws.ToString(b.Key), "/")
		if am != bm {
			if am {
				return 1
			}
			return -1
		}
		return cmp.Compare(aws.ToInt64(a.Size), aws.ToInt64(b.Size))
	})
	var lastErr error
	for _, o := range samples {
		err := tryCopy(ctx, api, copies, sum, o)
		if err == nil {
			lastErr = nil
			break
		}
		var usage *cli.UsageError
		if errors.As(err, &usage) {
			return err
		}
		lastErr = err
	}
	if lastErr != nil {
		log.Warn().Err(lastErr).Msg("preflight could not copy any sample object; write permissions are unconfirmed")
	}
	return nil
}

// tryCopy reads one sample object and its tags and copies it to its
// destination key, as a worker would.
func tryCopy(ctx context.Context, api *s3.Client, copies SampleCopier, sum *plan.Summary, o types.Object) error {
	src, dst := sum.Source, sum.Dest
	key := aws.ToString(o.Key)
	if _, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(src.Bucket), Key: o.Key}); err != nil {
		return denied(err, "s3:GetObject", objectARN(src.Bucket, key))
	}
	if _, err := api.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(src.Bucket), Key: o.Key}); err != nil {
		return denied(err, "s3:GetObjectTagging", objectARN(src.Bucket, key))
	}
	if sum.Copy.Lock {
		if err := mayReadLock(ctx, api, src.Bucket, key); err != nil {
			return err
		}
	}
	dstKey := plan.DestKey(src, dst, key)
	// Written as the workers will write it: with the run's copy options,
	// which a destination's policy may demand (an ACL, SSE-KMS).
	err := copies.Copy(ctx, copier.Source{
		Bucket: src.Bucket, Region: src.Region, Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), StorageClass: string(o.StorageClass),
	}, copier.Target{Bucket: dst.Bucket, Region: dst.Region, Key: dstKey, Write: worker.WriteOf(sum.Copy)})
	if err != nil {
		return denied(err, writeGrants(sum.Copy), objectARN(dst.Bucket, dstKey))
	}
	return nil
}

// mayReadLock checks the retention and legal hold of a sample can be read:
// HeadObject shows them only to a caller with s3:GetObjectRetention and
// s3:GetObjectLegalHold and says nothing when it lacks them, so without
// this check a copy would quietly go unlocked. An object with none
// (NoSuchObjectLockConfiguration) proves the right as well.
func mayReadLock(ctx context.Context, api *s3.Client, bucket, key string) error {
	_, err := api.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err == nil || !IsDenied(err) {
		_, err = api.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	}
	if err != nil && IsDenied(err) {
		return cli.Usagef("preflight: access denied: grant s3:GetObjectRetention and s3:GetObjectLegalHold on %s: the source has Object Lock, "+
			"and without them HeadObject hides each object's retention and the copies would go unlocked (or pass --skip-object-lock to copy them unlocked on purpose; nothing was enqueued)",
			objectARN(bucket, key))
	}
	return nil
}

// mayDelete proves, before the window, that destination objects may be
// deleted as the workers delete them: a DeleteObject conditional on an
// ETag (If-Match), which S3 allows only with s3:DeleteObject and
// s3:GetObject ("How to perform conditional deletes", S3 user guide). It
// asks for a key that does not exist, under the destination's prefix, so
// nothing is deleted: S3 answers 404 NoSuchKey when the caller may
// delete, and 403 when not. Without the check a refused delete is retried
// until its message is dead-lettered, minutes into the window.
func mayDelete(ctx context.Context, api *s3.Client, sum *plan.Summary) error {
	dst := sum.Dest
	key := dst.Prefix + ".s3clone-preflight-delete-" + sum.Run
	_, err := api.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(dst.Bucket), Key: aws.String(key),
		IfMatch: aws.String(`"00000000000000000000000000000000"`), // no object has it: an MD5 ETag of all zeros
	})
	if err == nil || !IsDenied(err) {
		return nil // 404 (the key is not there), 412, or another server's answer: the delete was allowed
	}
	return cli.Usagef("preflight: access denied: grant s3:DeleteObject and s3:GetObject on %s: this run deletes destination objects that are not in the source, "+
		"and S3 allows a delete conditional on the ETag only with both (the stack: AllowDelete=true); or leave deletions out (cutover --no-delete, plan without --delete). Nothing was enqueued or deleted",
		objectARN(dst.Bucket, dst.Prefix+"*"))
}

// writeGrants names what a copy written with c's options needs granted on
// the destination object, and the options a destination's policy may
// demand (a refusal can be either).
func writeGrants(c plan.Copy) string {
	grants := "s3:PutObject, s3:PutObjectTagging and s3:PutObjectAnnotation (and s3:GetObjectAnnotation on the source: CopyObject copies annotations)"
	if c.ACL != "" {
		grants += " and s3:PutObjectAcl"
	}
	if c.SSEKMSKeyID != "" {
		grants += ", kms:GenerateDataKey on " + c.SSEKMSKeyID + ","
	}
	if c.Lock {
		grants += " and s3:PutObjectRetention and s3:PutObjectLegalHold"
	}
	return grants + fmt.Sprintf(" (copies written with --acl %q --sse-kms-key-id %q --storage-class %q: if the destination's policy demands an ACL or encryption, give them to the plan)", c.ACL, c.SSEKMSKeyID, c.StorageClass)
}

// archived reports a storage class whose objects must be restored before
// they can be copied.
func archived(class types.ObjectStorageClass) bool {
	return class == types.ObjectStorageClassGlacier || class == types.ObjectStorageClassDeepArchive
}

// denied turns an access refusal into a UsageError naming what to grant,
// and passes any other error through. A 403 with another code (an archived
// object's InvalidObjectState) is not a refusal of access.
func denied(err error, permission, resource string) error {
	if IsDenied(err) {
		hint := ""
		if strings.HasPrefix(resource, "arn:aws:s3:::") {
			hint = "; if the bucket is Requester Pays, add --request-payer; if --source-owner or --dest-owner is given, check it is the bucket's owner"
		}
		return cli.Usagef("preflight: access denied: grant %s on %s%s (nothing was enqueued)", permission, resource, hint)
	}
	return fmt.Errorf("preflight (%s on %s): %w", permission, resource, err)
}

// IsDenied reports an access refusal, by S3, SQS or KMS: its error code,
// or a 403 with none. A 403 with another code (an archived object's
// InvalidObjectState) is not one.
func IsDenied(err error) bool {
	var api smithy.APIError
	var re *smithyhttp.ResponseError
	if errors.As(err, &api) && api.ErrorCode() != "" {
		switch api.ErrorCode() {
		case "AccessDenied", "Forbidden", "AccessDeniedException", "AWS.SimpleQueueService.AccessDenied", "KMS.AccessDeniedException":
			return true
		}
		return false
	}
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden // a 403 with no code to say otherwise
}

func bucketARN(bucket string) string      { return "arn:aws:s3:::" + bucket }
func objectARN(bucket, key string) string { return "arn:aws:s3:::" + bucket + "/" + key }
