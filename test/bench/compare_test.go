package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3clone/s3clone/test/testbed"
)

// run is one tool's clones of the seeded bucket: the medians of its rounds.
type run struct {
	Tool          string  `json:"tool"`
	Seconds       float64 `json:"seconds"`
	ObjectsPerSec float64 `json:"objects_per_second"`
	ClientCPU     float64 `json:"client_cpu_seconds"`
	ServerCPU     float64 `json:"server_cpu_seconds"`
	ProxyCPU      float64 `json:"proxy_cpu_seconds"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	// WallSeconds is the time as a user times it: from the first process's
	// start to the last one's exit (a fleet's idle exit included).
	WallSeconds float64 `json:"wall_seconds"`
	// ProcessCPU is each process's user+sys CPU in the round of median
	// client CPU, e.g. "planner plan 0.31s, worker 1.02s, worker 0.98s".
	ProcessCPU string    `json:"process_cpu"`
	Copied     int       `json:"copied"`
	Rounds     []float64 `json:"round_seconds"`
	Note       string    `json:"note,omitempty"`
}

// sample is one round of one tool.
type sample struct {
	seconds, client, server, proxy, rss, wall float64
	copied                                    int
	processes                                 string
}

// median of a non-empty list.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// procs measures child processes: CPU summed, peak RSS the largest.
type procs struct {
	mu   sync.Mutex
	cpu  time.Duration
	rss  int64    // KiB
	each []string // "name CPU" of each process, in the order they ended
}

func (p *procs) add(cmd *exec.Cmd, peak int64, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := cmd.ProcessState; st != nil {
		cpu := st.UserTime() + st.SystemTime()
		p.cpu += cpu
		p.each = append(p.each, fmt.Sprintf("%s %.2fs", name, cpu.Seconds()))
	}
	p.rss = max(p.rss, peak)
}

// breakdown is each process's CPU, the planner first.
func (p *procs) breakdown() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	each := slices.Clone(p.each)
	slices.SortStableFunc(each, func(a, b string) int {
		return cmp.Compare(boolInt(!strings.HasPrefix(a, "planner")), boolInt(!strings.HasPrefix(b, "planner")))
	})
	return strings.Join(each, ", ")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// exe runs a command to the end, failing the benchmark unless it exits 0,
// and records its CPU and peak RSS.
func (p *procs) exe(b *testing.B, env []string, name string, args ...string) {
	b.Helper()
	t := startPath(b, env, name, args...)
	t.wait(b)
	label := filepath.Base(name)
	if label == "planner" && len(args) > 0 {
		label += " " + args[0]
	}
	p.add(t.cmd, t.peak.Load(), label)
}

func tailOf(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// BenchmarkCompare clones one seeded bucket with aws s3 sync, s5cmd, rclone
// and s3clone (one process; planner + 1, 2 and 4 workers), each into a fresh
// bucket through the latency proxy, checks every clone is complete, and
// writes the table to bench/results.
func BenchmarkCompare(b *testing.B) {
	env, n, ms, slow, src := seeded(b, 10000, 20, false)
	peers := filepath.Join(env.Root, ".tools", "peers")
	base := env.EnvironFor(slow)
	// The aws CLI v1 reads its region from AWS_DEFAULT_REGION.
	awsEnv := append(base, "AWS_DEFAULT_REGION="+testbed.Region)
	rcloneEnv := append(base,
		"RCLONE_CONFIG_VGW_TYPE=s3", "RCLONE_CONFIG_VGW_PROVIDER=Other", "RCLONE_CONFIG_VGW_ENDPOINT="+slow,
		"RCLONE_CONFIG_VGW_ACCESS_KEY_ID="+testbed.AccessKey, "RCLONE_CONFIG_VGW_SECRET_ACCESS_KEY="+testbed.SecretKey,
		"RCLONE_CONFIG_VGW_FORCE_PATH_STYLE=true", "RCLONE_CONFIG_VGW_REGION="+testbed.Region)

	tools := []struct {
		name string
		// run clones into dst and returns the time to leave out: a fleet's
		// idle exit after the queue ran dry.
		run func(p *procs, dst string) time.Duration
	}{
		{"aws s3 sync", func(p *procs, dst string) time.Duration {
			p.exe(b, awsEnv, "aws", "--endpoint-url", slow, "s3", "sync", "--only-show-errors", "s3://"+src, "s3://"+dst)
			return 0
		}},
		{"s5cmd (256 workers)", func(p *procs, dst string) time.Duration {
			p.exe(b, base, filepath.Join(peers, "s5cmd"), "--endpoint-url", slow, "--numworkers", "256", "cp", "s3://"+src+"/*", "s3://"+dst+"/")
			return 0
		}},
		{"rclone --transfers 256 --checkers 256", func(p *procs, dst string) time.Duration {
			p.exe(b, rcloneEnv, filepath.Join(peers, "rclone"), "copy", "vgw:"+src, "vgw:"+dst, "--transfers", "256", "--checkers", "256")
			return 0
		}},
		{"s3clone planner run", func(p *procs, dst string) time.Duration {
			p.exe(b, base, filepath.Join(bin, "planner"), "run", "--source", "s3://"+src, "--dest", "s3://"+dst, "--log-level", "warn")
			return 0
		}},
		{"s3clone planner + 1 worker", fleet(b, env, base, src, 1)},
		{"s3clone planner + 2 workers", fleet(b, env, base, src, 2)},
		{"s3clone planner + 4 workers", fleet(b, env, base, src, 4)},
	}
	// Runs on one shared machine vary by a fifth from one to the next, so
	// every tool runs several rounds, in a rotated order each round, and
	// the table shows medians.
	rounds := setting("S3CLONE_BENCH_ROUNDS", 3)
	if _, err := os.Stat(filepath.Join(peers, "s5cmd")); err != nil {
		b.Fatalf("s5cmd is not installed: run make bench-tools")
	}
	for b.Loop() {
		samples := make([][]sample, len(tools))
		notes := make([]string, len(tools))
		for round := range rounds {
			for k := range tools {
				i := (k + round) % len(tools)
				tool := tools[i]
				dst := env.Bucket(b)
				var p procs
				server0, _ := env.ServerCPU()
				proxy0, _ := env.ProxyCPU()
				start := time.Now()
				idle := tool.run(&p, dst)
				wall := time.Since(start)
				took := wall - idle
				server1, err := env.ServerCPU()
				if err != nil {
					b.Fatal(err)
				}
				proxy1, err := env.ProxyCPU()
				if err != nil {
					b.Fatal(err)
				}
				copied := len(env.Keys(b, dst, ""))
				if copied != n {
					b.Errorf("%s copied %d of %d objects", tool.name, copied, n)
				}
				if idle > 0 {
					notes[i] = "time ends when the work queue is empty and nothing is in flight; the workers' idle exit after that is left out"
				}
				sm := sample{took.Seconds(), p.cpu.Seconds(), (server1 - server0).Seconds(), (proxy1 - proxy0).Seconds(), float64(p.rss) / 1024, wall.Seconds(), copied, p.breakdown()}
				samples[i] = append(samples[i], sm)
				b.Logf("round %d: %-40s %7.2fs (wall %.2fs) %7.0f objects/s  client CPU %6.2fs (%s)  server CPU %6.2fs  proxy CPU %6.2fs  peak RSS %5.0f MiB",
					round+1, tool.name, sm.seconds, sm.wall, float64(n)/sm.seconds, sm.client, sm.processes, sm.server, sm.proxy, sm.rss)
			}
		}
		runs := make([]run, len(tools))
		for i, tool := range tools {
			pick := func(f func(sample) float64) []float64 {
				var xs []float64
				for _, sm := range samples[i] {
					xs = append(xs, f(sm))
				}
				return xs
			}
			secs := pick(func(sm sample) float64 { return sm.seconds })
			byCPU := slices.Clone(samples[i])
			slices.SortFunc(byCPU, func(a, b sample) int { return cmp.Compare(a.client, b.client) })
			runs[i] = run{
				Tool: tool.name, Seconds: median(secs), ObjectsPerSec: float64(n) / median(secs),
				ClientCPU:  median(pick(func(sm sample) float64 { return sm.client })),
				ServerCPU:  median(pick(func(sm sample) float64 { return sm.server })),
				ProxyCPU:   median(pick(func(sm sample) float64 { return sm.proxy })),
				PeakRSSMiB: slices.Max(pick(func(sm sample) float64 { return sm.rss })),
				Copied:     int(slices.Min(pick(func(sm sample) float64 { return float64(sm.copied) }))), // the worst round's
				Rounds:     secs, Note: notes[i],
				WallSeconds: median(pick(func(sm sample) float64 { return sm.wall })),
				ProcessCPU:  byCPU[len(byCPU)/2].processes,
			}
		}
		if err := writeResults(env.Root, n, ms, rounds, runs); err != nil {
			b.Fatal(err)
		}
	}
}

// fleet runs a planner and k worker processes on fresh queues. The workers
// start first, as an operator would start them. The clone is done when the
// work queue holds nothing, visible or in flight, after the plan: every
// message copied, recorded in the ledger and deleted. That moment ends the time; the
// workers' idle exit after it is left out. (Timing the workers' exit with a
// short idle exit instead undercounted fleets: a worker that found nothing
// before the planner's first message exited, and ran no copies.)
func fleet(b *testing.B, env *testbed.Env, base []string, src string, k int, workerFlags ...string) func(p *procs, dst string) time.Duration {
	return func(p *procs, dst string) time.Duration {
		work, _ := env.Queue(b, 0)
		ledger := "s3://" + env.Bucket(b) + "/s3clone/"
		var wg sync.WaitGroup
		for i := range k {
			wg.Go(func() {
				p.exe(b, base, filepath.Join(bin, "worker"), append([]string{"--id", fmt.Sprint("w", i), "--queue-url", work,
					"--ledger", ledger, "--idle-exit", "5s", "--log-level", "warn"}, workerFlags...)...)
			})
		}
		p.exe(b, base, filepath.Join(bin, "planner"), "plan", "--source", "s3://"+src, "--dest", "s3://"+dst,
			"--queue-url", work, "--ledger", ledger, "--log-level", "warn")
		done := waitDrained(b, env, work)
		wg.Wait()
		return time.Since(done)
	}
}

// writeResults writes the runs as bench/results/compare-<time>.{md,json}.
func writeResults(root string, n, ms, rounds int, runs []run) error {
	dir := filepath.Join(root, "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	byTool := map[string]run{}
	for _, r := range runs {
		byTool[r.Tool] = r
	}
	s5, sync := byTool["s5cmd (256 workers)"], byTool["aws s3 sync"]
	var md strings.Builder
	fmt.Fprintf(&md, "# Clone of %d objects (1–64 KiB) behind a %d ms latency proxy, %s\n\n", n, ms, stamp)
	fmt.Fprintf(&md, "Everything shares this machine's 2 cores with the S3 server (versitygw) and the latency proxy (toxiproxy). "+
		"Medians of %d rounds, each round running every tool once in a rotated order; seconds shows the range. "+
		"Peak RSS is the largest process's.\n\n", rounds)
	md.WriteString("| tool | seconds (min–max) | wall s, start to exit | objects/s | × s5cmd | × aws s3 sync | client CPU s / 1,000 objects | client CPU × s5cmd | server CPU s / 1,000 objects | proxy CPU s / 1,000 objects | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		fmt.Fprintf(&md, "| %s | %.2f (%.2f–%.2f) | %.2f | %.0f | %.2f | %.2f | %.3f | %.2f | %.3f | %.3f | %.0f |\n", r.Tool, r.Seconds, slices.Min(r.Rounds), slices.Max(r.Rounds), r.WallSeconds, r.ObjectsPerSec,
			ratio(r.ObjectsPerSec, s5.ObjectsPerSec), ratio(r.ObjectsPerSec, sync.ObjectsPerSec),
			1000*r.ClientCPU/float64(n), ratio(r.ClientCPU, s5.ClientCPU), 1000*r.ServerCPU/float64(n), 1000*r.ProxyCPU/float64(n), r.PeakRSSMiB)
	}
	md.WriteString("\nEach process's CPU (user + sys), in the round of median client CPU:\n\n| tool | processes |\n|---|---|\n")
	for _, r := range runs {
		fmt.Fprintf(&md, "| %s | %s |\n", r.Tool, r.ProcessCPU)
	}
	if err := os.WriteFile(filepath.Join(dir, "compare-"+stamp+".md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	data, err := json.MarshalIndent(map[string]any{"objects": n, "latency_ms": ms, "rounds": rounds, "time": stamp, "runs": runs}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "compare-"+stamp+".json"), data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "compare-"+stamp+".svg"), chart(n, ms, runs), 0o644)
}

// chart draws objects/s per tool as a horizontal bar chart (SVG).
func chart(n, ms int, runs []run) []byte {
	const left, width, row, top = 290, 420, 30, 50
	best := 1.0
	for _, r := range runs {
		best = max(best, r.ObjectsPerSec)
	}
	var b strings.Builder
	h := top + row*len(runs) + 20
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`, left+width+90, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="24" font-size="15">Objects/s cloning %d objects behind %d ms latency (higher is better)</text>`, n, ms)
	for i, r := range runs {
		y := top + i*row
		w := int(float64(width) * r.ObjectsPerSec / best)
		color := "#7a8ca5"
		if strings.HasPrefix(r.Tool, "s3clone") {
			color = "#2f6db3"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, left-8, y+16, r.Tool)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="20" fill="%s"/>`, left, y+2, w, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%.0f</text>`, left+w+6, y+16, r.ObjectsPerSec)
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
