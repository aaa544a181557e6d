package status

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a terminal's screen as bytes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProgressLine(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		counts []Counts // one a second
		want   string
	}{
		{"listing", []Counts{{Done: 0, Planned: 1000, PlannedBytes: 1 << 20}, {Done: 500, Bytes: 1 << 19, Planned: 2000, PlannedBytes: 2 << 20}},
			"500/2,000+ objects  512KiB/2MiB+  500/s  listing  0 failed"},
		{"an ETA from the recent rate", []Counts{{Done: 0, Planned: 50000, PlanFinished: true}, {Done: 1000, Planned: 50000, PlanFinished: true},
			{Done: 3000, Failed: 2, Bytes: 3 << 30, Planned: 50000, PlannedBytes: 50 << 30, PlanFinished: true}},
			"3,000/50,000 objects 6%  3GiB/50GiB  1,500/s  ETA 31s  2 failed"},
		{"done", []Counts{{Done: 1234567, Bytes: 1536 << 20, Planned: 1234567, PlannedBytes: 1536 << 20, PlanFinished: true, Complete: true}},
			"1,234,567/1,234,567 objects 100%  1.50GiB/1.50GiB  0/s  done  0 failed"},
		{"every key counted, a message still redone", []Counts{{Done: 10, Planned: 10, PlanFinished: true}},
			"10/10 objects 100%  0B/0B  0/s  finishing  0 failed"},
		{"days to go", []Counts{{Done: 0, Planned: 10000000, PlanFinished: true}, {Done: 10, Planned: 10000000, PlanFinished: true}},
			"10/10,000,000 objects 0%  0B/0B  10/s  ETA 11d14h  0 failed"},
		{"hours to go", []Counts{{Done: 0, Planned: 100000, PlanFinished: true}, {Done: 10, Planned: 100000, PlanFinished: true}},
			"10/100,000 objects 0%  0B/0B  10/s  ETA 2h47m  0 failed"},
		{"no rate yet", []Counts{{Planned: 10, PlanFinished: true}}, "0/10 objects 0%  0B/0B  0/s  0 failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := at
			p := NewProgress(nil, nil, time.Second)
			p.now = func() time.Time { return now }
			var got string
			for _, counts := range c.counts {
				got = p.line(counts)
				now = now.Add(time.Second)
			}
			if got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			if len(got) >= 80 {
				t.Errorf("%d columns: a terminal of 80 would wrap it", len(got))
			}
		})
	}

	// The rate follows the last ten seconds, not the whole run.
	now := at
	p := NewProgress(nil, nil, time.Second)
	p.now = func() time.Time { return now }
	for s := range 60 {
		done := int64(s * 100) // 100/s for a minute...
		if s >= 40 {
			done = 4000 + int64(s-40)*10 // ...then 10/s
		}
		p.line(Counts{Done: done, Planned: 100000, PlanFinished: true})
		now = now.Add(time.Second)
	}
	if got := p.line(Counts{Done: 4200, Planned: 100000, PlanFinished: true}); !strings.Contains(got, "  10/s  ") {
		t.Errorf("%q: want the last ten seconds' 10/s", got)
	}
}

func TestProgressKeepsLogLinesAbove(t *testing.T) {
	screen := &lockedBuffer{}
	var mu sync.Mutex
	counts := Counts{Planned: 10, PlanFinished: true}
	p := NewProgress(screen, func() Counts { mu.Lock(); defer mu.Unlock(); return counts }, time.Hour)
	at := time.Now()
	p.now = func() time.Time { return at } // no time passes: no rate

	if _, err := p.Write([]byte("before start\n")); err != nil {
		t.Fatal(err)
	}
	p.Start()
	if _, err := p.Write([]byte("a log line\n")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	counts.Done, counts.Complete = 10, true
	mu.Unlock()
	p.Stop(true)
	if _, err := p.Write([]byte("after stop\n")); err != nil {
		t.Fatal(err)
	}

	first := clearLine + "0/10 objects 0%  0B/0B  0/s  0 failed"
	want := "before start\n" +
		first + // Start draws at once
		clearLine + "a log line\n" + first + // the line erased, the log, the line again
		clearLine + "10/10 objects 100%  0B/0B  0/s  done  0 failed\n" + // Stop(true) leaves the last counts
		"after stop\n"
	if got := screen.String(); got != want {
		t.Errorf("screen:\n%q\nwant:\n%q", got, want)
	}
}

// TestProgressFitsTheTerminal: a line longer than the terminal is wide is
// cut to one column less, so it never wraps (a wrapped line cannot be
// redrawn in place).
func TestProgressFitsTheTerminal(t *testing.T) {
	screen := &lockedBuffer{}
	p := NewProgress(screen, func() Counts {
		return Counts{Done: 1234572, Planned: 10000000, Bytes: 900 << 30, PlannedBytes: 1000 << 30, Failed: 12345, PlanFinished: true}
	}, time.Hour)
	for _, cols := range []int{40, 30} {
		p.columns = func() int { return cols }
		p.Draw()
		got := screen.String()
		line := got[strings.LastIndex(got, clearLine)+len(clearLine):]
		if len(line) != cols-1 || !strings.HasPrefix(line, "1,234,572/10,000,000") {
			t.Errorf("%d columns: drew %q (%d)", cols, line, len(line))
		}
	}
}
