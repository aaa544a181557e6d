package redrive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/queue"
)

// fakeSQS plays SQS for queue.SQS over in-memory queues with SQS's
// delivery semantics (queue.Memory): a received message stays hidden
// until deleted or made visible again. Message attributes are not kept.
type fakeSQS struct {
	mu       sync.Mutex
	queues   map[string]*fakeQueue    // by URL
	received map[string]queue.Message // by receipt handle
	handles  int
}

type fakeQueue struct {
	mem     *queue.Memory
	arn     string
	deadARN string // its redrive policy's target; "": none
}

func newFakeSQS() *fakeSQS {
	return &fakeSQS{queues: map[string]*fakeQueue{}, received: map[string]queue.Message{}}
}

const urlBase = "https://sqs.us-east-1.amazonaws.com/123456789012/"

// add makes a queue called name, whose dead letters go to dead ("": none),
// and returns its URL.
func (f *fakeSQS) add(name, dead string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := &fakeQueue{mem: queue.NewMemory(1000), arn: "arn:aws:sqs:us-east-1:123456789012:" + name}
	if dead != "" {
		q.deadARN = "arn:aws:sqs:us-east-1:123456789012:" + dead
	}
	f.queues[urlBase+name] = q
	return urlBase + name
}

func (f *fakeSQS) queue(url *string) (*fakeQueue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q, ok := f.queues[aws.ToString(url)]
	if !ok {
		return nil, &sqstypes.QueueDoesNotExist{Message: aws.String("The specified queue does not exist.")}
	}
	return q, nil
}

// put sends bodies to the queue at url.
func (f *fakeSQS) put(url string, bodies ...[]byte) {
	q, err := f.queue(&url)
	if err != nil {
		panic(err)
	}
	for _, b := range bodies {
		if err := q.mem.Send(context.Background(), []queue.Outgoing{{Body: b}}); err != nil {
			panic(err)
		}
	}
}

// bodies drains the visible messages of the queue at url, sorted.
func (f *fakeSQS) bodies(url string) []string {
	q, err := f.queue(&url)
	if err != nil {
		panic(err)
	}
	var out []string
	for {
		msgs, _ := q.mem.Receive(context.Background(), 10, 0, time.Hour)
		if len(msgs) == 0 {
			slices.Sort(out)
			return out
		}
		for _, m := range msgs {
			out = append(out, string(m.Body))
		}
	}
}

func (f *fakeSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	q, err := f.queue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		if err := q.mem.Send(ctx, []queue.Outgoing{{Body: []byte(aws.ToString(e.MessageBody))}}); err != nil {
			return nil, err
		}
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id, MessageId: e.Id})
	}
	return out, nil
}

func (f *fakeSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q, err := f.queue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	// No long poll: an empty queue answers at once.
	msgs, err := q.mem.Receive(ctx, int(in.MaxNumberOfMessages), 0, time.Duration(in.VisibilityTimeout)*time.Second)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &sqs.ReceiveMessageOutput{}
	for _, m := range msgs {
		f.handles++
		handle := strconv.Itoa(f.handles)
		f.received[handle] = m
		out.Messages = append(out.Messages, sqstypes.Message{
			MessageId: aws.String(m.ID), Body: aws.String(string(m.Body)), ReceiptHandle: aws.String(handle),
			Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(m.Receives)},
		})
	}
	return out, nil
}

// messages are the received messages the entries' receipt handles name.
func (f *fakeSQS) messages(handles []*string) []queue.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []queue.Message
	for _, h := range handles {
		out = append(out, f.received[aws.ToString(h)])
	}
	return out
}

func (f *fakeSQS) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	q, err := f.queue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	var handles []*string
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		handles = append(handles, e.ReceiptHandle)
		out.Successful = append(out.Successful, sqstypes.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, q.mem.Delete(ctx, f.messages(handles))
}

func (f *fakeSQS) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	q, err := f.queue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		if err := q.mem.ChangeVisibility(ctx, f.messages([]*string{e.ReceiptHandle}), time.Duration(e.VisibilityTimeout)*time.Second); err != nil {
			return nil, err
		}
		out.Successful = append(out.Successful, sqstypes.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func (f *fakeSQS) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	q, err := f.queue(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	a := map[string]string{"QueueArn": q.arn}
	if q.deadARN != "" {
		a["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":5}`, q.deadARN)
	}
	return &sqs.GetQueueAttributesOutput{Attributes: a}, nil
}

func (f *fakeSQS) GetQueueUrl(_ context.Context, in *sqs.GetQueueUrlInput, _ ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	url := urlBase + aws.ToString(in.QueueName)
	if _, err := f.queue(&url); err != nil {
		return nil, err
	}
	return &sqs.GetQueueUrlOutput{QueueUrl: aws.String(url)}, nil
}

var _ queue.API = (*fakeSQS)(nil)

// fakeS3 holds the ledger's objects in memory: what the ledger's own
// writers write, its reader reads (a flat listing, or one rolled up at a
// delimiter, after StartAfter; one page).
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	gets    int
	// getErr, when set, fails every GetObject.
	getErr error
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.objects == nil {
		f.objects = map[string][]byte{}
	}
	f.objects[aws.ToString(in.Key)] = b
	return &s3.PutObjectOutput{ETag: aws.String(`"` + strconv.Itoa(len(f.objects)) + `"`)}, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	if f.getErr != nil {
		return nil, f.getErr
	}
	b, ok := f.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &s3types.NoSuchKey{Message: aws.String("The specified key does not exist.")}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

func (f *fakeS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix, delim, after := aws.ToString(in.Prefix), aws.ToString(in.Delimiter), aws.ToString(in.StartAfter)
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	seen := map[string]bool{}
	for _, k := range keys {
		if i := strings.Index(k[len(prefix):], delim); delim != "" && i >= 0 {
			if cp := k[:len(prefix)+i+len(delim)]; !seen[cp] {
				seen[cp] = true
				out.CommonPrefixes = append(out.CommonPrefixes, s3types.CommonPrefix{Prefix: aws.String(cp)})
			}
			continue
		}
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(f.objects[k])))})
	}
	return out, nil
}

func (f *fakeS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, aws.ToString(in.Key))
	return &s3.DeleteObjectOutput{}, nil
}

var _ ledger.API = (*fakeS3)(nil)
