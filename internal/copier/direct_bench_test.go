package copier

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3clone/s3clone/internal/s3wire/wiretest"
)

// cannedServerEnv, set in a test binary's environment, makes it serve
// canned CopyObject answers on loopback instead of running tests.
const cannedServerEnv = "S3CLONE_CANNED_COPY_SERVER"

// serveCanned answers every request with a copy result, as fast as it can,
// printing its address first. It never returns.
func serveCanned() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(l.Addr())
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("X-Amz-Request-Id", "0123456789ABCDEF")
		_, _ = io.WriteString(w, wiretest.CopyResult)
	}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// startCanned runs the canned server in a child process, so that this
// process's CPU time is the client's alone.
func startCanned(b *testing.B) string {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), cannedServerEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("canned server: %v", err)
	}
	return "http://" + addr[:len(addr)-1]
}

// BenchmarkClientCPUPerCopy measures what one CopyObject costs the client
// (CPU and allocations), through the SDK and through Direct, against a
// loopback server in another process that answers at once. 32 copies are in
// flight, GOGC is the worker's 400, and each b.N round is 10,000 copies so
// that `make bench`'s -benchtime 1x measures something.
func BenchmarkClientCPUPerCopy(b *testing.B) {
	endpoint := startCanned(b)
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	for _, via := range []string{"sdk", "direct"} {
		b.Run(via, func(b *testing.B) {
			client := s3.New(s3.Options{
				Region:       "us-east-1",
				BaseEndpoint: aws.String(endpoint),
				UsePathStyle: true,
				Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")),
				HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
			})
			var api API = client
			if via == "direct" {
				api = NewDirect(client, nil)
			}
			const perRound, inFlight = 10000, 32
			copies := b.N * perRound
			cpu0, allocs0 := clientCost()
			start := time.Now()
			var wg sync.WaitGroup
			work := make(chan int)
			for range inFlight {
				wg.Go(func() {
					for i := range work {
						key := fmt.Sprintf("images/2026/11/photo-%06d.jpg", i)
						_, err := api.CopyObject(context.Background(), &s3.CopyObjectInput{
							Bucket: aws.String("dest"), Key: aws.String(key), CopySource: aws.String("source/" + key),
							CopySourceIfMatch: aws.String(`"9b2cf535f27731c974343645a3985328"`),
							MetadataDirective: types.MetadataDirectiveCopy, TaggingDirective: types.TaggingDirectiveCopy,
						})
						if err != nil {
							b.Error(err)
						}
					}
				})
			}
			for i := range copies {
				work <- i
			}
			close(work)
			wg.Wait()
			elapsed := time.Since(start)
			cpu1, allocs1 := clientCost()
			b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(copies), "client-cpu-µs/copy")
			b.ReportMetric(float64(allocs1-allocs0)/float64(copies), "allocs/copy")
			b.ReportMetric(float64(copies)/elapsed.Seconds(), "copies/s")
		})
	}
}

// clientCost is this process's CPU time so far and its allocation count.
func clientCost() (time.Duration, uint64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ms.Mallocs
}
