package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/s3clone/s3clone/test/testbed"
)

func TestMain(m *testing.M) { os.Exit(testbed.Main(m)) }

func drain(t *testing.T, q interface {
	Receive(context.Context, int, time.Duration, time.Duration) ([]Message, error)
}, want int) []Message {
	t.Helper()
	var got []Message
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		msgs, err := q.Receive(context.Background(), 10, time.Second, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	return got
}

// TestSendSplitsBySizeAndCount sends 25 bodies of 100 KiB: no batch call may
// carry more than 256 KiB, so it takes many calls, and every body arrives.
func TestSendSplitsBySizeAndCount(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	url, _ := env.Queue(t, 0)
	q := NewSQS(env.SQS, url)
	var out []Outgoing
	for i := range 25 {
		out = append(out, Outgoing{Body: bytes.Repeat([]byte{byte('a' + i)}, 100<<10), Run: "r1", Kind: "batch"})
	}
	out = append(out, Outgoing{Body: []byte("small")})
	if err := q.Send(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	got := drain(t, q, len(out))
	if len(got) != len(out) {
		t.Fatalf("received %d of %d", len(got), len(out))
	}
	if err := q.Delete(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	d, err := q.Depth(context.Background())
	if err != nil || d.Visible != 0 || d.InFlight != 0 {
		t.Fatalf("depth after delete: %+v, %v", d, err)
	}
	if err := q.Send(context.Background(), []Outgoing{{Body: make([]byte, 257<<10)}}); err == nil {
		t.Fatal("a body over 256 KiB was accepted")
	}
}

// TestVisibilityReleaseAndRedrive: a received message stays hidden, comes
// back at once when released, and ends in the dead-letter queue without ever
// being received more than maxReceiveCount times. (local-aws-sqs dead-letters
// one receive early, after maxReceiveCount-1; real SQS after maxReceiveCount.)
func TestVisibilityReleaseAndRedrive(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	const maxReceives = 3
	url, dlqURL := env.Queue(t, maxReceives)
	q := NewSQS(env.SQS, url)
	ctx := context.Background()
	if err := q.Send(ctx, []Outgoing{{Body: []byte("m")}}); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(ctx, 10, 5*time.Second, 30*time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %v %v", msgs, err)
	}
	if msgs[0].Receives != 1 {
		t.Errorf("receive count %d, want 1", msgs[0].Receives)
	}
	if again, _ := q.Receive(ctx, 10, time.Second, 30*time.Second); len(again) != 0 {
		t.Fatal("a hidden message was delivered again")
	}
	if err := q.ChangeVisibility(ctx, msgs, 0); err != nil {
		t.Fatal(err)
	}
	// Back long before its 30s visibility would have run out. (local-aws-sqs
	// only notices a released message when a long poll's wait ends, and its
	// receive count runs ahead: hence no tighter bounds here.)
	released := time.Now()
	again, err := q.Receive(ctx, 10, 5*time.Second, 2*time.Second)
	if err != nil || len(again) != 1 || again[0].Receives < 2 || time.Since(released) > 10*time.Second {
		t.Fatalf("after release: %+v %v after %s; want it back well within its visibility", again, err, time.Since(released))
	}
	receives := 2
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); {
		more, err := q.Receive(ctx, 10, time.Second, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		receives += len(more)
	}
	if receives > maxReceives {
		t.Fatalf("received %d times with maxReceiveCount %d", receives, maxReceives)
	}
	d, err := q.Depth(ctx)
	if err != nil || d.DeadLetterARN == "" {
		t.Fatalf("depth %+v, %v: want the redrive target", d, err)
	}
	dlq, err := FromARN(ctx, env.SQS, d.DeadLetterARN)
	if err != nil || dlq.URL() != dlqURL {
		t.Fatalf("FromARN = %v, %v; want %s", dlq, err, dlqURL)
	}
	if dead := drain(t, dlq, 1); len(dead) != 1 || string(dead[0].Body) != "m" {
		t.Fatalf("dead-letter queue holds %v", dead)
	}
}

func TestCheckExists(t *testing.T) {
	t.Parallel()
	env := testbed.Get(t)
	url, _ := env.Queue(t, 0)
	if err := NewSQS(env.SQS, url).CheckExists(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := NewSQS(env.SQS, url+"-missing").CheckExists(context.Background())
	if !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("missing queue: %v, want ErrNoSuchQueue", err)
	}
}

// flakySQS fails some entries of each SendMessageBatch, which a real server
// cannot be asked to do.
type flakySQS struct {
	API
	mu       sync.Mutex
	calls    int
	failLeft int
	sender   bool
	got      map[string]int
}

func (f *flakySQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		if f.failLeft > 0 {
			f.failLeft--
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: f.sender})
			continue
		}
		f.got[aws.ToString(e.MessageBody)]++
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func TestSendRetriesFailedEntries(t *testing.T) {
	t.Parallel()
	f := &flakySQS{failLeft: 7, got: map[string]int{}}
	q := NewSQS(f, "http://127.0.0.1/q")
	q.sleep = func(context.Context, time.Duration) error { return nil }
	var out []Outgoing
	for i := range 10 {
		out = append(out, Outgoing{Body: []byte(fmt.Sprint(i))})
	}
	if err := q.Send(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	if len(f.got) != 10 || f.calls < 2 {
		t.Fatalf("delivered %d distinct bodies in %d calls", len(f.got), f.calls)
	}
	for b, n := range f.got {
		if n != 1 {
			t.Errorf("body %s sent %d times", b, n)
		}
	}
	// A sender fault is not retried: it is returned.
	g := &flakySQS{failLeft: 1, sender: true, got: map[string]int{}}
	q = NewSQS(g, "http://127.0.0.1/q")
	if err := q.Send(context.Background(), out[:1]); err == nil {
		t.Fatal("a sender fault was swallowed")
	}
}

func TestMemoryQueueSemantics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := NewMemory(2)
	q.MaxReceives = 2
	if err := q.Send(ctx, []Outgoing{{Body: []byte("a")}, {Body: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	full, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := q.Send(full, []Outgoing{{Body: []byte("c")}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send to a full queue: %v, want it to wait", err)
	}
	msgs, _ := q.Receive(ctx, 10, time.Second, 50*time.Millisecond)
	if len(msgs) != 2 {
		t.Fatalf("received %d", len(msgs))
	}
	if err := q.Delete(ctx, msgs[:1]); err != nil {
		t.Fatal(err)
	}
	// b's visibility runs out: delivered again, then dead-lettered.
	again, _ := q.Receive(ctx, 10, time.Second, 10*time.Millisecond)
	if len(again) != 1 || string(again[0].Body) != "b" || again[0].Receives != 2 {
		t.Fatalf("redelivery: %+v", again)
	}
	if err := q.Delete(ctx, msgs[1:]); err != nil { // a stale receipt does nothing
		t.Fatal(err)
	}
	q.Close()
	time.Sleep(30 * time.Millisecond)
	if _, err := q.Receive(ctx, 10, time.Second, time.Second); !errors.Is(err, ErrDrained) {
		t.Fatalf("closed and empty: %v, want ErrDrained", err)
	}
	if dead := q.Dead(); len(dead) != 1 || string(dead[0]) != "b" {
		t.Fatalf("dead letters %q", dead)
	}
}
