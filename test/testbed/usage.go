package testbed

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Usage is what the test bed's machine and its servers have used so far:
// taken before and after a step, the difference says where the step's time
// went on a shared box.
type Usage struct {
	At       time.Time
	S3CPU    time.Duration // the S3 server's user + system time
	SQSCPU   time.Duration // the SQS server's
	ProxyCPU time.Duration // the latency proxies'
	S3Read   int64         // bytes the S3 server caused to be read from storage
	S3Dirty  int64         // and to be written (pages it dirtied)
	Busy     time.Duration // every CPU's time running anything, machine-wide (sampled by ticks)
	IOWait   time.Duration // every CPU's time idle while I/O was pending
	Steal    time.Duration // every CPU's time taken by the VM's host
	CPUs     int
	Wall     time.Duration // set by Since
	err      error
}

// Usage reads the servers' and the machine's counters now. Where they
// cannot be read (no /proc I/O accounting), it logs why and the usage says
// it was not measured: a benchmark's own results still stand.
func (e *Env) Usage(t testing.TB) Usage {
	t.Helper()
	u, err := e.usage()
	if err != nil {
		t.Logf("usage of the test bed not measured: %v", err)
		return Usage{At: time.Now(), err: err}
	}
	return u
}

func (e *Env) usage() (Usage, error) {
	u := Usage{At: time.Now()}
	var err error
	if u.S3CPU, err = e.ServerCPU(); err != nil {
		return u, err
	}
	if u.SQSCPU, err = e.SQSServerCPU(); err != nil {
		return u, err
	}
	if u.ProxyCPU, err = e.ProxyCPU(); err != nil {
		return u, err
	}
	io, err := processIO(e.procs[0].Process.Pid)
	if err != nil {
		return u, err
	}
	u.S3Read, u.S3Dirty = io["read_bytes"], io["write_bytes"]
	u.Busy, u.IOWait, u.Steal, u.CPUs, err = machineCPU()
	return u, err
}

// Since is the usage between before and u.
func (u Usage) Since(before Usage) Usage {
	if u.err != nil || before.err != nil {
		return Usage{At: u.At, err: errors.Join(u.err, before.err)}
	}
	return Usage{
		At: u.At, S3CPU: u.S3CPU - before.S3CPU, SQSCPU: u.SQSCPU - before.SQSCPU, ProxyCPU: u.ProxyCPU - before.ProxyCPU,
		S3Read: u.S3Read - before.S3Read, S3Dirty: u.S3Dirty - before.S3Dirty,
		Busy: u.Busy - before.Busy, IOWait: u.IOWait - before.IOWait, Steal: u.Steal - before.Steal,
		CPUs: u.CPUs, Wall: u.At.Sub(before.At),
	}
}

// String says where a step's time went: each server's CPU, what the S3
// server read from storage, and how busy the machine was.
func (u Usage) String() string {
	if u.err != nil {
		return fmt.Sprintf("usage not measured (%v)", u.err)
	}
	of := u.Wall * time.Duration(u.CPUs)
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / max(of.Seconds(), 1e-9) }
	return fmt.Sprintf("S3 server %.1fs CPU (read %.0f MiB from storage, dirtied %.0f MiB), SQS %.1fs, proxy %.1fs; the box %.0f%% busy, %.0f%% idle with I/O pending, %.0f%% stolen by the host (of %d CPUs × %.1fs)",
		u.S3CPU.Seconds(), float64(u.S3Read)/(1<<20), float64(u.S3Dirty)/(1<<20), u.SQSCPU.Seconds(), u.ProxyCPU.Seconds(),
		pct(u.Busy), pct(u.IOWait), pct(u.Steal), u.CPUs, u.Wall.Seconds())
}

// processIO is /proc/PID/io as numbers.
func processIO(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/io: %q", pid, sc.Text())
		}
		out[name] = n
	}
	return out, sc.Err()
}

// machineCPU is the machine's busy, I/O wait and stolen time over all CPUs,
// and how many CPUs, from /proc/stat.
func machineCPU() (busy, iowait, steal time.Duration, cpus int, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	var run, wait, stolen int64
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			cpus++
			continue
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user.
		for i, v := range fields[1:min(len(fields), 9)] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, 0, 0, 0, fmt.Errorf("/proc/stat: %q", line)
			}
			switch i {
			case 3: // idle
			case 4:
				wait = n
			case 7:
				stolen = n
			default:
				run += n
			}
		}
	}
	tick := time.Second / userHZ
	return time.Duration(run) * tick, time.Duration(wait) * tick, time.Duration(stolen) * tick, cpus, nil
}
