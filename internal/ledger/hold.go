package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// FleetHold says which s3clone command holds a worker service's dynamic
// scale-in suspended (fleet.Steering): written when it suspends (or, for
// planner fleet, takes over a suspension), marked released when it
// resumes, at fleet/service/CLUSTER/SERVICE.json. A command that finds
// another's hold leaves the suspension, and the service's size, to it;
// planner status shows every hold not released, so one left by a command
// that was killed is seen, with the way out.
type FleetHold struct {
	Layout  int    `json:"layout"`
	Service string `json:"service"` // service/CLUSTER/SERVICE
	// Holder is the command ("planner fleet", "cutover RUN", "status");
	// ID tells one holding apart from another.
	Holder   string    `json:"holder"`
	ID       string    `json:"id"`
	Host     string    `json:"host,omitempty"`
	Since    time.Time `json:"since"`
	Released time.Time `json:"released,omitzero"`
}

func (h *FleetHold) layout() int { return h.Layout }

// NewHoldID is a new holding's ID.
func NewHoldID() string { return randomHex(8) }

func (s *Store) holdKey(service string) string { return s.prefix + "fleet/" + service + ".json" }

// ErrHoldMoved is wrapped by PutFleetHold when the hold is no longer the
// one read before the write: another command wrote it in between.
var ErrHoldMoved = errors.New("the hold was written by another command since it was read")

// FleetHold reads the hold on service (service/CLUSTER/SERVICE) and its
// ETag; nil and "" when there is none.
func (s *Store) FleetHold(ctx context.Context, service string) (*FleetHold, string, error) {
	key := s.holdKey(service)
	s.Requests.Add(1)
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if err = s.classify(err, "GetObject", key); errors.Is(err, ErrNotFound) {
			return nil, "", nil
		}
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	var h FleetHold
	if err := json.NewDecoder(out.Body).Decode(&h); err != nil {
		return nil, "", fmt.Errorf("s3://%s/%s is not a fleet hold: %w", s.bucket, key, err)
	}
	return &h, aws.ToString(out.ETag), nil
}

// PutFleetHold writes h over the hold whose ETag is etag ("": where there
// is none), and returns the new ETag; ErrHoldMoved when the hold is no
// longer that one (S3's conditional writes: If-Match, If-None-Match).
func (s *Store) PutFleetHold(ctx context.Context, h FleetHold, etag string) (string, error) {
	h.Layout = Layout
	return s.putOver(ctx, s.holdKey(h.Service), h, etag, ErrHoldMoved)
}

// FleetHolds are the holds not released, of every service.
func (s *Store) FleetHolds(ctx context.Context) ([]FleetHold, error) {
	var keys []string
	err := s.list(ctx, s.prefix+"fleet/", "", "", func(out *s3.ListObjectsV2Output) bool {
		for _, o := range out.Contents {
			if k := *o.Key; strings.HasSuffix(k, ".json") {
				keys = append(keys, k)
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	var holds []FleetHold
	for _, k := range keys {
		var h FleetHold
		if err := s.get(ctx, k, &h); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		if h.Released.IsZero() {
			holds = append(holds, h)
		}
	}
	return holds, nil
}
