package cutover

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// spill keeps each message body a cutover sends, one a line, in a
// temporary file, and the set of their sequence numbers: what the cutover
// knows it sent, whatever the ledger says, and the keys of a message no
// worker finished. Safe for concurrent use.
type spill struct {
	mu   sync.Mutex
	f    *os.File
	buf  *bufio.Writer
	seqs map[int64]bool
}

// newSpill makes a spill in a new temporary file; remove deletes it.
func newSpill() (*spill, error) {
	f, err := os.CreateTemp("", "s3clone-cutover-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("a temporary file for the plan's messages: %w", err)
	}
	return &spill{f: f, buf: bufio.NewWriterSize(f, 1<<20), seqs: map[int64]bool{}}, nil
}

// add records a group of messages the queue accepted.
func (s *spill) add(batch []plan.Body) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range batch {
		s.seqs[b.Seq] = true
		s.buf.Write(b.Data) // an error sticks, and WriteByte returns it
		if err := s.buf.WriteByte('\n'); err != nil {
			return fmt.Errorf("write %s: %w", s.f.Name(), err)
		}
	}
	return nil
}

// flush writes what add buffered to the file.
func (s *spill) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.buf.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", s.f.Name(), err)
	}
	return nil
}

// sent is how many messages were sent.
func (s *spill) sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seqs)
}

// allDone reports whether every message sent has an entry in t.
func (s *spill) allDone(t *ledger.Tally) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq := range s.seqs {
		if !t.Has(seq) {
			return false
		}
	}
	return true
}

// unfinished calls fn with every message sent that has no entry in t.
func (s *spill) unfinished(t *ledger.Tally, fn func(*plan.Batch)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[int64]bool{}
	for seq := range s.seqs {
		if !t.Has(seq) {
			want[seq] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	if err := s.buf.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", s.f.Name(), err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(s.f)
	sc.Buffer(make([]byte, 0, 64<<10), plan.MaxBodyBytes+1)
	for sc.Scan() {
		b, err := plan.Decode(sc.Bytes())
		if err != nil {
			return fmt.Errorf("read back %s: %w", s.f.Name(), err)
		}
		if want[b.Seq] {
			fn(b)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read back %s: %w", s.f.Name(), err)
	}
	return nil
}

// remove closes and deletes the file: the spill is done with.
func (s *spill) remove() {
	s.f.Close()           // a temporary file: nothing to lose if closing fails
	os.Remove(s.f.Name()) // and nothing to do if it cannot be removed
}
