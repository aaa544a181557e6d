package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Checkpoint is a plan's checkpoint kept in the ledger, at
// checkpoints/NAME.json (plan --checkpoint ledger:NAME): a plan run as an
// ECS task loses its files with the task, and the next task carries on
// from this one. A PUT replaces an object whole, so a reader finds the
// old checkpoint or the new one, as with the file's rename.
//
// Unlike a rename, a PUT can land late: a killed planner's last write may
// still reach S3 after the next planner has read the checkpoint and
// written its own, and would take it back to the killed plan's state
// (TestKilledPlanResumes met this). So every write is conditional on the
// checkpoint being the one this planner last read or wrote (If-Match on
// its ETag; If-None-Match: * when there was none; S3 user guide,
// "Preventing object overwrites with conditional writes"): a write that
// finds another's answers 412, and the plan stops saying so.
type Checkpoint struct {
	s    *Store
	name string
	etag string // of the checkpoint last read or written; "" when there was none
}

// ErrCheckpointMoved is wrapped by Save when the checkpoint is no longer
// the one this planner last read or wrote.
var ErrCheckpointMoved = errors.New("the checkpoint was written by another planner since this one read it")

// checkpointName is what NAME may be: a file name's characters, nothing
// that makes another key.
var checkpointName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckCheckpointName rejects a name that is not a plain file name.
func CheckCheckpointName(name string) error {
	if !checkpointName.MatchString(name) {
		return fmt.Errorf("%q: name the checkpoint with letters, digits, '.', '_' and '-' (up to 128), e.g. ledger:bulk-copy", name)
	}
	return nil
}

// Checkpoint is the checkpoint called name in the ledger.
func (s *Store) Checkpoint(name string) *Checkpoint { return &Checkpoint{s: s, name: name} }

func (c *Checkpoint) key() string { return c.s.prefix + "checkpoints/" + c.name + ".json" }

func (c *Checkpoint) String() string { return "s3://" + c.s.bucket + "/" + c.key() }

// checkpointTimeout bounds one read or write: the plan waits on a
// reservation's write before it gives out more sequence numbers.
const checkpointTimeout = time.Minute

// Load reads the checkpoint; nil when there is none.
func (c *Checkpoint) Load() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	data, etag, err := c.get(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c, err)
	}
	c.etag = etag
	return data, nil
}

// Save replaces the checkpoint.
func (c *Checkpoint) Save(data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	in := &s3.PutObjectInput{
		Bucket: aws.String(c.s.bucket), Key: aws.String(c.key()), Body: bytes.NewReader(data),
		ContentType: aws.String("application/json"),
	}
	if c.etag != "" {
		in.IfMatch = aws.String(c.etag)
	} else {
		in.IfNoneMatch = aws.String("*")
	}
	for attempt := 0; ; attempt++ {
		c.s.Requests.Add(1)
		in.Body = bytes.NewReader(data)
		out, err := c.s.api.PutObject(ctx, in)
		if err == nil {
			c.etag = aws.ToString(out.ETag)
			return nil
		}
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) {
			return fmt.Errorf("write %s: %w", c, c.s.classify(err, "PutObject", c.key()))
		}
		switch code := re.HTTPStatusCode(); code {
		case http.StatusPreconditionFailed, http.StatusConflict, http.StatusNotFound:
			// 412: the checkpoint is not the one last read or written. That is
			// also what the SDK's retry of a PUT that had landed meets (its
			// own write moved the ETag): if the checkpoint is what was sent,
			// it is this planner's, carry on. 409 (a conflicting write while
			// this one ran: S3 says to retry) and 404 (If-Match on a
			// checkpoint deleted meanwhile) are judged the same way.
			cur, curETag, gerr := c.get(ctx)
			switch {
			case gerr == nil && bytes.Equal(cur, data):
				c.etag = curETag
				return nil
			case code == http.StatusConflict && gerr == nil && curETag == c.etag && attempt < 3:
				continue // the conflict left the checkpoint as it was: try again
			}
			return fmt.Errorf("write %s: %w (or deleted): is another plan with this checkpoint running? Nothing more is sent; run the plan again once it is the only one (%v)", c, ErrCheckpointMoved, err)
		}
		return fmt.Errorf("write %s: %w", c, c.s.classify(err, "PutObject", c.key()))
	}
}

// get reads the checkpoint and its ETag as they are now.
func (c *Checkpoint) get(ctx context.Context) ([]byte, string, error) {
	c.s.Requests.Add(1)
	out, err := c.s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.s.bucket), Key: aws.String(c.key())})
	if err != nil {
		return nil, "", c.s.classify(err, "GetObject", c.key())
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	return data, aws.ToString(out.ETag), err
}
