package status

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
)

// Counts is what a progress line shows: keys and bytes done (copied,
// deleted, skipped or failed for good) against what the plan has listed so
// far, and whether the plan has finished listing.
type Counts struct {
	Done, Bytes, Failed   int64
	Planned, PlannedBytes int64
	PlanFinished          bool
	// Complete: every message planned is finished (Done alone can reach
	// Planned while a retried message is redone).
	Complete bool
}

// Progress is one line of progress for a person at a terminal, redrawn in
// place: keys and bytes done of planned, the rate, the ETA and failures.
// Log lines written through it (it is an io.Writer) go above the line, which
// is drawn again below them, so the two never mix. Safe for concurrent use.
type Progress struct {
	out     io.Writer
	read    func() Counts
	now     func() time.Time
	every   time.Duration
	columns func() int // the terminal's width, 0 when unknown

	mu      sync.Mutex
	shown   bool      // the line is on the screen
	samples []sample  // recent (time, done) pairs, for the rate
	stop    chan bool // true: leave the last line on the screen
	stopped chan struct{}
}

type sample struct {
	at   time.Time
	done int64
}

// rateWindow is how far back the rate looks: long enough to smooth
// message-sized steps, short enough to follow throttling.
const rateWindow = 10 * time.Second

// NewProgress draws read's counts on out (a terminal) every interval once
// Start is called.
func NewProgress(out io.Writer, read func() Counts, every time.Duration) *Progress {
	return &Progress{out: out, read: read, now: time.Now, every: every, columns: func() int { return terminalWidth(out) }}
}

// Start draws the line, then redraws it every interval until Stop.
func (p *Progress) Start() {
	p.stop, p.stopped = make(chan bool), make(chan struct{})
	p.Draw()
	go func() {
		defer close(p.stopped)
		tick := time.NewTicker(p.every)
		defer tick.Stop()
		for {
			select {
			case keep := <-p.stop:
				p.mu.Lock()
				defer p.mu.Unlock()
				if keep {
					p.drawLocked()
					fmt.Fprint(p.out, "\n")
				} else if p.shown {
					fmt.Fprint(p.out, clearLine)
				}
				p.shown = false
				return
			case <-tick.C:
				p.Draw()
			}
		}
	}()
}

// Stop stops redrawing; with keep the final counts stay on the screen, else
// the line is erased. Log lines written after Stop go straight to out.
func (p *Progress) Stop(keep bool) {
	if p.stop == nil {
		return
	}
	p.stop <- keep
	<-p.stopped
	p.stop = nil
}

// clearLine returns to the start of the line and erases it.
const clearLine = "\r\033[K"

// Draw draws the line now.
func (p *Progress) Draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawLocked()
}

func (p *Progress) drawLocked() {
	c := p.read()
	line := p.line(c)
	if w := p.width(); len(line) >= w {
		line = line[:max(w-1, 0)] // a wrapped line could not be redrawn in place
	}
	fmt.Fprint(p.out, clearLine+line)
	p.shown = true
}

// width is the terminal's width in columns, 80 when it cannot be told.
func (p *Progress) width() int {
	if p.columns != nil {
		if w := p.columns(); w > 0 {
			return w
		}
	}
	return 80
}

// Write writes log lines above the progress line.
func (p *Progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.shown {
		return p.out.Write(b)
	}
	fmt.Fprint(p.out, clearLine)
	n, err := p.out.Write(b)
	if err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
		p.drawLocked()
	}
	return n, err
}

// line formats c, short enough for 80 columns in all but the largest runs
// (drawing cuts it to the terminal's width):
//
//	12,345/50,000 objects 24%  1.20GiB/4.80GiB  1,234/s  ETA 29s  0 failed
//
// While the plan still lists, the planned totals carry a "+" and there is
// no ETA.
func (p *Progress) line(c Counts) string {
	now := p.now()
	p.samples = append(p.samples, sample{now, c.Done})
	for len(p.samples) > 2 && now.Sub(p.samples[1].at) >= rateWindow {
		p.samples = p.samples[1:]
	}
	var rate float64
	if first := p.samples[0]; now.Sub(first.at) > 0 {
		rate = float64(c.Done-first.done) / now.Sub(first.at).Seconds()
	}
	more := ""
	if !c.PlanFinished {
		more = "+"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s%s objects", thousands(c.Done), thousands(c.Planned), more)
	if c.PlanFinished && c.Planned > 0 {
		fmt.Fprintf(&b, " %d%%", c.Done*100/c.Planned)
	}
	fmt.Fprintf(&b, "  %s/%s%s  %s/s", shortSize(c.Bytes), shortSize(c.PlannedBytes), more, thousands(int64(rate+0.5)))
	switch left := c.Planned - c.Done; {
	case !c.PlanFinished:
		b.WriteString("  listing")
	case c.Complete:
		b.WriteString("  done")
	case left <= 0:
		b.WriteString("  finishing")
	case rate > 0:
		fmt.Fprintf(&b, "  ETA %s", roundETA(time.Duration(float64(left)/rate*float64(time.Second))))
	}
	fmt.Fprintf(&b, "  %s failed", thousands(c.Failed))
	return b.String()
}

// shortSize is a size in at most seven characters.
func shortSize(n int64) string {
	s := cli.FormatSize(n)
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s) > 7 {
		return s[:i] + s[i+3:] // 1023.45MiB → 1023MiB
	}
	return s
}

// roundETA writes an ETA as a person reads one: 45s, 3m20s, 2h05m, 3d04h.
func roundETA(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		h := int(d.Round(time.Hour).Hours())
		return fmt.Sprintf("%dd%02dh", h/24, h%24)
	case d >= time.Hour:
		m := int(d.Round(time.Minute).Minutes())
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	case d >= time.Minute:
		s := int(d.Round(10 * time.Second).Seconds())
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return d.Round(time.Second).String()
}

// thousands writes n with commas: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
