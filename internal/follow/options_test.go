package follow

import (
	"io"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/internal/cli"
)

// TestOptionsValidateSaysEveryProblem: follow's own flags, each refusal
// in its words; --unsubscribe needs no work queue.
func TestOptionsValidateSaysEveryProblem(t *testing.T) {
	t.Parallel()
	const changes, work = "https://sqs.us-east-1.amazonaws.com/1/changes", "https://sqs.us-east-1.amazonaws.com/1/work"
	for _, tc := range []struct {
		name string
		args []string
		want []string // the problems, in order; none: valid
	}{
		{"following", []string{"--changes-url", changes, "--queue-url", work}, nil},
		{"through EventBridge, tuned", []string{"--changes-url", changes, "--queue-url", work, "--via", "eventbridge", "--settle", "1m", "--flush", "10ms", "--config-settle", "0s", "--go-on"}, nil},
		{"unsubscribing", []string{"--unsubscribe", "--changes-url", changes}, nil},
		{"no queues", nil, []string{
			"--changes-url is required: the queue the source bucket's events arrive on",
			"--queue-url is required: the work queue the fleet drains"}},
		{"unsubscribing without the change queue", []string{"--unsubscribe"}, []string{"--changes-url is required: the queue the source bucket's events arrive on"}},
		{"one queue for both", []string{"--changes-url", changes, "--queue-url", changes}, []string{
			"--changes-url and --queue-url are the same queue: events and work must have queues of their own"}},
		{"another way", []string{"--changes-url", changes, "--queue-url", work, "--via", "sns"}, []string{`--via "sns": use s3 or eventbridge`}},
		{"out of range", []string{"--changes-url", changes, "--queue-url", work, "--settle", "2m", "--config-settle", "2h", "--flush", "5ms"}, []string{
			"--settle 2m0s: use 0 (measured) up to 1m0s",
			"--config-settle 2h0m0s: use 0 to 1h",
			"--flush 5ms: use 10ms to 1m"}},
		{"negative", []string{"--changes-url", changes, "--queue-url", work, "--settle", "-1s", "--config-settle", "-1s", "--flush", "2m"}, []string{
			"--settle -1s: use 0 (measured) up to 1m0s",
			"--config-settle -1s: use 0 to 1h",
			"--flush 2m0s: use 10ms to 1m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var o Options
			f := cli.NewFlags("planner follow", Usage, io.Discard)
			o.Register(f)
			if err := f.Parse(tc.args); err != nil {
				t.Fatalf("parse: %v", err)
			}
			var p cli.Problems
			o.Validate(&p)
			if strings.Join(p, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(p, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestOptionsDefaults: events through S3's queue configuration, a 200 ms
// flush, five minutes for a configuration to be in effect, a measured
// settle.
func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	var o Options
	f := cli.NewFlags("planner follow", Usage, io.Discard)
	o.Register(f)
	if err := f.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.Via != ViaS3 || o.Flush != DefaultFlush || o.ConfigSettle.Minutes() != 5 || o.Settle != 0 || o.GoOn || o.Unsubscribe {
		t.Errorf("defaults %+v", o)
	}
}
