package redrive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/cli/clitest"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

const (
	run1 = "20261201T000000Z-00000001"
	run2 = "20261202T000000Z-00000002"
	gone = "20261130T000000Z-00000000" // a run the ledger does not hold
)

func newLedger() (*ledger.Store, *fakeS3) {
	s3 := &fakeS3{}
	return ledger.New(s3, "ledger", "s3clone/"), s3
}

// addRun records a run that sent to workQueue ("": planner run) and
// entries for the messages numbered done, written by the ledger's own
// writers.
func addRun(t *testing.T, store *ledger.Store, id, workQueue string, done ...int64) {
	t.Helper()
	ctx := context.Background()
	src, dst := plan.Location{Bucket: "src"}, plan.Location{Bucket: "dst"}
	l, err := store.BeginRun(ctx, ledger.Run{ID: id, Source: src, Dest: dst, Queue: workQueue, Mode: ledger.ModeFull, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.End(ctx, 10, nil); err != nil {
		t.Fatal(err)
	}
	j, err := store.OpenJournal(ctx, "worker-1", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range done {
		now := time.Now()
		if err := j.Record(ctx, &ledger.Entry{Run: id, Seq: seq, Source: src, Dest: dst, Copied: 1, Started: now, Finished: now}); err != nil {
			t.Fatal(err)
		}
	}
}

// body is a work message of run numbered seq.
func body(t *testing.T, run string, seq int64, op string) []byte {
	t.Helper()
	b, err := plan.Encode(plan.Batch{Version: plan.SchemaVersion, Run: run, Seq: seq, Op: op,
		Source: plan.Location{Bucket: "src"}, Dest: plan.Location{Bucket: "dst"}, Entries: []plan.Entry{{Key: fmt.Sprint("k", seq), Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func strs(bodies ...[]byte) []string {
	var out []string
	for _, b := range bodies {
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	const work, dlq = urlBase + "work", urlBase + "work-dlq"
	for _, c := range []struct {
		args []string
		want []string // problems said; none: valid
	}{
		{nil, []string{"--queue-url is required (or --ledger, to use the run's)", "--dlq-url is required (or --ledger, to use the work queue's)"}},
		{[]string{"--queue-url", work}, []string{"--dlq-url is required"}},
		{[]string{"--dlq-url", work, "--queue-url", work}, []string{"--dlq-url and --queue-url are the same queue"}},
		{[]string{"--dlq-url", dlq, "--queue-url", work, "--run-id", run1}, []string{"--run-id goes with --ledger and no --queue-url"}},
		{[]string{"--ledger", "s3://ledger/p/", "--queue-url", work, "--run-id", run1}, []string{"--run-id goes with --ledger and no --queue-url"}},
		{[]string{"--dlq-url", "work-dlq", "--queue-url", work}, []string{`--dlq-url "work-dlq" is not a queue URL`}},
		{[]string{"--dlq-url", dlq, "--queue-url", work, "--max", "-1"}, []string{"--max -1: must not be negative"}},
		{[]string{"--ledger", "s3://x/"}, []string{"--ledger: "}},
		{[]string{"--dlq-url", dlq, "--queue-url", work}, nil},
		{[]string{"--ledger", "s3://ledger/p/"}, nil},
		{[]string{"--ledger", "s3://ledger/p/", "--run-id", run1, "--max", "10"}, nil},
		{[]string{"--ledger", "s3://ledger/p/", "--dlq-url", dlq}, nil},
	} {
		var o Options
		f := cli.NewFlags("planner redrive", Usage, io.Discard)
		o.Register(f)
		err := f.Parse(c.args)
		if err == nil {
			var p cli.Problems
			o.Validate(&p)
			err = p.Err()
		}
		clitest.Usage(t, c.args, err, c.want...)
	}
}

// TestDoneMessagesHas: a message is dropped only when the ledger holds an
// entry for its run and number; anything it cannot judge is moved. Each
// run is read once.
func TestDoneMessagesHas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, s3 := newLedger()
	addRun(t, store, run1, urlBase+"work", 1, 2)
	addRun(t, store, run2, urlBase+"work", 7)
	d := newDoneMessages(ctx, store)
	for _, c := range []struct {
		name string
		body []byte
		want bool
	}{
		{"done", body(t, run1, 1, plan.OpCopy), true},
		{"done, a delete", body(t, run1, 2, plan.OpDelete), true},
		{"not done", body(t, run1, 3, plan.OpCopy), false},
		{"done in another run", body(t, run2, 7, plan.OpCopy), true},
		{"its number done in another run only", body(t, run2, 1, plan.OpCopy), false},
		{"a run the ledger does not hold", body(t, gone, 1, plan.OpCopy), false},
		{"a probe", body(t, run1, 1, plan.OpProbe), false},
		{"not a batch", []byte(`{"hello":"world"}`), false},
		{"not JSON", []byte("x"), false},
	} {
		got, err := d.has(queue.Message{Body: c.body})
		if err != nil || got != c.want {
			t.Errorf("%s: has = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	gets := s3.gets
	for _, r := range []string{run1, run2, gone} {
		if _, err := d.has(queue.Message{Body: body(t, r, 9, plan.OpCopy)}); err != nil {
			t.Fatal(err)
		}
	}
	if s3.gets != gets {
		t.Errorf("%d more reads of the ledger for runs already read", s3.gets-gets)
	}

	s3.getErr = &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}
	d = newDoneMessages(ctx, store)
	if _, err := d.has(queue.Message{Body: body(t, run1, 1, plan.OpCopy)}); err == nil || !strings.Contains(err.Error(), "read run "+run1+" in the ledger") || !errors.Is(err, ledger.ErrDenied) {
		t.Errorf("a ledger that cannot be read: %v; want the error, naming the run", err)
	}
}

func runRedrive(t *testing.T, o Options, api queue.API, store *ledger.Store) (string, error) {
	t.Helper()
	var out strings.Builder
	err := o.Run(context.Background(), api, store, &out, zerolog.Nop())
	return out.String(), err
}

// TestRunMovesWhatIsNotDone: with the ledger, the queues are the latest
// run's, and what the ledger shows done is dropped, the rest moved.
func TestRunMovesWhatIsNotDone(t *testing.T) {
	t.Parallel()
	sqs := newFakeSQS()
	dlq := sqs.add("work-dlq", "")
	work := sqs.add("work", "work-dlq")
	old := sqs.add("old", "")
	store, _ := newLedger()
	addRun(t, store, run1, old)
	addRun(t, store, run2, work, 1, 2)
	var moved [][]byte
	for seq := range int64(5) {
		sqs.put(dlq, body(t, run2, seq+1, plan.OpCopy))
		if seq+1 > 2 {
			moved = append(moved, body(t, run2, seq+1, plan.OpCopy))
		}
	}
	others := [][]byte{body(t, run2, 0, plan.OpProbe), body(t, gone, 1, plan.OpCopy), []byte("not a batch")}
	sqs.put(dlq, others...)
	moved = append(moved, others...)

	out, err := runRedrive(t, Options{}, sqs, store)
	if err != nil {
		t.Fatal(err)
	}
	if want := "moved 6 messages from " + dlq + " to " + work + "\ndropped 2 messages the ledger shows done\n"; out != want {
		t.Errorf("said %q, want %q", out, want)
	}
	if got := sqs.bodies(work); !slices.Equal(got, strs(moved...)) {
		t.Errorf("the work queue holds\n%q\nwant\n%q", got, strs(moved...))
	}
	if got := sqs.bodies(dlq); len(got) != 0 {
		t.Errorf("the dead-letter queue still holds %q", got)
	}
}

// TestRunWithoutLedgerMovesAll: given both queues and no ledger, every
// message is moved, done or not, at most Max of them.
func TestRunWithoutLedgerMovesAll(t *testing.T) {
	t.Parallel()
	sqs := newFakeSQS()
	dlq, work := sqs.add("dlq", ""), sqs.add("work", "")
	for seq := range int64(25) {
		sqs.put(dlq, body(t, run1, seq, plan.OpCopy))
	}
	out, err := runRedrive(t, Options{DLQURL: dlq, QueueURL: work, Max: 12}, sqs, nil)
	if err != nil || out != "moved 12 messages from "+dlq+" to "+work+"\n" {
		t.Fatalf("--max 12: %v, said %q", err, out)
	}
	out, err = runRedrive(t, Options{DLQURL: dlq, QueueURL: work}, sqs, nil)
	if err != nil || out != "moved 13 messages from "+dlq+" to "+work+"\n" {
		t.Fatalf("the rest: %v, said %q", err, out)
	}
	if n := len(sqs.bodies(work)); n != 25 {
		t.Errorf("the work queue holds %d messages, want 25", n)
	}
}

// TestRunStopsWhenTheLedgerCannotBeRead: no message is lost: those
// received are visible again on the dead-letter queue.
func TestRunStopsWhenTheLedgerCannotBeRead(t *testing.T) {
	t.Parallel()
	sqs := newFakeSQS()
	dlq, work := sqs.add("dlq", ""), sqs.add("work", "")
	bodies := [][]byte{body(t, run1, 1, plan.OpCopy), body(t, run1, 2, plan.OpCopy)}
	sqs.put(dlq, bodies...)
	store, s3 := newLedger()
	addRun(t, store, run1, work, 1)
	s3.getErr = errors.New("connection reset")
	out, err := runRedrive(t, Options{DLQURL: dlq, QueueURL: work}, sqs, store)
	if err == nil || !strings.Contains(err.Error(), "redrive stopped after 0 messages: read run "+run1+" in the ledger") {
		t.Errorf("Run = %v; want it stopped, saying the ledger could not be read", err)
	}
	if want := "moved 0 messages from " + dlq + " to " + work + "\ndropped 0 messages the ledger shows done\n"; out != want {
		t.Errorf("said %q, want %q", out, want)
	}
	if got := sqs.bodies(dlq); !slices.Equal(got, strs(bodies...)) {
		t.Errorf("the dead-letter queue holds %q, want both messages back", got)
	}
	if got := sqs.bodies(work); len(got) != 0 {
		t.Errorf("the work queue got %q", got)
	}
}

// TestRunUsageErrors: queues and runs that cannot be found say what to
// give instead, and exit 2.
func TestRunUsageErrors(t *testing.T) {
	t.Parallel()
	sqs := newFakeSQS()
	work, plain, dlq := sqs.add("work", "work-dlq"), sqs.add("plain", ""), sqs.add("work-dlq", "")
	empty, _ := newLedger()
	store, _ := newLedger()
	addRun(t, store, run1, "")
	addRun(t, store, run2, plain)
	for _, c := range []struct {
		name  string
		o     Options
		store *ledger.Store
		want  string
	}{
		{"no run in the ledger", Options{}, empty, "--ledger s3://ledger/s3clone/ holds no run: give --queue-url"},
		{"no such run", Options{RunID: gone}, store, "--run-id " + gone + ": no such run in s3://ledger/s3clone/"},
		{"a run without a queue", Options{RunID: run1}, store, "run " + run1 + " used no work queue (planner run): give --queue-url"},
		{"a queue without a dead-letter queue", Options{}, store, "--queue-url " + plain + " has no dead-letter queue: give --dlq-url"},
		{"no such work queue", Options{QueueURL: urlBase + "nope", DLQURL: dlq}, nil, "--queue-url " + urlBase + "nope: no such queue"},
		{"no such dead-letter queue", Options{QueueURL: work, DLQURL: urlBase + "nope"}, nil, "--dlq-url " + urlBase + "nope: no such queue"},
	} {
		_, err := runRedrive(t, c.o, sqs, c.store)
		if cli.ExitCode(err, io.Discard) != cli.ExitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want a usage error saying %q", c.name, err, c.want)
		}
	}
}
