package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/ledger"
)

func TestWorkValidateNamesEveryProblem(t *testing.T) {
	t.Parallel()
	w := Work{Copy: Copy{StorageClass: "FAST", ACL: "everyone"}, Concurrency: 0, PartConcurrency: 8, MultipartThreshold: 1 << 20, PartSize: 6 << 30, Visibility: time.Second, Grace: -1}
	var p cli.Problems
	w.Validate(&p)
	err := p.Err()
	for _, want := range []string{"--concurrency", "--multipart-threshold", "--part-size", "--storage-class", "--acl", "--visibility-timeout", "--grace"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation did not name %s: %v", want, err)
		}
	}
}

// TestLedgerErrorNamesTheGrant: a refused ledger call becomes a usage error
// naming the grant deploy.Calls lists for it, with the template's keys.
func TestLedgerErrorNamesTheGrant(t *testing.T) {
	store := ledger.New(nil, "led", "s3clone/")
	for _, c := range []struct{ op, key, want string }{
		{"PutObject", "runs/20261207-1/run.json", "grant s3:PutObject on arn:aws:s3:::led/s3clone/runs/*/run.json"},
		{"PutObject", "runs/r/sent/000001.json", "grant s3:PutObject on arn:aws:s3:::led/s3clone/runs/*/sent/*"},
		{"ListObjectsV2", "runs/", "grant s3:ListBucket on arn:aws:s3:::led "},
		{"GetObject", "pace/a.json", "grant s3:GetObject on arn:aws:s3:::led/s3clone/pace/*"},
	} {
		refused := &ledger.AccessError{Op: c.op, Bucket: "led", Prefix: "s3clone/", Key: c.key, Err: errors.New("AccessDenied")}
		err := LedgerError(fmt.Errorf("write: %w", refused), store, "")
		var usage *cli.UsageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want a usage error with %q", c.op, c.key, err, c.want)
		}
	}
}
