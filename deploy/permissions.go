// Package deploy holds what an operator applies to AWS: the CloudFormation
// template (s3clone.yaml), the Dockerfile, and the one list of AWS calls the
// code makes with the IAM permissions each needs. Tests hold all three to
// that list: every S3, SQS and ECS call in the code appears in it, and each
// role in the template grants exactly its part of it, on exactly the named
// buckets, queues and service.
package deploy

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
)

// Template is the CloudFormation template, s3clone.yaml.
//
//go:embed s3clone.yaml
var Template []byte

// Role is who makes a call.
type Role string

const (
	// Worker is the fleet: it drains the work queue and copies.
	Worker Role = "worker"
	// Planner plans, reports status, verifies, redrives and scales the
	// fleet. (planner run, the one-process mode, needs Planner and Worker.)
	Planner Role = "planner"
	// Operator is a person outside the stack's tasks (the stack's
	// OperatorPolicy): runs the planner as an ECS task and reads its log
	// (planner task), warms and releases the fleet (planner fleet), and
	// reads status.
	Operator Role = "operator"
)

// Roles are every role, in the order the permission table lists them.
var Roles = []Role{Planner, Worker, Operator}

// Resource is what a permission is granted on; the template names each with
// one expression (see the template tests).
type Resource string

const (
	SourceBucket    Resource = "source bucket"
	SourceObjects   Resource = "source objects"
	DestBucket      Resource = "destination bucket"
	DestObjects     Resource = "destination objects"
	WorkQueue       Resource = "work queue"
	DeadLetterQueue Resource = "dead-letter queue"
	WorkerService   Resource = "worker service"
	// The run ledger (docs/design.md, "The run ledger"): its bucket, listed only
	// under the ledger's prefix, and its kinds of record.
	LedgerBucket  Resource = "ledger bucket (under its prefix)"
	LedgerObjects Resource = "ledger records"        // PREFIX*: everything, to read
	LedgerRuns    Resource = "ledger run records"    // PREFIX/runs/*/run.json
	LedgerSent    Resource = "ledger sent records"   // PREFIX/runs/*/sent/*
	LedgerEntries Resource = "ledger entries"        // PREFIX/runs/*/done/*
	LedgerWorkers Resource = "ledger worker records" // PREFIX/workers/*
	// Customer-managed KMS keys, when the stack names them: S3 calls on
	// SSE-KMS objects need the caller to be allowed the key.
	SourceKmsKey Resource = "source KMS key"
	DestKmsKey   Resource = "destination KMS key"
	// The ledger bucket's customer-managed KMS key, when its default
	// encryption is SSE-KMS (LedgerKmsKeyArn).
	LedgerKmsKey Resource = "ledger KMS key"
	// A cutover's verdict and reconciliation file: PREFIX/runs/*/results/*.
	LedgerResults Resource = "ledger results"
	// Plans' checkpoints kept in the ledger (--checkpoint ledger:NAME):
	// PREFIX/checkpoints/*.
	LedgerCheckpoints Resource = "ledger checkpoints"
	// Who holds a worker service's scale-in suspended: PREFIX/fleet/*.
	LedgerFleetHolds Resource = "ledger fleet holds"
	// The fleet's shared write rates and workers' presence: PREFIX/pace/*.
	LedgerPace Resource = "ledger pace records"
	// planner follow's record of its run (PREFIX/runs/*/follow.json) and
	// the cutover marks it saw (PREFIX/runs/*/marks/*).
	LedgerFollow Resource = "ledger follow records"
	LedgerMarks  Resource = "ledger marks"
	// With Follow: the queue the source bucket's events arrive on, and the
	// source's marker objects (SOURCE/.s3clone-marks/*: follow's probe and
	// a cutover's mark, never copied).
	ChangeQueue Resource = "change queue"
	SourceMarks Resource = "source marks (.s3clone-marks/)"
	// Application Auto Scaling's scalable targets of the account and region:
	// DescribeScalableTargets takes no resource, and a target's ARN has an
	// id the stack cannot name.
	ScalableTargets Resource = "scalable targets (any)"
	// What the operator's planner task needs: the stack itself (its
	// outputs), the planner's task definition, the roles it passes to ECS,
	// the cluster's tasks and the log group's streams.
	Stack          Resource = "the stack"
	PlannerTaskDef Resource = "planner task definition"
	PlannerRoleRes Resource = "planner role"
	ExecutionRole  Resource = "execution role"
	ClusterTasks   Resource = "cluster's tasks"
	LogStreams     Resource = "log group's streams"
)

// Call is one AWS API operation the code calls and what it needs.
type Call struct {
	Service string // "s3", "sqs", "ecs", "application-autoscaling", "logs" or "cloudformation": the IAM service prefix
	Op      string // the SDK client's method, e.g. "CopyObject"
	Role    Role
	// Actions are the IAM actions the call needs, each on every resource in On.
	Actions []string
	On      []Resource
	// When names the template condition under which the call is made
	// (e.g. only with a canned ACL); empty: always.
	When string
	Why  string
}

// Calls is the single source of truth for permissions. The S3 rules follow
// the S3 API reference: a copy needs s3:GetObject on the source and
// s3:PutObject on the destination, and copying tags needs
// s3:GetObjectTagging on the source and s3:PutObjectTagging on the
// destination; HeadBucket needs s3:ListBucket. A read of one version of an
// object (a versionId, or ?versionId= in a copy source: plan --as-of's
// copies) needs s3:GetObjectVersion, and of its tags
// s3:GetObjectVersionTagging; listing versions needs s3:ListBucketVersions.
var Calls = []Call{
	// The worker: copies, multipart copies, deletes (with --delete).
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"s3:GetObject", "s3:GetObjectTagging"}, On: []Resource{SourceObjects}, Why: "read the source of a copy and its tags"},
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"s3:ListBucket"}, On: []Resource{SourceBucket}, Why: "without it S3 answers 403, not 404, for a source object deleted since the plan, which reads as a missing permission"},
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"s3:PutObject", "s3:PutObjectTagging"}, On: []Resource{DestObjects}, Why: "write the copy with the source's tags"},
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"s3:PutObjectAcl"}, On: []Resource{DestObjects}, When: "HasCannedAcl", Why: "--acl sets a canned ACL on each copy"},
	{Service: "s3", Op: "HeadObject", Role: Worker, Actions: []string{"s3:GetObject"}, On: []Resource{SourceObjects}, Why: "metadata of an object copied in parts, or of one whose website redirect or Object Lock S3 does not copy"},
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"s3:GetObjectAnnotation"}, On: []Resource{SourceObjects},
		Why: "CopyObject copies annotations by default (directive COPY), which its API reference says needs this on the source"},
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"s3:PutObjectAnnotation"}, On: []Resource{DestObjects},
		Why: "and this on the destination"},
	{Service: "s3", Op: "ListObjectAnnotations", Role: Worker, Actions: []string{"s3:ListObjectAnnotations"}, On: []Resource{SourceObjects}, Why: "a copy in parts, which S3 makes without annotations, carries the source's: list them"},
	{Service: "s3", Op: "GetObjectAnnotation", Role: Worker, Actions: []string{"s3:GetObjectAnnotation"}, On: []Resource{SourceObjects}, Why: "read each"},
	{Service: "s3", Op: "PutObjectAnnotation", Role: Worker, Actions: []string{"s3:PutObjectAnnotation"}, On: []Resource{DestObjects}, Why: "and put it on the copy"},
	{Service: "s3", Op: "HeadObject", Role: Worker, Actions: []string{"s3:GetObjectRetention", "s3:GetObjectLegalHold"}, On: []Resource{SourceObjects},
		Why: "an Object Lock source's retention and holds, which HeadObject shows only with these"},
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"s3:PutObjectRetention", "s3:PutObjectLegalHold"}, On: []Resource{DestObjects},
		Why: "set on each copy the retention and holds of an Object Lock source, which S3 does not copy"},
	{Service: "s3", Op: "CreateMultipartUpload", Role: Worker, Actions: []string{"s3:PutObjectRetention", "s3:PutObjectLegalHold"}, On: []Resource{DestObjects},
		Why: "set on a copy in parts the retention and holds of an Object Lock source"},
	{Service: "s3", Op: "GetObjectTagging", Role: Worker, Actions: []string{"s3:GetObjectTagging"}, On: []Resource{SourceObjects}, Why: "tags of an object copied in parts"},
	{Service: "s3", Op: "CreateMultipartUpload", Role: Worker, Actions: []string{"s3:PutObject", "s3:PutObjectTagging"}, On: []Resource{DestObjects}, Why: "start a copy in parts, with the source's tags"},
	{Service: "s3", Op: "UploadPartCopy", Role: Worker, Actions: []string{"s3:GetObject"}, On: []Resource{SourceObjects}, Why: "read one part's range of the source"},
	{Service: "s3", Op: "UploadPartCopy", Role: Worker, Actions: []string{"s3:PutObject"}, On: []Resource{DestObjects}, Why: "write one part"},
	{Service: "s3", Op: "CompleteMultipartUpload", Role: Worker, Actions: []string{"s3:PutObject"}, On: []Resource{DestObjects}, Why: "finish a copy in parts"},
	{Service: "s3", Op: "AbortMultipartUpload", Role: Worker, Actions: []string{"s3:AbortMultipartUpload"}, On: []Resource{DestObjects}, Why: "leave nothing behind when a copy in parts fails"},
	// A copy of one version of the source (plan --as-of, message version 5:
	// the entry's version id). It reads that version everywhere: the copy
	// source's ?versionId=, and versionId on HeadObject, GetObjectTagging and
	// the annotation calls. Granted always: --as-of is a plan's flag, not a
	// stack parameter, so the stack cannot know whether its plans go back in
	// time. These read the source's older versions, not only what it holds
	// now. Annotations of a version: ListObjectAnnotations' and
	// GetObjectAnnotation's API references name s3:ListObjectAnnotations and
	// s3:GetObjectAnnotation alone, versionId or not (no version action is
	// documented), which the calls above grant.
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"s3:GetObjectVersion", "s3:GetObjectVersionTagging"}, On: []Resource{SourceObjects},
		Why: "plan --as-of: copy one version of the source (?versionId= in the copy source; S3 API reference, \"CopyObject\", x-amz-copy-source), " +
			"which reads an older version of the source: s3:GetObjectVersion, as a versionId needs in place of s3:GetObject (S3 API reference, \"GetObject\", versionId), " +
			"and its tags (directive COPY) s3:GetObjectVersionTagging, " +
			"as reading a version's tags needs (S3 API reference, \"GetObjectTagging\"); granted always, --as-of being a plan's flag"},
	{Service: "s3", Op: "HeadObject", Role: Worker, Actions: []string{"s3:GetObjectVersion"}, On: []Resource{SourceObjects},
		Why: "plan --as-of: the metadata of the version copied, in parts or carrying what S3 does not copy (S3 API reference, \"HeadObject\": the read object, or version, permission); an older version of the source"},
	{Service: "s3", Op: "UploadPartCopy", Role: Worker, Actions: []string{"s3:GetObjectVersion"}, On: []Resource{SourceObjects},
		Why: "plan --as-of: read one part's range of the version copied (?versionId= in the copy source; S3 API reference, \"UploadPartCopy\"); an older version of the source"},
	{Service: "s3", Op: "GetObjectTagging", Role: Worker, Actions: []string{"s3:GetObjectVersionTagging"}, On: []Resource{SourceObjects},
		Why: "plan --as-of: the tags of the version copied in parts (S3 API reference, \"GetObjectTagging\": tags of any version but the current need s3:GetObjectVersionTagging too)"},
	{Service: "s3", Op: "DeleteObjects", Role: Worker, Actions: []string{"s3:DeleteObject", "s3:GetObject"}, On: []Resource{DestObjects}, When: "AllowDelete",
		Why: "plan --diff --delete: remove what the source no longer has, only while it is the object listed (a delete conditional on an ETag needs s3:GetObject too); granted only with AllowDelete"},
	{Service: "s3", Op: "DeleteObject", Role: Worker, Actions: []string{"s3:DeleteObject", "s3:GetObject"}, On: []Resource{DestObjects}, When: "AllowDelete",
		Why: "the same, one key at a time, for a key DeleteObjects' XML cannot carry (a control character)"},
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"kms:Decrypt"}, On: []Resource{SourceKmsKey}, When: "HasSourceKmsKey", Why: "read a source object encrypted with the source's KMS key"},
	{Service: "s3", Op: "CopyObject", Role: Worker, Actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, On: []Resource{DestKmsKey}, When: "HasDestinationKmsKey", Why: "write a copy encrypted with the destination's KMS key (Decrypt: a copy in parts)"},
	{Service: "sqs", Op: "GetQueueAttributes", Role: Worker, Actions: []string{"sqs:GetQueueAttributes"}, On: []Resource{WorkQueue}, Why: "check the work queue at start"},
	{Service: "sqs", Op: "ReceiveMessage", Role: Worker, Actions: []string{"sqs:ReceiveMessage"}, On: []Resource{WorkQueue}, Why: "take work"},
	{Service: "sqs", Op: "ChangeMessageVisibilityBatch", Role: Worker, Actions: []string{"sqs:ChangeMessageVisibility"}, On: []Resource{WorkQueue}, Why: "keep work hidden while copying it; hand it back on stop or for a retry later"},
	{Service: "sqs", Op: "DeleteMessageBatch", Role: Worker, Actions: []string{"sqs:DeleteMessage"}, On: []Resource{WorkQueue}, Why: "finish work"},
	{Service: "s3", Op: "PutObject", Role: Worker, Actions: []string{"s3:PutObject"}, On: []Resource{LedgerEntries, LedgerWorkers}, Why: "record each finished message in the ledger; the worker's record at start proves it may"},
	{Service: "s3", Op: "PutObject", Role: Worker, Actions: []string{"kms:GenerateDataKey"}, On: []Resource{LedgerKmsKey}, When: "HasLedgerKmsKey", Why: "write ledger entries into a bucket encrypted by default with a customer-managed key"},
	{Service: "s3", Op: "ListObjectsV2", Role: Worker, Actions: []string{"s3:ListBucket"}, On: []Resource{LedgerBucket}, Why: "each second, count the fleet and find the prefix rates other workers changed (pace/)"},
	{Service: "s3", Op: "GetObject", Role: Worker, Actions: []string{"s3:GetObject"}, On: []Resource{LedgerPace}, Why: "read a prefix's write rate, as the fleet learned it"},
	{Service: "s3", Op: "GetObject", Role: Worker, Actions: []string{"kms:Decrypt"}, On: []Resource{LedgerKmsKey}, When: "HasLedgerKmsKey", Why: "read the rates from a ledger encrypted by default with a customer-managed key"},
	{Service: "s3", Op: "PutObject", Role: Worker, Actions: []string{"s3:PutObject"}, On: []Resource{LedgerPace}, Why: "write a prefix's rate cut after a throttle or raised, and the worker's presence, which counts the fleet"},
	{Service: "s3", Op: "DeleteObject", Role: Worker, Actions: []string{"s3:DeleteObject"}, On: []Resource{LedgerPace}, Why: "take the worker's presence off when it stops"},

	// The planner: plan (with --diff and preflight), status (with
	// --scale-ecs), verify, redrive.
	{Service: "s3", Op: "HeadBucket", Role: Planner, Actions: []string{"s3:ListBucket"}, On: []Resource{SourceBucket, DestBucket}, Why: "check both buckets before planning"},
	{Service: "s3", Op: "GetBucketWebsite", Role: Planner, Actions: []string{"s3:GetBucketWebsite"}, On: []Resource{SourceBucket, DestBucket},
		Why: "where either bucket is a website, objects' website redirects (which S3 does not copy) are read and carried; refused it, they are anyway"},
	{Service: "s3", Op: "GetObjectLockConfiguration", Role: Planner, Actions: []string{"s3:GetBucketObjectLockConfiguration"}, On: []Resource{SourceBucket, DestBucket},
		Why: "a source with Object Lock: its copies carry each object's retention and holds, never below the destination's default retention"},
	{Service: "s3", Op: "ListObjectsV2", Role: Planner, Actions: []string{"s3:ListBucket"}, On: []Resource{LedgerBucket}, Why: "check the ledger's bucket; find runs, sent records and entries (status, verify, redrive)"},
	{Service: "s3", Op: "GetObject", Role: Planner, Actions: []string{"s3:GetObject"}, On: []Resource{LedgerObjects}, Why: "read run records, sent records and entries (status, verify, redrive)"},
	{Service: "s3", Op: "PutObject", Role: Planner, Actions: []string{"s3:PutObject"}, On: []Resource{LedgerRuns, LedgerSent}, Why: "record the run, and every message it sends"},
	{Service: "s3", Op: "ListObjectsV2", Role: Planner, Actions: []string{"s3:ListBucket"}, On: []Resource{SourceBucket, DestBucket}, Why: "list the source; list the destination for --diff and verify"},
	{Service: "s3", Op: "HeadObject", Role: Planner, Actions: []string{"s3:GetObject"}, On: []Resource{SourceObjects, DestObjects}, Why: "compare checksums of same-size pairs, and website redirects (--diff, verify); preflight reads one source object"},
	{Service: "s3", Op: "HeadObject", Role: Planner, Actions: []string{"s3:GetObjectRetention", "s3:GetObjectLegalHold"}, On: []Resource{SourceObjects},
		Why: "preflight: read the retention and holds of a sample from an Object Lock source"},
	{Service: "s3", Op: "GetObjectRetention", Role: Planner, Actions: []string{"s3:GetObjectRetention"}, On: []Resource{SourceObjects},
		Why: "preflight: prove a locked source's retention can be read (HeadObject hides it, silently, without the right)"},
	{Service: "s3", Op: "GetObjectLegalHold", Role: Planner, Actions: []string{"s3:GetObjectLegalHold"}, On: []Resource{SourceObjects},
		Why: "preflight: the same for its legal hold"},
	{Service: "s3", Op: "CopyObject", Role: Planner, Actions: []string{"s3:PutObjectRetention", "s3:PutObjectLegalHold"}, On: []Resource{DestObjects},
		Why: "preflight: set them on the sample's copy, as a worker would"},
	{Service: "s3", Op: "CopyObject", Role: Planner, Actions: []string{"s3:GetObjectAnnotation"}, On: []Resource{SourceObjects},
		Why: "preflight: the sample's copy brings its annotations, as a worker's does"},
	{Service: "s3", Op: "CopyObject", Role: Planner, Actions: []string{"s3:PutObjectAnnotation"}, On: []Resource{DestObjects},
		Why: "preflight: the sample's copy brings its annotations, as a worker's does"},
	{Service: "s3", Op: "GetObjectTagging", Role: Planner, Actions: []string{"s3:GetObjectTagging"}, On: []Resource{SourceObjects}, Why: "preflight: read a sample's tags"},
	{Service: "s3", Op: "CopyObject", Role: Planner, Actions: []string{"s3:GetObject", "s3:GetObjectTagging"}, On: []Resource{SourceObjects}, Why: "preflight: copy one sample object, as a worker would"},
	{Service: "s3", Op: "CopyObject", Role: Planner, Actions: []string{"s3:PutObject", "s3:PutObjectTagging"}, On: []Resource{DestObjects}, Why: "preflight: copy one sample object, with its tags, as a worker would"},
	{Service: "s3", Op: "CopyObject", Role: Planner, Actions: []string{"kms:Decrypt"}, On: []Resource{SourceKmsKey}, When: "HasSourceKmsKey", Why: "preflight: read a sample encrypted with the source's KMS key"},
	{Service: "s3", Op: "HeadObject", Role: Planner, Actions: []string{"kms:Decrypt"}, On: []Resource{SourceKmsKey}, When: "HasSourceKmsKey",
		Why: "--diff and verify read the checksums of SSE-KMS source objects (without it they go by size and age)"},
	{Service: "s3", Op: "HeadObject", Role: Planner, Actions: []string{"kms:Decrypt"}, On: []Resource{DestKmsKey}, When: "HasDestinationKmsKey",
		Why: "--diff and verify read the checksums of SSE-KMS copies (without it they go by size and age)"},
	{Service: "s3", Op: "CopyObject", Role: Planner, Actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, On: []Resource{DestKmsKey}, When: "HasDestinationKmsKey", Why: "preflight: write the sample's copy encrypted with the destination's KMS key"},
	{Service: "sqs", Op: "GetQueueAttributes", Role: Planner, Actions: []string{"sqs:GetQueueAttributes"}, On: []Resource{WorkQueue, DeadLetterQueue}, Why: "check the queues; queue depths and the dead-letter queue for status"},
	{Service: "sqs", Op: "GetQueueUrl", Role: Planner, Actions: []string{"sqs:GetQueueUrl"}, On: []Resource{DeadLetterQueue}, Why: "find the dead-letter queue from the work queue's redrive policy"},
	{Service: "sqs", Op: "SendMessageBatch", Role: Planner, Actions: []string{"sqs:SendMessage"}, On: []Resource{WorkQueue}, Why: "enqueue work (and redriven work)"},
	{Service: "sqs", Op: "ReceiveMessage", Role: Planner, Actions: []string{"sqs:ReceiveMessage"}, On: []Resource{DeadLetterQueue}, Why: "read dead letters to redrive"},
	{Service: "sqs", Op: "DeleteMessageBatch", Role: Planner, Actions: []string{"sqs:DeleteMessage"}, On: []Resource{DeadLetterQueue}, Why: "drop dead letters once redriven (or found done in the ledger)"},
	{Service: "sqs", Op: "ChangeMessageVisibilityBatch", Role: Planner, Actions: []string{"sqs:ChangeMessageVisibility"}, On: []Resource{DeadLetterQueue}, Why: "hand back what redrive read but did not move"},
	{Service: "ecs", Op: "DescribeServices", Role: Planner, Actions: []string{"ecs:DescribeServices"}, On: []Resource{WorkerService}, Why: "status and cutover --scale-ecs: the service's desired and running counts"},
	{Service: "ecs", Op: "UpdateService", Role: Planner, Actions: []string{"ecs:UpdateService"}, On: []Resource{WorkerService}, Why: "status and cutover --scale-ecs: set the desired count"},
	{Service: "application-autoscaling", Op: "DescribeScalableTargets", Role: Planner, Actions: []string{"application-autoscaling:DescribeScalableTargets"}, On: []Resource{ScalableTargets},
		Why: "status and cutover --scale-ecs: find the worker service's scalable target (backlog scaling)"},
	{Service: "application-autoscaling", Op: "RegisterScalableTarget", Role: Planner, Actions: []string{"application-autoscaling:RegisterScalableTarget"}, On: []Resource{ScalableTargets},
		Why: "status and cutover --scale-ecs: suspend the service's dynamic scale-in while steering, and resume it (it needs ecs:DescribeServices and ecs:UpdateService on the service too)"},
	{Service: "s3", Op: "DeleteObject", Role: Planner, Actions: []string{"s3:DeleteObject", "s3:GetObject"}, On: []Resource{DestObjects}, When: "AllowDelete",
		Why: "preflight of a plan that deletes: a delete conditional on an ETag, of a key that is not there, proves the fleet may delete (it deletes nothing)"},
	{Service: "s3", Op: "PutObject", Role: Planner, Actions: []string{"s3:PutObject"}, On: []Resource{LedgerResults}, Why: "record a cutover's verdict and reconciliation file"},
	{Service: "s3", Op: "PutObject", Role: Planner, Actions: []string{"s3:PutObject"}, On: []Resource{LedgerFleetHolds}, Why: "status and cutover --scale-ecs: record the hold on the fleet while scale-in is suspended, and its release"},
	{Service: "s3", Op: "PutObject", Role: Planner, Actions: []string{"s3:PutObject"}, On: []Resource{LedgerCheckpoints}, Why: "plan --checkpoint ledger:NAME: keep the plan's progress in the ledger (written only over the one last read, If-Match)"},
	{Service: "s3", Op: "PutObject", Role: Planner, Actions: []string{"kms:GenerateDataKey"}, On: []Resource{LedgerKmsKey}, When: "HasLedgerKmsKey", Why: "write ledger records into a bucket encrypted by default with a customer-managed key"},
	{Service: "s3", Op: "GetObject", Role: Planner, Actions: []string{"kms:Decrypt"}, On: []Resource{LedgerKmsKey}, When: "HasLedgerKmsKey", Why: "read ledger records encrypted with it"},

	// plan --as-of TIME: the source as it was at TIME, from its versions.
	// Granted always (--as-of is a plan's flag, not a stack parameter: the
	// stack cannot know whether its plans go back in time); these read the
	// source's older versions, not only what it holds now.
	{Service: "s3", Op: "GetBucketVersioning", Role: Planner, Actions: []string{"s3:GetBucketVersioning"}, On: []Resource{SourceBucket},
		Why: "plan --as-of: check the source's versioning was ever enabled, so that it kept versions to go back to (S3 API reference, \"GetBucketVersioning\"; " +
			"it says only the bucket's owner reads it: a source in another account grants it in its bucket policy); granted always"},
	{Service: "s3", Op: "ListObjectVersions", Role: Planner, Actions: []string{"s3:ListBucketVersions"}, On: []Resource{SourceBucket},
		Why: "plan --as-of: list the source as it was, from its versions and delete markers, and find the preflight sample's version then " +
			"(S3 API reference, \"ListObjectVersions\": it needs s3:ListBucketVersions, not s3:ListBucket); it lists the source's older versions; granted always"},
	{Service: "s3", Op: "HeadObject", Role: Planner, Actions: []string{"s3:GetObjectVersion"}, On: []Resource{SourceObjects},
		Why: "plan --as-of with --diff: compare the checksums of the version listed, an older version of the source, and preflight's head of the sample's version " +
			"(S3 API reference, \"HeadObject\": the read object, or version, permission; \"GetObject\": a versionId needs s3:GetObjectVersion)"},
	{Service: "s3", Op: "CopyObject", Role: Planner, Actions: []string{"s3:GetObjectVersion", "s3:GetObjectVersionTagging"}, On: []Resource{SourceObjects},
		Why: "plan --as-of's preflight: copy the sample key's version at the time, with its tags, as a worker would (proving s3:GetObjectVersion, " +
			"where a copy of the current object would prove s3:GetObject)"},

	// planner follow and cutover --follow (the stack's Follow parameter:
	// FollowService runs follow with the planner's role). The catch-up
	// listing is plan --diff's, above; sync work goes out as a plan's.
	{Service: "s3", Op: "GetBucketNotificationConfiguration", Role: Planner, Actions: []string{"s3:GetBucketNotification"}, On: []Resource{SourceBucket}, When: "FollowEnabled",
		Why: "follow: read the source bucket's notification configuration, to add its own to what is there (and take it off again, --unsubscribe)"},
	{Service: "s3", Op: "PutBucketNotificationConfiguration", Role: Planner, Actions: []string{"s3:PutBucketNotification"}, On: []Resource{SourceBucket}, When: "FollowEnabled",
		Why: "follow: write it back with follow's queue configuration added (or EventBridge turned on), and without it on --unsubscribe"},
	{Service: "s3", Op: "PutObject", Role: Planner, Actions: []string{"s3:PutObject"}, On: []Resource{SourceMarks}, When: "FollowEnabled",
		Why: "follow's probe and cutover --follow's mark: an empty object whose event shows the events come through, and up to when"},
	{Service: "s3", Op: "DeleteObject", Role: Planner, Actions: []string{"s3:DeleteObject"}, On: []Resource{SourceMarks}, When: "FollowEnabled",
		Why: "delete the probe and the mark once their events came"},
	{Service: "s3", Op: "PutObject", Role: Planner, Actions: []string{"kms:GenerateDataKey"}, On: []Resource{SourceKmsKey}, When: "FollowSourceKmsKey",
		Why: "write the probe and the mark into a source encrypted by default with its KMS key"},
	{Service: "sqs", Op: "GetQueueAttributes", Role: Planner, Actions: []string{"sqs:GetQueueAttributes"}, On: []Resource{ChangeQueue}, When: "FollowEnabled",
		Why: "follow: check the change queue, and read its ARN for the bucket's configuration"},
	{Service: "sqs", Op: "ReceiveMessage", Role: Planner, Actions: []string{"sqs:ReceiveMessage"}, On: []Resource{ChangeQueue}, When: "FollowEnabled", Why: "follow: take the source's events"},
	{Service: "sqs", Op: "DeleteMessageBatch", Role: Planner, Actions: []string{"sqs:DeleteMessage"}, On: []Resource{ChangeQueue}, When: "FollowEnabled",
		Why: "follow: drop events once the work they became is sent and recorded"},
	{Service: "s3", Op: "PutObject", Role: Planner, Actions: []string{"s3:PutObject"}, On: []Resource{LedgerFollow, LedgerMarks}, When: "FollowEnabled",
		Why: "follow: record its progress (every 5 s; a cutover --follow reads it) and each cutover mark it saw"},

	// The operator: planner task, planner fleet and planner status from outside the stack's tasks.
	{Service: "cloudformation", Op: "DescribeStacks", Role: Operator, Actions: []string{"cloudformation:DescribeStacks"}, On: []Resource{Stack}, Why: "planner task: the stack's outputs (cluster, task definition, network, log group)"},
	{Service: "ecs", Op: "RunTask", Role: Operator, Actions: []string{"ecs:RunTask"}, On: []Resource{PlannerTaskDef}, Why: "planner task: run the planner in the stack"},
	{Service: "ecs", Op: "RunTask", Role: Operator, Actions: []string{"iam:PassRole"}, On: []Resource{PlannerRoleRes, ExecutionRole}, Why: "planner task: ECS runs the task with the planner's role and pulls its image with the execution role"},
	{Service: "ecs", Op: "DescribeTasks", Role: Operator, Actions: []string{"ecs:DescribeTasks"}, On: []Resource{ClusterTasks}, Why: "planner task: wait for the task to stop, and read its exit code"},
	{Service: "logs", Op: "GetLogEvents", Role: Operator, Actions: []string{"logs:GetLogEvents"}, On: []Resource{LogStreams}, Why: "planner task: print the task's log as it comes"},
	{Service: "ecs", Op: "DescribeServices", Role: Operator, Actions: []string{"ecs:DescribeServices"}, On: []Resource{WorkerService}, Why: "planner fleet: the service's desired and running counts"},
	{Service: "ecs", Op: "UpdateService", Role: Operator, Actions: []string{"ecs:UpdateService"}, On: []Resource{WorkerService}, Why: "planner fleet: set the desired count"},
	{Service: "application-autoscaling", Op: "DescribeScalableTargets", Role: Operator, Actions: []string{"application-autoscaling:DescribeScalableTargets"}, On: []Resource{ScalableTargets}, Why: "planner fleet: find the worker service's scalable target"},
	{Service: "application-autoscaling", Op: "RegisterScalableTarget", Role: Operator, Actions: []string{"application-autoscaling:RegisterScalableTarget"}, On: []Resource{ScalableTargets}, Why: "planner fleet: suspend dynamic scale-in while the fleet is warm, and --release it"},
	{Service: "s3", Op: "PutObject", Role: Operator, Actions: []string{"s3:PutObject"}, On: []Resource{LedgerFleetHolds}, Why: "planner fleet: record its hold on the fleet, and its release"},
	{Service: "s3", Op: "ListObjectsV2", Role: Operator, Actions: []string{"s3:ListBucket"}, On: []Resource{LedgerBucket}, Why: "planner status: find runs and entries"},
	{Service: "s3", Op: "GetObject", Role: Operator, Actions: []string{"s3:GetObject"}, On: []Resource{LedgerObjects}, Why: "planner status: read runs, entries and verdicts"},
	{Service: "s3", Op: "GetObject", Role: Operator, Actions: []string{"kms:Decrypt"}, On: []Resource{LedgerKmsKey}, When: "HasLedgerKmsKey", Why: "read ledger records encrypted with the ledger's customer-managed key"},
	{Service: "s3", Op: "PutObject", Role: Operator, Actions: []string{"kms:GenerateDataKey"}, On: []Resource{LedgerKmsKey}, When: "HasLedgerKmsKey", Why: "planner fleet: write its hold into a ledger encrypted with a customer-managed key"},
	{Service: "sqs", Op: "GetQueueAttributes", Role: Operator, Actions: []string{"sqs:GetQueueAttributes"}, On: []Resource{WorkQueue, DeadLetterQueue}, Why: "planner status: queue depths"},
}

// Grant is one action on one resource, perhaps only under a condition.
type Grant struct {
	Action string
	On     Resource
	When   string
}

// Grants returns every (action, resource, condition) the role needs,
// sorted and without repeats.
func Grants(role Role) []Grant {
	var out []Grant
	for _, c := range Calls {
		if c.Role != role {
			continue
		}
		for _, a := range c.Actions {
			for _, r := range c.On {
				out = append(out, Grant{Action: a, On: r, When: c.When})
			}
		}
	}
	slices.SortFunc(out, compareGrants)
	return slices.Compact(out)
}

func compareGrants(a, b Grant) int {
	switch {
	case a.When != b.When:
		return strings.Compare(a.When, b.When)
	case a.On != b.On:
		return strings.Compare(string(a.On), string(b.On))
	default:
		return strings.Compare(a.Action, b.Action)
	}
}

// Table is the permission list as a Markdown table, one row per role and
// resource (docs/operations.md, "IAM permissions").
func Table() string {
	var b strings.Builder
	b.WriteString("| role | on | actions | for |\n|---|---|---|---|\n")
	for _, role := range Roles {
		type row struct {
			on      Resource
			when    string
			actions []string
			ops     []string
		}
		var rows []*row
		find := func(on Resource, when string) *row {
			for _, r := range rows {
				if r.on == on && r.when == when {
					return r
				}
			}
			r := &row{on: on, when: when}
			rows = append(rows, r)
			return r
		}
		for _, c := range Calls {
			if c.Role != role {
				continue
			}
			for _, on := range c.On {
				r := find(on, c.When)
				r.actions = append(r.actions, c.Actions...)
				r.ops = append(r.ops, c.Op)
			}
		}
		for _, r := range rows {
			slices.Sort(r.actions)
			slices.Sort(r.ops)
			on := string(r.on)
			if r.when != "" {
				on += " (" + r.when + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s |\n", role, on,
				strings.Join(slices.Compact(r.actions), "`, `"), strings.Join(slices.Compact(r.ops), ", "))
		}
	}
	return b.String()
}
