package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/listing"
)

func TestParseLocation(t *testing.T) {
	t.Parallel()
	good := map[string]Location{
		"s3://bucket":           {Bucket: "bucket"},
		"s3://bucket/":          {Bucket: "bucket"},
		"s3://my.bucket-1/a/b/": {Bucket: "my.bucket-1", Prefix: "a/b/"},
		"s3://bkt/photos":       {Bucket: "bkt", Prefix: "photos"},
		"s3://bkt/dir with sp/": {Bucket: "bkt", Prefix: "dir with sp/"},
	}
	for raw, want := range good {
		got, err := ParseLocation(raw)
		if err != nil || got != want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	bad := []string{"", "bucket", "s3:/bucket", "https://bucket/x", "s3://", "s3:///x", "s3://ab", "s3://Bucket", "s3://bu_cket", "s3://-bucket", "s3://" + strings.Repeat("a", 64), "s3://bkt/" + strings.Repeat("k", 1025)}
	for _, raw := range bad {
		if _, err := ParseLocation(raw); err == nil {
			t.Errorf("ParseLocation(%q) accepted a bad URL", raw)
		}
	}
	// S3 Express One Zone directory buckets list unsorted and refuse
	// StartAfter (the S3 user guide, "Directory buckets"): refused by name.
	for _, raw := range []string{"s3://logs--usw2-az1--x-s3", "s3://my-bucket--use1-az4--x-s3/photos/"} {
		if _, err := ParseLocation(raw); err == nil || !strings.Contains(err.Error(), "directory bucket") {
			t.Errorf("ParseLocation(%q) = %v, want a directory bucket refused", raw, err)
		}
	}
}

func TestDestKeyMapsPrefixes(t *testing.T) {
	t.Parallel()
	src, dst := Location{Bucket: "a", Prefix: "x/"}, Location{Bucket: "b", Prefix: "y/"}
	if got := DestKey(src, dst, "x/k/1.jpg"); got != "y/k/1.jpg" {
		t.Fatalf("DestKey = %q, want y/k/1.jpg", got)
	}
	if got := DestKey(Location{Bucket: "a"}, Location{Bucket: "b"}, "k"); got != "k" {
		t.Fatalf("DestKey without prefixes = %q", got)
	}
}

func TestCheckPair(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src, dst string
		ok       bool
	}{
		{"s3://a/x/", "s3://b/x/", true},
		{"s3://a/x/", "s3://a/y/", true},
		{"s3://a/x/", "s3://a/x/", false},
		{"s3://a/", "s3://a/backup/", false},
		{"s3://a/x/sub/", "s3://a/x/", false},
	}
	for _, c := range cases {
		src, _ := ParseLocation(strings.Replace(c.src, "s3://a", "s3://aaa", 1))
		dst, _ := ParseLocation(strings.Replace(strings.Replace(c.dst, "s3://a", "s3://aaa", 1), "s3://b", "s3://bbb", 1))
		if err := CheckPair(src, dst); (err == nil) != c.ok {
			t.Errorf("CheckPair(%s, %s) = %v, want ok=%v", c.src, c.dst, err, c.ok)
		}
	}
}

func TestDecodeRejectsForeignBodies(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"", "hello", `{"v":1}`, `{"Records":[]}`,
		`{"v":1,"run":"r","src":{"bucket":"a"},"dst":{"bucket":"b"}}`, // version 1 had no op: refused
		`{"v":6,"run":"r","src":{"bucket":"a"},"dst":{"bucket":"b"}}`, // from a newer planner
		`{"v":2,"run":"r","op":"move","src":{"bucket":"a"},"dst":{"bucket":"b"}}`,
	} {
		if _, err := Decode([]byte(body)); err == nil {
			t.Errorf("Decode(%q) accepted it", body)
		}
	}
	// Version 2 (no regions: the worker finds them), 3 and 4 are read.
	for _, body := range []string{
		`{"v":2,"run":"r","src":{"bucket":"a"},"dst":{"bucket":"b"}}`,
		`{"v":3,"run":"r","src":{"bucket":"a","region":"eu-west-1"},"dst":{"bucket":"b","region":"us-east-1"}}`,
		`{"v":4,"run":"r","src":{"bucket":"a"},"dst":{"bucket":"b"},"copy":{"acl":"bucket-owner-full-control","redirects":true}}`,
	} {
		if _, err := Decode([]byte(body)); err != nil {
			t.Errorf("Decode(%q): %v", body, err)
		}
	}
}

// TestBatchCarriesItsRunsCopyOptions: a version-4 batch says how its
// copies are written, none meaning none; an older one carries nothing, so
// its copies take the worker's own options.
func TestBatchCarriesItsRunsCopyOptions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		body    string
		want    Copy
		carried bool
	}{
		{`{"v":3,"run":"r","src":{"bucket":"a"},"dst":{"bucket":"b"}}`, Copy{}, false},
		{`{"v":4,"run":"r","src":{"bucket":"a"},"dst":{"bucket":"b"}}`, Copy{}, true},
		{`{"v":4,"run":"r","src":{"bucket":"a"},"dst":{"bucket":"b"},"copy":{"acl":"bucket-owner-full-control","kms":"k","class":"STANDARD_IA","redirects":true}}`,
			Copy{ACL: "bucket-owner-full-control", SSEKMSKeyID: "k", StorageClass: "STANDARD_IA", Redirects: true}, true},
	} {
		b, err := Decode([]byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if got, carried := b.Options(); got != c.want || carried != c.carried {
			t.Errorf("%s: Options() = %+v, %v; want %+v, %v", c.body, got, carried, c.want, c.carried)
		}
	}
	// The batcher puts the summary's options in every copy batch, not in
	// deletions, and keeps the body under the size limit with them.
	sum := &Summary{Run: "r1", Source: Location{Bucket: "src"}, Dest: Location{Bucket: "dst"},
		Copy: Copy{ACL: "bucket-owner-full-control", SSEKMSKeyID: strings.Repeat("k", 2048)}}
	for _, op := range []string{OpCopy, OpDelete} {
		in := make(chan []listing.Object, 1)
		out := make(chan Body, 100)
		var page []listing.Object
		for i := range 3000 {
			page = append(page, listing.Object{Key: fmt.Sprintf("%0200d", i), Size: 1})
		}
		in <- page
		close(in)
		if err := NewBatcher(sum, op, Options{MaxKeys: 10000}).Run(context.Background(), in, out); err != nil {
			t.Fatal(err)
		}
		close(out)
		for body := range out {
			if len(body.Data) > MaxBodyBytes {
				t.Fatalf("%s body of %d bytes", op, len(body.Data))
			}
			b, err := Decode(body.Data)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := b.Options()
			if want := map[string]Copy{OpCopy: sum.Copy, OpDelete: {}}[op]; got != want {
				t.Fatalf("%s batch carries %+v", op, got)
			}
		}
	}
}

// TestBatcherLimits feeds keys through the batcher and checks every key comes
// out once, in messages within the key and size limits, numbered 1..n.
func TestBatcherLimits(t *testing.T) {
	t.Parallel()
	sum := &Summary{Run: "r1", Source: Location{Bucket: "src"}, Dest: Location{Bucket: "dst"}}
	in := make(chan []listing.Object, 4)
	out := make(chan Body, 1000)
	go func() {
		defer close(in)
		for p := range 30 {
			var page []listing.Object
			for i := range 100 {
				// Long keys full of characters JSON escapes push the size limit.
				key := fmt.Sprintf("%d/%d/%s", p, i, strings.Repeat("<\"é\u2028", 80*(i%4)))
				page = append(page, listing.Object{Key: key, Size: int64(i), ETag: `"e"`, StorageClass: "STANDARD"})
			}
			in <- page
		}
	}()
	if err := NewBatcher(sum, OpCopy, Options{MaxKeys: 250}).Run(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	seen := map[string]bool{}
	var seq int64
	for msg := range out {
		body := msg.Data
		if len(body) > MaxBodyBytes {
			t.Errorf("message of %d bytes, over %d", len(body), MaxBodyBytes)
		}
		if int(msg.Objects) != len(msg.Tokens) {
			t.Errorf("message of %d objects carries %d tokens", msg.Objects, len(msg.Tokens))
		}
		b, err := Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		seq++
		if b.Seq != seq || b.Run != "r1" || len(b.Entries) > 250 {
			t.Errorf("message seq %d (want %d), run %q, %d keys", b.Seq, seq, b.Run, len(b.Entries))
		}
		for _, e := range b.Entries {
			if seen[e.Key] {
				t.Errorf("key %q in two messages", e.Key)
			}
			seen[e.Key] = true
			if e.StorageClass != "" {
				t.Errorf("STANDARD should be left out of entries, got %q", e.StorageClass)
			}
		}
	}
	if len(seen) != 3000 || sum.Objects.Load() != 3000 || sum.Messages.Load() != seq {
		t.Fatalf("%d keys out, summary says %d objects in %d messages (counted %d)", len(seen), sum.Objects.Load(), sum.Messages.Load(), seq)
	}
}

// TestBatcherLingers checks that a partly filled message is sent within the
// linger time while the listing is still going, so copying starts early.
func TestBatcherLingers(t *testing.T) {
	t.Parallel()
	sum := &Summary{Run: "r", Source: Location{Bucket: "src"}, Dest: Location{Bucket: "dst"}}
	in := make(chan []listing.Object)
	out := make(chan Body, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = NewBatcher(sum, OpCopy, Options{MaxKeys: 100, Linger: 20 * time.Millisecond}).Run(ctx, in, out)
	}()
	in <- []listing.Object{{Key: "only"}}
	select {
	case msg := <-out:
		var b Batch
		if err := json.Unmarshal(msg.Data, &b); err != nil || len(b.Entries) != 1 {
			t.Fatalf("lingered message: %s, %v", msg.Data, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a partial message was held back while the listing went on")
	}
}

// TestResumedNumbersNeverRepeat: a planner killed after giving out numbers
// its checkpoint had not caught up with resumes after the reserved block,
// so no sequence number names two messages.
func TestResumedNumbersNeverRepeat(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cp.json")
	sum := &Summary{Run: "r", Source: Location{Bucket: "a"}, Dest: Location{Bucket: "b"}}
	cp := NewCheckpoint(CheckpointFile(path), sum, "q", listing.NewProgress(), nil)
	sum.Reserve = cp.Reserve
	var last int64
	for range 25 { // numbers given out; the checkpoint's own writes lag behind
		seq, err := sum.nextSeq()
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	// Killed: no Finish. What is on disk?
	prior, err := ReadCheckpoint(CheckpointFile(path))
	if err != nil || prior == nil {
		t.Fatalf("checkpoint: %v %v", prior, err)
	}
	again := &Summary{}
	prior.Resume(again)
	if next, _ := again.nextSeq(); next <= last {
		t.Fatalf("the resumed plan gives out %d, but %d was already given out", next, last)
	}
	if prior.Reserved < last {
		t.Fatalf("reserved %d, below the %d given out", prior.Reserved, last)
	}
	_ = cp.Finish(false)
}

// TestBodiesHoldOnlyWhatSQSTakes: SQS refuses a message holding a
// character outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
// #x10000-#x10FFFF (the SendMessage API reference). Keys with control
// characters and with U+FFFE and U+FFFF (which encoding/json writes raw)
// come out of the batcher as bodies of only those characters, and decode
// to the same keys.
func TestBodiesHoldOnlyWhatSQSTakes(t *testing.T) {
	t.Parallel()
	keys := []string{"a\uFFFEb", "c\uFFFFd", "ctl\x01\x1f\x7f", "cr\r\nlf\ttab", "😀/\u2028", "plain"}
	sum := &Summary{Run: "r1", Source: Location{Bucket: "src"}, Dest: Location{Bucket: "dst"}}
	in := make(chan []listing.Object, 1)
	out := make(chan Body, 10)
	var page []listing.Object
	for _, k := range keys {
		page = append(page, listing.Object{Key: k, Size: 1})
	}
	in <- page
	close(in)
	if err := NewBatcher(sum, OpCopy, Options{}).Run(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []string
	for body := range out {
		for _, r := range string(body.Data) {
			if !(r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
				t.Fatalf("body holds %U, which SQS refuses: %q", r, body.Data)
			}
		}
		b, err := Decode(body.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entries {
			got = append(got, e.Key)
		}
	}
	if strings.Join(got, "|") != strings.Join(keys, "|") {
		t.Fatalf("keys %q, want %q", got, keys)
	}
}

// TestBatcherLeavesTheMarksOut: a cutover's marker or follow's probe in the
// source (under MarksPrefix) is never planned as a copy; a deletion batch
// (destination keys) is not filtered.
func TestBatcherLeavesTheMarksOut(t *testing.T) {
	t.Parallel()
	sum := &Summary{Run: "r1", Source: Location{Bucket: "src"}, Dest: Location{Bucket: "dst"}}
	page := []listing.Object{{Key: ".s3clone-marks/probe-1"}, {Key: "a.jpg"}, {Key: ".s3clone-marksx"}, {Key: MarksPrefix + "20261207T100000Z-ab12cd34"}}
	for _, c := range []struct {
		op   string
		want []string
	}{{OpCopy, []string{"a.jpg", ".s3clone-marksx"}}, {OpDelete, []string{".s3clone-marks/probe-1", "a.jpg", ".s3clone-marksx", MarksPrefix + "20261207T100000Z-ab12cd34"}}} {
		in, out := make(chan []listing.Object, 1), make(chan Body, 10)
		in <- page
		close(in)
		if err := NewBatcher(sum, c.op, Options{MaxKeys: 100}).Run(context.Background(), in, out); err != nil {
			t.Fatal(err)
		}
		close(out)
		var got []string
		for msg := range out {
			b, err := Decode(msg.Data)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range b.Entries {
				got = append(got, e.Key)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%q batches hold %q, want %q", c.op, got, c.want)
		}
	}
}
