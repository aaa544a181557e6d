package plan

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/s3clone/s3clone/internal/listing"
)

// Prices are S3's and KMS's list prices in us-east-1 (the pricing pages,
// December 2026), in dollars: what an estimate is made from. Other regions
// differ by a few percent; inter-region transfer is not counted.
var Prices = struct {
	// PUT-class requests (CopyObject, CreateMultipartUpload, UploadPartCopy,
	// CompleteMultipartUpload) per 1,000, by the destination's class.
	Put map[string]float64
	// GET-class requests (HeadObject) per 1,000; LIST per 1,000.
	Get, List float64
	// Retrieval per GB read out of a class (a copy reads its source).
	Retrieval map[string]float64
	// Storage per GB-month, and the minimum days a class bills for: an
	// object deleted sooner is billed for the rest.
	Storage     map[string]float64
	MinimumDays map[string]int
	// KMS requests per 10,000.
	KMS float64
}{
	Put: map[string]float64{"STANDARD": 0.005, "REDUCED_REDUNDANCY": 0.005, "INTELLIGENT_TIERING": 0.005, "STANDARD_IA": 0.01,
		"ONEZONE_IA": 0.01, "GLACIER_IR": 0.02, "GLACIER": 0.03, "DEEP_ARCHIVE": 0.05},
	Get:         0.0004,
	List:        0.005,
	Retrieval:   map[string]float64{"STANDARD_IA": 0.01, "ONEZONE_IA": 0.01, "GLACIER_IR": 0.03},
	Storage:     map[string]float64{"STANDARD_IA": 0.0125, "ONEZONE_IA": 0.01, "GLACIER_IR": 0.004, "GLACIER": 0.0036, "DEEP_ARCHIVE": 0.00099},
	MinimumDays: map[string]int{"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180},
	KMS:         0.03,
}

// Estimate counts what a plan's run will ask of S3 and KMS, and what that
// costs at Prices. Safe for concurrent use.
type Estimate struct {
	// Copy is how the run writes: its class, SSE-KMS, what it reads first.
	Copy Copy
	// Threshold is the workers' multipart threshold; Parts, how many parts
	// an object of a size is copied in above it.
	Threshold int64
	Parts     func(size int64) int64
	// Now dates the destination objects a deletion would cut short.
	Now time.Time

	mu                sync.Mutex
	copies, multipart int64
	parts             int64
	puts              map[string]int64 // PUT-class requests by destination class
	retrieved         map[string]int64 // bytes read out of each source class
	deletes           int64
	early             float64 // early-deletion charges, in dollars
}

// class is the class S3 names STANDARD when a listing leaves it out.
func class(c string) string {
	if c == "" {
		return "STANDARD"
	}
	return c
}

// add counts one object the plan enqueues: a copy of o, or the deletion of
// destination object o.
func (e *Estimate) add(op string, o listing.Object) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.puts == nil {
		e.puts, e.retrieved = map[string]int64{}, map[string]int64{}
	}
	if op == OpDelete {
		e.deletes++
		c := class(o.StorageClass)
		if days := Prices.MinimumDays[c]; days > 0 && !o.LastModified.IsZero() {
			left := float64(days) - e.Now.Sub(o.LastModified).Hours()/24
			if left > 0 {
				e.early += float64(o.Size) / (1 << 30) * Prices.Storage[c] * left / 30
			}
		}
		return
	}
	dst := class(e.Copy.StorageClass)
	if e.Copy.StorageClass == "" {
		dst = class(o.StorageClass)
	}
	e.copies++
	e.retrieved[class(o.StorageClass)] += o.Size
	if o.Size > e.Threshold && e.Parts != nil {
		n := e.Parts(o.Size)
		e.multipart++
		e.parts += n
		e.puts[dst] += n + 2 // create, the parts, complete
		return
	}
	e.puts[dst]++
}

// Line is one item of an estimate.
type Line struct {
	What string
	Cost float64
}

// Lines are the estimate's items, the LIST requests of the listing that
// made it (lists) included.
func (e *Estimate) Lines(lists int64) []Line {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Line
	for _, c := range slices.Sorted(maps.Keys(e.puts)) {
		n := e.puts[c]
		out = append(out, Line{fmt.Sprintf("%d PUT-class copy requests into %s", n, c), float64(n) / 1000 * Prices.Put[c]})
	}
	if e.multipart > 0 {
		// Each also reads its source's metadata, tags and annotations.
		gets := 3 * e.multipart
		out = append(out, Line{fmt.Sprintf("%d objects copied in %d parts: %d GET-class requests to read their metadata, tags and annotations", e.multipart, e.parts, gets),
			float64(gets) / 1000 * Prices.Get})
	}
	if heads := e.heads(); heads > 0 {
		why := []string{}
		if e.Copy.Redirects {
			why = append(why, "website redirects")
		}
		if e.Copy.Lock {
			why = append(why, "Object Lock")
		}
		out = append(out, Line{fmt.Sprintf("%d HeadObject (%s, which S3 does not copy)", heads, strings.Join(why, ", ")), float64(heads) / 1000 * Prices.Get})
	}
	if e.Copy.SSEKMSKeyID != "" && e.copies > 0 {
		n := 2 * e.copies
		out = append(out, Line{fmt.Sprintf("about %d KMS requests (SSE-KMS: two a copy; an S3 Bucket Key makes them few)", n), float64(n) / 10000 * Prices.KMS})
	}
	for _, c := range slices.Sorted(maps.Keys(e.retrieved)) {
		if price := Prices.Retrieval[c]; price > 0 && e.retrieved[c] > 0 {
			gb := float64(e.retrieved[c]) / (1 << 30)
			out = append(out, Line{fmt.Sprintf("retrieval of %.2f GB out of %s", gb, c), gb * price})
		}
	}
	if e.deletes > 0 {
		out = append(out, Line{fmt.Sprintf("%d deletions (free; early-deletion charges of archive and IA classes below their minimum days)", e.deletes), e.early})
	}
	if lists > 0 {
		out = append(out, Line{fmt.Sprintf("%d ListObjectsV2 (this listing; a run lists again)", lists), float64(lists) / 1000 * Prices.List})
	}
	return out
}

func (e *Estimate) heads() int64 {
	if e.Copy.Redirects || e.Copy.Lock {
		return e.copies
	}
	return 0
}

// Print writes the estimate.
func (e *Estimate) Print(w io.Writer, lists int64) {
	total := 0.0
	for _, l := range e.Lines(lists) {
		total += l.Cost
		fmt.Fprintf(w, "cost      $%.4f  %s\n", l.Cost, l.What)
	}
	fmt.Fprintf(w, "cost      $%.2f in all, at us-east-1 list prices (December 2026); SQS, the ledger and Fargate add cents (docs/operations.md)\n", total)
}
