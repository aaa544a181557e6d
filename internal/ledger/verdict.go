package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Verdict is a cutover's result, written by the planner at its end under
// runs/RUN/results/: so that a cutover run as an ECS task, whose files go
// with the task, leaves its verdict and its reconciliation file where
// planner status (and anyone with the ledger's read grant) finds them.
type Verdict struct {
	Layout int    `json:"layout"`
	Run    string `json:"run"`
	// Mode is "cutover" or "rehearsal".
	Mode  string `json:"mode"`
	Clean bool   `json:"clean"`
	// Why says why a verdict is not clean beyond the keys (a timeout, a
	// stalled fleet, an interrupt); NotRight counts the keys not copied or
	// deleted as listed, which the reconciliation file lists.
	Why      string `json:"why,omitempty"`
	NotRight int    `json:"not_right"`
	// Recon is the reconciliation file's key in the ledger's bucket (copy
	// it out for planner plan --from-file), "" when there are no keys.
	Recon    string        `json:"recon,omitempty"`
	Verified int64         `json:"verified,omitempty"` // keys --verify compared
	Copied   int64         `json:"copied"`
	Deleted  int64         `json:"deleted"`
	Window   VerdictWindow `json:"window"`
	Host     string        `json:"host,omitempty"`
	Written  time.Time     `json:"written"`
}

// VerdictWindow is how long each part of the window took.
type VerdictWindow struct {
	Plan   time.Duration `json:"plan_ns"`
	Fleet  time.Duration `json:"fleet_ns"`
	Verify time.Duration `json:"verify_ns,omitempty"`
	Total  time.Duration `json:"total_ns"`
}

func (v *Verdict) layout() int { return v.Layout }

func (s *Store) resultsPrefix(run string) string { return s.runPrefix(run) + "results/" }
func (s *Store) verdictKey(run string) string    { return s.resultsPrefix(run) + "verdict.json" }
func (s *Store) reconKey(run string) string      { return s.resultsPrefix(run) + "recon.jsonl" }

// PutVerdict writes v, and the reconciliation file recon (one JSON record
// a line, for plan --from-file) when it is not empty: the file first, so
// that a verdict never names a file that is not there. It returns the
// file's location, s3://BUCKET/KEY ("" without one).
func (s *Store) PutVerdict(ctx context.Context, v Verdict, recon []byte) (string, error) {
	v.Layout, v.Written = Layout, time.Now().UTC()
	if len(recon) > 0 {
		key := s.reconKey(v.Run)
		s.Requests.Add(1)
		if _, err := s.api.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.bucket), Key: aws.String(key), Body: bytes.NewReader(recon),
			ContentType: aws.String("application/x-ndjson"),
		}); err != nil {
			return "", fmt.Errorf("write s3://%s/%s: %w", s.bucket, key, s.classify(err, "PutObject", key))
		}
		v.Recon = key
	}
	if err := s.put(ctx, s.verdictKey(v.Run), v); err != nil {
		return "", err
	}
	return s.ReconURL(&v), nil
}

// Verdict reads run's verdict; ErrNotFound when it has none (not a
// cutover, or one still under way).
func (s *Store) Verdict(ctx context.Context, run string) (*Verdict, error) {
	var v Verdict
	if err := s.get(ctx, s.verdictKey(run), &v); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return &v, nil
}

// ReconURL is the reconciliation file's location, s3://BUCKET/KEY.
func (s *Store) ReconURL(v *Verdict) string {
	if v.Recon == "" {
		return ""
	}
	return "s3://" + s.bucket + "/" + v.Recon
}
