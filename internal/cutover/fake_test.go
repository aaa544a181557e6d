package cutover

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/status"
)

// memS3 is one bucket in memory: what a ledger (ledger.API) and a cutover's
// marker (follow.MarkerAPI) ask of S3, for tests that need no server.
type memS3 struct {
	mu      sync.Mutex
	objects map[string]memObject
	puts    []string // keys written, in order
	deletes []string // keys deleted, in order
	// putFn, if set, hears of every key written, after it is stored.
	putFn func(key string)
	// errFn, if set, may refuse an operation on a key.
	errFn func(op, key string) error
}

type memObject struct {
	data     []byte
	modified time.Time
}

var (
	_ ledger.API       = (*memS3)(nil)
	_ follow.MarkerAPI = (*memS3)(nil)
)

func newMemS3() *memS3 { return &memS3{objects: map[string]memObject{}} }

func (m *memS3) fail(op, key string) error {
	if m.errFn == nil {
		return nil
	}
	return m.errFn(op, key)
}

func (m *memS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	key := aws.ToString(in.Key)
	if err := m.fail("PutObject", key); err != nil {
		return nil, err
	}
	var data []byte
	if in.Body != nil {
		var err error
		if data, err = io.ReadAll(in.Body); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	m.objects[key] = memObject{data: data, modified: time.Now()}
	m.puts = append(m.puts, key)
	fn := m.putFn
	m.mu.Unlock()
	if fn != nil {
		fn(key)
	}
	return &s3.PutObjectOutput{ETag: aws.String(`"etag"`)}, nil
}

func (m *memS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	key := aws.ToString(in.Key)
	if err := m.fail("GetObject", key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	o, ok := m.objects[key]
	m.mu.Unlock()
	if !ok {
		return nil, &types.NoSuchKey{Message: aws.String("no such key " + key)}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(o.data)), LastModified: aws.Time(o.modified)}, nil
}

// ListObjectsV2 lists in one page, as S3 does: keys in order after
// StartAfter, those past a Delimiter folded into common prefixes.
func (m *memS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	prefix, after, delim := aws.ToString(in.Prefix), aws.ToString(in.StartAfter), aws.ToString(in.Delimiter)
	if err := m.fail("ListObjectsV2", prefix); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.objects))
	for k := range m.objects {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := &s3.ListObjectsV2Output{Name: in.Bucket, Prefix: in.Prefix}
	folded := map[string]bool{}
	for _, k := range keys {
		if delim != "" {
			if i := strings.Index(k[len(prefix):], delim); i >= 0 {
				p := k[:len(prefix)+i+len(delim)]
				if !folded[p] {
					folded[p] = true
					out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(p)})
				}
				continue
			}
		}
		o := m.objects[k]
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(o.data))), LastModified: aws.Time(o.modified)})
	}
	out.KeyCount = aws.Int32(int32(len(out.Contents) + len(out.CommonPrefixes)))
	return out, nil
}

func (m *memS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	key := aws.ToString(in.Key)
	if err := m.fail("DeleteObject", key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	m.deletes = append(m.deletes, key)
	return &s3.DeleteObjectOutput{}, nil
}

// has reports whether key was ever written, and whether it is there now.
func (m *memS3) has(key string) (written, now bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, now = m.objects[key]
	return slices.Contains(m.puts, key), now
}

// testLedger is a ledger in memory.
func testLedger() *ledger.Store { return ledger.New(newMemS3(), "ledger", "s3clone/") }

// the pair the tests' runs copy.
var (
	testSrc = plan.Location{Bucket: "src", Prefix: "a/"}
	testDst = plan.Location{Bucket: "dst", Prefix: "b/"}
)

// newID is a fresh run id, ordered by when.
func newID(when time.Time) string { return plan.NewRunID(when) }

// writeRun records run r in store as a plan would: sent messages 1 to
// sent (unless sent is 0), the plan ended, and entries written by one
// worker.
func writeRun(t *testing.T, store *ledger.Store, r ledger.Run, sent int64, entries ...ledger.Entry) {
	t.Helper()
	ctx := t.Context()
	if r.Source.Bucket == "" {
		r.Source, r.Dest = testSrc, testDst
	}
	if r.Started.IsZero() {
		r.Started = time.Now().UTC()
	}
	log, err := store.BeginRun(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if sent > 0 {
		seqs := make([]int64, 0, sent)
		for n := int64(1); n <= sent; n++ {
			seqs = append(seqs, n)
		}
		log.Sent(seqs, ledger.Totals{Messages: sent, Objects: sent}, nil)
	}
	if err := log.End(ctx, sent, nil); err != nil {
		t.Fatal(err)
	}
	writeEntries(t, store, r, entries...)
}

// writeEntries records entries of run r, as a worker finishing them.
func writeEntries(t *testing.T, store *ledger.Store, r ledger.Run, entries ...ledger.Entry) {
	t.Helper()
	if len(entries) == 0 {
		return
	}
	j, err := store.OpenJournal(t.Context(), "worker-1", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		e.Run, e.Source, e.Dest = r.ID, r.Source, r.Dest
		if e.Started.IsZero() {
			e.Started = time.Now().UTC().Add(-time.Second)
			e.Finished = time.Now().UTC()
		}
		if err := j.Record(t.Context(), &e); err != nil {
			t.Fatal(err)
		}
	}
}

// copied is an entry of message seq that copied one key.
func copied(seq int64) ledger.Entry { return ledger.Entry{Seq: seq, Copied: 1} }

// failed is an entry of message seq whose one key failed.
func failed(seq int64, key, reason string) ledger.Entry {
	return ledger.Entry{Seq: seq, Failed: []ledger.Failure{{Key: key, Size: 3, ETag: `"e"`, Reason: reason}}}
}

// idleQueue is the depth of a queue with nothing in it and no dead letters.
func idleQueue(context.Context) *status.Depth { return &status.Depth{} }

// testPace waits fast.
func testPace() pace {
	return pace{poll: 5 * time.Millisecond, slowPoll: 5 * time.Millisecond, refreshLimit: time.Second,
		depthEvery: 5 * time.Millisecond, stallFor: 50 * time.Millisecond, markPoll: 5 * time.Millisecond}
}
