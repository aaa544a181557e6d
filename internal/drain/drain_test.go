package drain

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
)

// TestAlongsideOutlivesTheWorkersContext: what runs beside the worker goes
// on after the worker's context ends (its grace period), and stops only at
// stop, the last started first, each waited for: the rates end before the
// last EMF record is written, and that before the metrics server stops.
func TestAlongsideOutlivesTheWorkersContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu    sync.Mutex
		ended []string
	)
	end := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		ended = append(ended, name)
	}
	var a alongside
	server := a.context(ctx)
	go func() { <-server.Done(); end("server") }()
	for _, name := range []string{"emf", "pace"} {
		a.start(ctx, func(ctx context.Context) {
			<-ctx.Done()
			time.Sleep(20 * time.Millisecond) // a last record, written after the end
			end(name)
		})
	}
	cancel() // the worker's stop signal
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	early := slices.Clone(ended)
	mu.Unlock()
	if len(early) != 0 || server.Err() != nil {
		t.Fatalf("ended with the worker's context: %v (server %v)", early, server.Err())
	}
	a.stop()
	if server.Err() == nil {
		t.Fatal("the server's context did not end at stop")
	}
	time.Sleep(20 * time.Millisecond) // the server's watcher above
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(ended, []string{"pace", "emf", "server"}) {
		t.Fatalf("ended %v, want pace, then emf (waited for), then the server", ended)
	}
	a.stop() // a second stop does nothing
}

// TestOptionsNameEveryProblem: every malformed worker flag is named at
// once, as a usage error (exit 2).
func TestOptionsNameEveryProblem(t *testing.T) {
	var o Options
	f := cli.NewFlags("worker", Usage, io.Discard)
	o.Register(f)
	if err := f.Parse([]string{"--metrics-addr", "9464", "--emf-interval", "2m", "--ledger", "not-s3"}); err != nil {
		t.Fatal(err)
	}
	err := o.Validate()
	if code := cli.ExitCode(err, io.Discard); code != cli.ExitUsage {
		t.Fatalf("exit %d, want %d: %v", code, cli.ExitUsage, err)
	}
	for _, want := range []string{"--queue-url is required", "--ledger", `--metrics-addr "9464"`, "--emf-interval 2m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not name %q", err, want)
		}
	}

	o = Options{}
	f = cli.NewFlags("worker", Usage, io.Discard)
	o.Register(f)
	if err := f.Parse([]string{"--queue-url", "https://sqs.eu-west-1.amazonaws.com/123456789012/work", "--ledger", "s3://led/p/", "--metrics-addr", "127.0.0.1:9464", "--emf", "prod"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("good flags: %v", err)
	}
	if o.Ledger.Loc.Bucket != "led" || o.EMFEvery != time.Minute {
		t.Errorf("parsed %+v", o)
	}
}
