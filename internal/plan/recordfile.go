package plan

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// RecordFile writes reconciliation records (NewRecord) to a temporary file that
// replaces the named one only when the verification completed: an
// interrupted verify leaves no half-written file behind.
type RecordFile struct {
	path string
	tmp  *os.File
	buf  *bufio.Writer
	enc  *json.Encoder
}

// NewRecordFile starts the file at path (a temporary file beside it); with
// an empty path every write does nothing.
func NewRecordFile(path string) (*RecordFile, error) {
	if path == "" {
		return &RecordFile{}, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, err
	}
	buf := bufio.NewWriter(tmp)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	return &RecordFile{path: path, tmp: tmp, buf: buf, enc: enc}, nil
}

// Write writes the finding as a reconciliation record.
func (r *RecordFile) Write(_ context.Context, f Finding) error {
	if r.enc == nil {
		return nil
	}
	return r.enc.Encode(NewRecord(f))
}

// Commit replaces the named file with what was written.
func (r *RecordFile) Commit() error {
	if r.tmp == nil {
		return nil
	}
	err := r.buf.Flush()
	if err == nil {
		err = r.tmp.Close()
	}
	if err == nil {
		err = os.Rename(r.tmp.Name(), r.path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	r.tmp = nil
	return nil
}

// Discard removes the temporary file unless commit succeeded.
func (r *RecordFile) Discard() {
	if r.tmp != nil {
		r.tmp.Close()
		os.Remove(r.tmp.Name())
	}
}

// Encode writes one record (or anything else as one JSON line) to the file;
// without a file it does nothing.
func (r *RecordFile) Encode(v any) error {
	if r.enc == nil {
		return nil
	}
	return r.enc.Encode(v)
}

// WriteLines writes lines already encoded (JSON lines) to the file; without
// a file it does nothing.
func (r *RecordFile) WriteLines(b []byte) error {
	if r.buf == nil {
		return nil
	}
	_, err := r.buf.Write(b)
	return err
}
