package cutover

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// body is message seq of op holding keys, as the plan sends it.
func body(t *testing.T, seq int64, op string, keys ...string) plan.Body {
	t.Helper()
	b := plan.Batch{Version: plan.SchemaVersion, Run: "20261201T162343Z-ab12cd34", Seq: seq, Op: op, Source: testSrc, Dest: testDst}
	for _, k := range keys {
		b.Entries = append(b.Entries, plan.Entry{Key: k, Size: 3, ETag: `"e"`})
	}
	data, err := plan.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	return plan.Body{Data: data, Seq: seq, Delete: op == plan.OpDelete}
}

// done is a tally in which messages seqs have an entry.
func done(seqs ...int64) *ledger.Tally {
	t := ledger.NewTally()
	for _, s := range seqs {
		t.AddSummary(ledger.Summary{Key: fmt.Sprint("entry-", s), Seq: s})
	}
	return t
}

func newTestSpill(t *testing.T) *spill {
	t.Helper()
	s, err := newSpill()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.remove)
	return s
}

func TestSpillNamesTheMessagesNotDone(t *testing.T) {
	t.Parallel()
	s := newTestSpill(t)
	if err := s.add([]plan.Body{body(t, 1, plan.OpCopy, "a/1", "a/2"), body(t, 2, plan.OpDelete, "b/gone")}); err != nil {
		t.Fatal(err)
	}
	if err := s.add([]plan.Body{body(t, 3, plan.OpCopy, "a/3")}); err != nil {
		t.Fatal(err)
	}
	if s.sent() != 3 {
		t.Errorf("sent %d, want 3", s.sent())
	}
	for _, tc := range []struct {
		done    *ledger.Tally
		allDone bool
		want    []int64 // the messages unfinished names
	}{
		{done(), false, []int64{1, 2, 3}},
		{done(1, 3), false, []int64{2}},
		{done(1, 2, 3, 4), true, nil},
	} {
		if got := s.allDone(tc.done); got != tc.allDone {
			t.Errorf("allDone %v, want %v", got, tc.allDone)
		}
		var got []int64
		var keys []string
		// Not flushed before: unfinished flushes what add buffered.
		if err := s.unfinished(tc.done, func(b *plan.Batch) {
			got = append(got, b.Seq)
			for _, e := range b.Entries {
				keys = append(keys, e.Key)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("unfinished %v, want %v", got, tc.want)
		}
		if slices.Equal(tc.want, []int64{2}) && !slices.Equal(keys, []string{"b/gone"}) {
			t.Errorf("message 2 holds %v, want [b/gone]", keys)
		}
	}
}

func TestSpillTakesConcurrentGroups(t *testing.T) {
	t.Parallel()
	s := newTestSpill(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []plan.Body
			for i := range 10 {
				seq := int64(g*10 + i + 1)
				batch = append(batch, body(t, seq, plan.OpCopy, fmt.Sprint("a/", seq)))
			}
			if err := s.add(batch); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.unfinished(done(), func(b *plan.Batch) {
		if len(b.Entries) != 1 || b.Entries[0].Key != fmt.Sprint("a/", b.Seq) {
			t.Errorf("message %d holds %+v", b.Seq, b.Entries)
		}
		n++
	}); err != nil {
		t.Fatal(err)
	}
	if n != 80 || s.sent() != 80 {
		t.Errorf("read back %d messages of %d sent, want 80", n, s.sent())
	}
}

func TestSpillRemove(t *testing.T) {
	t.Parallel()
	s, err := newSpill()
	if err != nil {
		t.Fatal(err)
	}
	name := s.f.Name()
	if _, err := os.Stat(name); err != nil {
		t.Fatalf("the spill's file: %v", err)
	}
	s.remove()
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Errorf("after remove, %s: %v", name, err)
	}
}

// TestSpillRefusesWhatItCannotRead: a file that is not the plan's
// messages says so, not a wrong verdict.
func TestSpillRefusesWhatItCannotRead(t *testing.T) {
	t.Parallel()
	s := newTestSpill(t)
	if err := s.add([]plan.Body{{Seq: 1, Data: []byte("not a batch")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.unfinished(done(), func(*plan.Batch) { t.Error("called for a body it could not read") }); err == nil {
		t.Error("no error reading back a body that is not a batch")
	}
}
