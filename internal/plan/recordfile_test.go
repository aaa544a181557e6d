package plan

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/internal/listing"
)

// TestRecordFileIsNeverHalfWritten: the named file appears only on Commit,
// and Discard leaves neither it nor the temporary file behind.
func TestRecordFileIsNeverHalfWritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "recon.jsonl")
	r, err := NewRecordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Write(context.Background(), Finding{Pair: listing.Pair{Key: "a/b.jpg"}, Problem: Missing}); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteLines([]byte("{\"key\":\"c\"}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the file exists before Commit: %v", err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	r.Discard() // after Commit: keeps the file
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"a/b.jpg"`) || !strings.HasSuffix(string(b), "{\"key\":\"c\"}\n") {
		t.Fatalf("file %q (%v)", b, err)
	}

	gone := filepath.Join(dir, "gone.jsonl")
	r, err = NewRecordFile(gone)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Encode(map[string]string{"key": "x"}); err != nil {
		t.Fatal(err)
	}
	r.Discard()
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("Discard left %d files, want only recon.jsonl", len(left))
	}
}
