package plan

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/s3clone/s3clone/internal/listing"
)

// Record is one line of a reconciliation file: a key whose destination
// does not match its source, with what each side holds.
type Record struct {
	Key     string      `json:"key"` // relative to the source and destination prefixes
	Problem Problem     `json:"problem"`
	Reason  string      `json:"reason,omitempty"`
	Source  *ObjectInfo `json:"src,omitempty"`
	Dest    *ObjectInfo `json:"dst,omitempty"`
}

// ObjectInfo is what a listing said of one object.
type ObjectInfo struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	ETag         string    `json:"etag,omitempty"`
	StorageClass string    `json:"class,omitempty"`
	LastModified time.Time `json:"modified,omitzero"`
}

func info(o *listing.Object) *ObjectInfo {
	if o == nil {
		return nil
	}
	return &ObjectInfo{Key: o.Key, Size: o.Size, ETag: o.ETag, StorageClass: o.StorageClass, LastModified: o.LastModified}
}

// object is the listing entry i describes, nil for nil.
func (i *ObjectInfo) object() *listing.Object {
	if i == nil {
		return nil
	}
	return &listing.Object{Key: i.Key, Size: i.Size, ETag: i.ETag, StorageClass: i.StorageClass, LastModified: i.LastModified}
}

// NewRecord describes a finding.
func NewRecord(f Finding) Record {
	return Record{Key: f.Key, Problem: f.Problem, Reason: f.Reason, Source: info(f.Src), Dest: info(f.Dst)}
}

// ReadRecords reads a reconciliation file, checking every line against the
// source and destination of the plan that will use it, and calls fn for
// each. Errors name the line and what is wrong with it.
func ReadRecords(r io.Reader, src, dst Location, fn func(Record) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return fmt.Errorf("line %d: not a reconciliation record: %v", n, err)
		}
		if err := rec.check(src, dst); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read reconciliation file: %w", err)
	}
	return nil
}

func (r Record) check(src, dst Location) error {
	switch r.Problem {
	case Missing, Different, Unknown:
		if r.Source == nil {
			return fmt.Errorf("%s key %q has no source object", r.Problem, r.Key)
		}
		if !strings.HasPrefix(r.Source.Key, src.Prefix) {
			return fmt.Errorf("source key %q is not under --source %s: was the file written for another copy?", r.Source.Key, src)
		}
	case Extra:
		if r.Dest == nil {
			return fmt.Errorf("extra key %q has no destination object", r.Key)
		}
		if !strings.HasPrefix(r.Dest.Key, dst.Prefix) {
			return fmt.Errorf("destination key %q is not under --dest %s: was the file written for another copy?", r.Dest.Key, dst)
		}
	case Failed:
		switch {
		case r.Source != nil && !strings.HasPrefix(r.Source.Key, src.Prefix):
			return fmt.Errorf("source key %q is not under --source %s: was the file written for another copy?", r.Source.Key, src)
		case r.Source == nil && r.Dest == nil:
			return fmt.Errorf("failed key %q names neither a source nor a destination object", r.Key)
		case r.Source == nil && !strings.HasPrefix(r.Dest.Key, dst.Prefix):
			return fmt.Errorf("destination key %q is not under --dest %s: was the file written for another copy?", r.Dest.Key, dst)
		}
	default:
		return fmt.Errorf("unknown problem %q (want missing, different, extra, failed or unknown)", r.Problem)
	}
	return nil
}

// FileSource enqueues the records of a reconciliation file: copies of
// missing and different keys and, when mirror is set, deletions of extra
// ones. Check the file with ReadRecords first: FileSource reads it again.
func FileSource(path string, src, dst Location, mirror bool) Source {
	return func(ctx context.Context, copies, deletes chan<- []listing.Object) error {
		defer close(copies)
		defer close(deletes)
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return ReadRecords(f, src, dst, func(r Record) error {
			return route(ctx, r.Problem, r.Source.object(), r.Dest.object(), mirror, copies, deletes)
		})
	}
}
