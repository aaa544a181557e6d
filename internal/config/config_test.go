package config

import (
	"strings"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
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
