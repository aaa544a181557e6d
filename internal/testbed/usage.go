package testbed

import (
	"bufio"
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
	S3Write  int64         // and written
	Busy     time.Duration // every CPU's non-idle time, machine-wide
	IOWait   time.Duration // every CPU's time idle waiting on storage
	CPUs     int
}

// Usage reads the servers' and the machine's counters now.
func (e *Env) Usage(t testing.TB) Usage {
	t.Helper()
	u, err := e.usage()
	if err != nil {
		t.Fatalf("usage of the test bed: %v", err)
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
	u.S3Read, u.S3Write = io["read_bytes"], io["write_bytes"]
	u.Busy, u.IOWait, u.CPUs, err = machineCPU()
	return u, err
}

// Since is the usage between before and u.
func (u Usage) Since(before Usage) Usage {
	return Usage{
		At: u.At, S3CPU: u.S3CPU - before.S3CPU, SQSCPU: u.SQSCPU - before.SQSCPU, ProxyCPU: u.ProxyCPU - before.ProxyCPU,
		S3Read: u.S3Read - before.S3Read, S3Write: u.S3Write - before.S3Write,
		Busy: u.Busy - before.Busy, IOWait: u.IOWait - before.IOWait, CPUs: u.CPUs,
	}
}

// String says where a step's time went: each server's CPU, the machine's
// busy and I/O wait time, and what the S3 server read from storage.
func (u Usage) String() string {
	return fmt.Sprintf("S3 server %.1fs CPU (read %.0f MiB from storage, %.0f MiB written), SQS %.1fs, proxy %.1fs; machine busy %.1f of %d CPUs' s, I/O wait %.1fs",
		u.S3CPU.Seconds(), float64(u.S3Read)/(1<<20), float64(u.S3Write)/(1<<20), u.SQSCPU.Seconds(), u.ProxyCPU.Seconds(), u.Busy.Seconds(), u.CPUs, u.IOWait.Seconds())
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

// machineCPU is the machine's busy and I/O wait time over all CPUs, and how
// many CPUs, from /proc/stat.
func machineCPU() (busy, iowait time.Duration, cpus int, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	var total, idle, wait int64
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			cpus++
			continue
		}
		// user nice system idle iowait irq softirq steal ...
		for i, v := range fields[1:] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("/proc/stat: %q", line)
			}
			if i >= 8 { // guest time is already in user
				break
			}
			total += n
			switch i {
			case 3:
				idle = n
			case 4:
				wait = n
			}
		}
	}
	const clockTicks = 100 // USER_HZ on Linux
	tick := time.Second / clockTicks
	return time.Duration(total-idle-wait) * tick, time.Duration(wait) * tick, cpus, nil
}
