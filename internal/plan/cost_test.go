package plan

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/listing"
)

// TestEstimateCountsWhatAPlanCosts: copies priced by their destination
// class (PUT into GLACIER costs six times STANDARD's), a copy in parts as
// its requests, retrieval out of STANDARD_IA, a HeadObject a copy for a
// website source, two KMS requests a copy with --sse-kms-key-id, and the
// early-deletion charge of an archived object deleted before its 90 days.
func TestEstimateCountsWhatAPlanCosts(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	e := &Estimate{Copy: Copy{StorageClass: "GLACIER", SSEKMSKeyID: "k", Redirects: true}, Threshold: 1 << 30, Now: now,
		Parts: func(size int64) int64 { return (size + (64 << 20) - 1) / (64 << 20) }}
	for range 999 {
		e.add(OpCopy, listing.Object{Size: 1 << 20, StorageClass: "STANDARD_IA"})
	}
	e.add(OpCopy, listing.Object{Size: 2 << 30}) // 32 parts of 64 MiB
	e.add(OpDelete, listing.Object{Size: 1 << 30, StorageClass: "GLACIER", LastModified: now.AddDate(0, 0, -10)})
	e.add(OpDelete, listing.Object{Size: 1 << 30, StorageClass: "GLACIER", LastModified: now.AddDate(0, 0, -100)})
	want := map[string]float64{
		"1033 PUT-class copy requests into GLACIER": 1033 * 0.03 / 1000, // 999 + 32 parts + create + complete
		"1000 HeadObject":                         1000 * 0.0004 / 1000,
		"about 2000 KMS requests":                 2000 * 0.03 / 10000,
		"retrieval of 0.98 GB out of STANDARD_IA": 999.0 / 1024 * 0.01,
		"2 deletions":                             0.0036 * 80 / 30, // the young one only
		"7 ListObjectsV2":                         7 * 0.005 / 1000,
		"1 objects copied in 32 parts":            3 * 0.0004 / 1000,
	}
	lines := e.Lines(7)
	for prefix, cost := range want {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l.What, prefix) {
				found = true
				if math.Abs(l.Cost-cost) > 1e-9 {
					t.Errorf("%s: $%.6f, want $%.6f", l.What, l.Cost, cost)
				}
			}
		}
		if !found {
			t.Errorf("no line %q in %+v", prefix, lines)
		}
	}
	var out bytes.Buffer
	e.Print(&out, 7)
	if !strings.Contains(out.String(), "in all, at us-east-1 list prices") {
		t.Errorf("printed:\n%s", out.String())
	}
}
