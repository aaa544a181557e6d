// Package queue moves message bodies between the planner and the workers:
// over SQS, or through an in-memory queue when everything runs in one
// process. It knows nothing of what the bodies mean.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// API is the part of the SQS client this package uses.
type API interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
}

var _ API = (*sqs.Client)(nil)

// SQS limits that shape every batch call.
const (
	maxBatchEntries = 10
	maxBatchBytes   = 256 << 10
	maxWait         = 20 * time.Second
)

// Message is one received message.
type Message struct {
	ID       string
	Body     []byte
	Receives int // how many times it has been received, this time included
	handle   string
	attrs    map[string]string // s3clone's message attributes
}

// Attribute names s3clone sets on every message it sends.
const (
	AttrRun  = "s3clone-run"
	AttrKind = "s3clone-kind"
)

// Outgoing is a message to send.
type Outgoing struct {
	Body []byte
	Run  string
	Kind string
}

// SQS is one SQS queue. Safe for concurrent use.
type SQS struct {
	api API
	url string
	// SendAttempts is how many times a failed entry of a SendMessageBatch is
	// sent again before Send gives up. Default 8.
	SendAttempts int
	sleep        func(ctx context.Context, d time.Duration) error
}

// NewSQS returns the queue at url.
func NewSQS(api API, url string) *SQS {
	return &SQS{api: api, url: url, SendAttempts: 8, sleep: sleepCtx}
}

// URL is the queue's URL.
func (q *SQS) URL() string { return q.url }

// Send sends msgs with as few SendMessageBatch calls as SQS's limits allow
// (ten entries and 256 KiB a call). Entries that come back in Failed are sent
// again with backoff; a sender fault that persists after SendAttempts, or any
// request error after the SDK's own retries, is returned, and then some of
// msgs may have been sent: the error is a *SendError saying which. Each body
// must be under 256 KiB.
func (q *SQS) Send(ctx context.Context, msgs []Outgoing) error {
	var accepted []int
	for off := 0; off < len(msgs); {
		n, size := 0, 0
		for off+n < len(msgs) && n < maxBatchEntries && size+len(msgs[off+n].Body) <= maxBatchBytes {
			size += len(msgs[off+n].Body)
			n++
		}
		if n == 0 {
			return &SendError{accepted: accepted, Err: fmt.Errorf("message of %d bytes is over SQS's 256 KiB limit", len(msgs[off].Body))}
		}
		ok, err := q.sendBatch(ctx, msgs[off:off+n])
		for _, i := range ok {
			accepted = append(accepted, off+i)
		}
		if err != nil {
			return &SendError{accepted: accepted, Err: err}
		}
		off += n
	}
	return nil
}

// SendError is a Send that failed part-way.
type SendError struct {
	accepted []int
	Err      error
}

// Accepted lists the indexes (into Send's msgs) of the messages the queue
// accepted before the failure, in order.
func (e *SendError) Accepted() []int { return e.accepted }

func (e *SendError) Error() string { return e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

// sendBatch sends up to ten messages in one call, again for the entries
// that fail; it returns the indexes of those accepted.
func (q *SQS) sendBatch(ctx context.Context, msgs []Outgoing) ([]int, error) {
	pending := make(map[string]int, len(msgs))
	for i := range msgs {
		pending[strconv.Itoa(i)] = i
	}
	var accepted []int
	for attempt := 1; ; attempt++ {
		entries := make([]types.SendMessageBatchRequestEntry, 0, len(pending))
		for id, i := range pending {
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id:                aws.String(id),
				MessageBody:       aws.String(string(msgs[i].Body)),
				MessageAttributes: attributes(msgs[i]),
			})
		}
		out, err := q.api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			return sorted(accepted), fmt.Errorf("send to %s: %w", q.url, err)
		}
		for _, ok := range out.Successful {
			if i, known := pending[aws.ToString(ok.Id)]; known {
				accepted = append(accepted, i)
				delete(pending, aws.ToString(ok.Id))
			}
		}
		if len(pending) == 0 {
			return sorted(accepted), nil
		}
		var senderFault error
		for _, f := range out.Failed {
			if f.SenderFault {
				senderFault = fmt.Errorf("send to %s: entry rejected: %s: %s", q.url, aws.ToString(f.Code), aws.ToString(f.Message))
			}
		}
		if senderFault != nil || attempt >= q.SendAttempts {
			if senderFault != nil {
				return sorted(accepted), senderFault
			}
			return sorted(accepted), fmt.Errorf("send to %s: %d entries still failing after %d attempts", q.url, len(pending), attempt)
		}
		if err := q.sleep(ctx, backoff(attempt)); err != nil {
			return sorted(accepted), err
		}
	}
}

func sorted(s []int) []int {
	slices.Sort(s)
	return s
}

func attributes(m Outgoing) map[string]types.MessageAttributeValue {
	attrs := map[string]types.MessageAttributeValue{}
	if m.Run != "" {
		attrs[AttrRun] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(m.Run)}
	}
	if m.Kind != "" {
		attrs[AttrKind] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(m.Kind)}
	}
	return attrs
}

// Receive long-polls for up to n (at most 10) messages, waiting up to wait
// (at most 20s) for the first, and hides them for visibility.
func (q *SQS) Receive(ctx context.Context, n int, wait, visibility time.Duration) ([]Message, error) {
	out, err := q.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            &q.url,
		MaxNumberOfMessages: int32(min(max(n, 1), maxBatchEntries)),
		WaitTimeSeconds:     int32(min(wait, maxWait) / time.Second),
		VisibilityTimeout:   int32(visibility / time.Second),
		// The older AttributeNames field: local-aws-sqs answers only to it,
		// and real SQS accepts both.
		//lint:ignore SA1019 see above
		AttributeNames:        []types.QueueAttributeName{types.QueueAttributeName(types.MessageSystemAttributeNameApproximateReceiveCount)},
		MessageAttributeNames: []string{AttrRun, AttrKind},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", q.url, err)
	}
	msgs := make([]Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		receives, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		attrs := map[string]string{}
		for name, v := range m.MessageAttributes {
			attrs[name] = aws.ToString(v.StringValue)
		}
		msgs = append(msgs, Message{
			ID:       aws.ToString(m.MessageId),
			Body:     []byte(aws.ToString(m.Body)),
			Receives: receives, // 0 when the server did not say
			handle:   aws.ToString(m.ReceiptHandle),
			attrs:    attrs,
		})
	}
	return msgs, nil
}

// Delete removes msgs from the queue, ten to a call. It returns an error
// naming how many could not be deleted; those will be delivered again.
func (q *SQS) Delete(ctx context.Context, msgs []Message) error {
	return forBatches(msgs, func(chunk []Message) (int, error) {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.handle)}
		}
		out, err := q.api.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			return len(chunk), err
		}
		return len(out.Failed), firstFailure(out.Failed)
	}, "delete from "+q.url)
}

// ChangeVisibility hides msgs for d from now: to extend the time to work on
// them, or with d == 0 to hand them back to the queue at once.
func (q *SQS) ChangeVisibility(ctx context.Context, msgs []Message, d time.Duration) error {
	return forBatches(msgs, func(chunk []Message) (int, error) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.handle), VisibilityTimeout: int32(d / time.Second),
			}
		}
		out, err := q.api.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			return len(chunk), err
		}
		return len(out.Failed), firstFailure(out.Failed)
	}, "change visibility in "+q.url)
}

// Depth is a queue's approximate message counts.
type Depth struct {
	Visible  int64 // waiting to be received
	InFlight int64 // received, not yet deleted
	// DeadLetterARN is the queue's dead-letter queue, "" when it has none.
	DeadLetterARN string
}

// Depth reads the queue's approximate counts and its redrive target.
func (q *SQS) Depth(ctx context.Context) (Depth, error) {
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.url,
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameRedrivePolicy,
		},
	})
	if err != nil {
		return Depth{}, fmt.Errorf("read attributes of %s: %w", q.url, err)
	}
	a := out.Attributes
	d := Depth{}
	// An attribute the server left out reads as 0, which is what it means.
	d.Visible, _ = strconv.ParseInt(a[string(types.QueueAttributeNameApproximateNumberOfMessages)], 10, 64)
	d.InFlight, _ = strconv.ParseInt(a[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)], 10, 64)
	d.DeadLetterARN = deadLetterARN(a[string(types.QueueAttributeNameRedrivePolicy)])
	return d, nil
}

func firstFailure(failed []types.BatchResultErrorEntry) error {
	if len(failed) == 0 {
		return nil
	}
	f := failed[0]
	return fmt.Errorf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
}

// forBatches calls do on chunks of ten messages, goes on past failures, and
// returns one error counting every message that failed.
func forBatches(msgs []Message, do func([]Message) (int, error), what string) error {
	failed := 0
	var first error
	for len(msgs) > 0 {
		n := min(len(msgs), maxBatchEntries)
		bad, err := do(msgs[:n])
		failed += bad
		if err != nil && first == nil {
			first = err
		}
		msgs = msgs[n:]
	}
	if first != nil {
		return fmt.Errorf("%s: %d messages failed: %w", what, failed, first)
	}
	return nil
}

// backoff is the wait before attempt: exponential from 50ms up to 10s, with
// "equal jitter" (half fixed, half random) so that many planners or workers
// refused at once do not all come back at once.
func backoff(attempt int) time.Duration {
	d := min(50*time.Millisecond<<min(attempt, 8), 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deadLetterARN reads deadLetterTargetArn from a RedrivePolicy document.
func deadLetterARN(policy string) string {
	if policy == "" {
		return ""
	}
	var p struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(policy), &p); err != nil {
		return "" // a policy we cannot read names no queue we could use
	}
	return p.DeadLetterTargetArn
}

// ErrNoSuchQueue is returned by CheckExists for a queue URL that names no queue.
var ErrNoSuchQueue = errors.New("no such queue")

// CheckExists asks SQS for the queue's attributes, to fail early and clearly
// on a wrong URL. A missing queue gives an error wrapping ErrNoSuchQueue.
func (q *SQS) CheckExists(ctx context.Context) error {
	// Three attempts, not ten: a wrong endpoint should fail fast at start-up.
	_, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	}, func(o *sqs.Options) { o.RetryMaxAttempts = 3 })
	var missing *types.QueueDoesNotExist
	var api smithy.APIError
	if errors.As(err, &missing) || (errors.As(err, &api) && strings.Contains(api.ErrorCode(), "NonExistentQueue")) {
		return fmt.Errorf("%w: %s", ErrNoSuchQueue, q.url)
	}
	return err
}

// FromARN finds the queue an ARN (arn:aws:sqs:REGION:ACCOUNT:NAME) names.
func FromARN(ctx context.Context, api API, arn string) (*SQS, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[2] != "sqs" {
		return nil, fmt.Errorf("%q is not an SQS queue ARN", arn)
	}
	out, err := api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return nil, fmt.Errorf("find queue %s: %w", arn, err)
	}
	return NewSQS(api, aws.ToString(out.QueueUrl)), nil
}

// Move receives messages from one queue and sends them to another, body and
// s3clone attributes unchanged, deleting each from the first only after the
// second accepted it. Messages for which drop (when not nil) returns true
// are deleted from the first queue without being sent. It stops when the
// first queue has been empty for two waits in a row, or after max messages
// (0: no limit), and returns how many it moved and how many it dropped.
func Move(ctx context.Context, from, to *SQS, max int, wait time.Duration, drop func(Message) (bool, error)) (moved, dropped int, err error) {
	for empty := 0; empty < 2 && (max == 0 || moved+dropped < max); {
		n := maxBatchEntries
		if max > 0 {
			n = min(n, max-moved-dropped)
		}
		msgs, err := from.Receive(ctx, n, wait, 60*time.Second)
		if err != nil {
			return moved, dropped, err
		}
		if len(msgs) == 0 {
			empty++
			continue
		}
		empty = 0
		var out []Outgoing
		var sent, gone []Message
		for _, m := range msgs {
			if drop != nil {
				d, err := drop(m)
				if err != nil {
					_ = from.ChangeVisibility(context.WithoutCancel(ctx), msgs, 0) // best effort: they come back in a minute anyway
					return moved, dropped, err
				}
				if d {
					gone = append(gone, m)
					continue
				}
			}
			sent = append(sent, m)
			out = append(out, Outgoing{Body: m.Body, Run: m.attrs[AttrRun], Kind: m.attrs[AttrKind]})
		}
		if len(out) > 0 {
			if err := to.Send(ctx, out); err != nil {
				return moved, dropped, err
			}
		}
		if err := from.Delete(ctx, append(sent, gone...)); err != nil {
			return moved, dropped, fmt.Errorf("moved, but not deleted from %s (they will be moved again): %w", from.url, err)
		}
		moved += len(sent)
		dropped += len(gone)
	}
	return moved, dropped, nil
}

// ARN is the queue's ARN (its QueueArn attribute), what S3 is told to send
// events to.
func (q *SQS) ARN(ctx context.Context) (string, error) {
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", fmt.Errorf("read the ARN of %s: %w", q.url, err)
	}
	arn := out.Attributes[string(types.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", fmt.Errorf("read the ARN of %s: SQS did not say it", q.url)
	}
	return arn, nil
}
