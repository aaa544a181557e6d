package bench

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

func BenchmarkZZProfile(b *testing.B) {
	env, _, _, slow, src := seeded(b, 10000, 20, false)
	base := env.EnvironFor(slow)
	p := &procs{}
	dst := env.Bucket(b)
	p.exe(b, base, filepath.Join(bin, "planner"), "run", "--source", "s3://"+src, "--dest", "s3://"+dst, "--log-level", "warn", "--cpu-profile", "/tmp/mb/run.prof")
	work, _ := env.Queue(b, 0)
	reports, _ := env.Queue(b, 0)
	dst2 := env.Bucket(b)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			p.exe(b, base, filepath.Join(bin, "worker"), "--id", fmt.Sprint("w", i), "--queue-url", work,
				"--report-queue-url", reports, "--idle-exit", "5s", "--log-level", "warn", "--cpu-profile", fmt.Sprintf("/tmp/mb/w%d.prof", i))
		})
	}
	p.exe(b, base, filepath.Join(bin, "planner"), "plan", "--source", "s3://"+src, "--dest", "s3://"+dst2,
		"--queue-url", work, "--report-queue-url", reports, "--log-level", "warn")
	wg.Wait()
}
