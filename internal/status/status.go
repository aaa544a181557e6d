// Package status turns what the ledger says of a run into what an operator
// reads: totals against the plan, rates, the ETA, how many workers would
// meet a deadline, and whether the run is complete or stalled, as text or
// JSON. Run is the planner's status command: it reads the run from the
// ledger (through the clients the command builds), shows it once or at
// every refresh of a watch, lists its failed keys, and sizes the worker
// service for a deadline; the rest (New, Print, Progress) reads nothing
// itself, and other commands feed it too.
package status

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/ledger"
)

// Depth is the work queue's depth, as status shows it.
type Depth struct {
	URL          string `json:"url"`
	Visible      int64  `json:"visible"`
	InFlight     int64  `json:"in_flight"`
	DeadLettered *int64 `json:"dead_lettered,omitempty"` // nil: no dead-letter queue (or unreadable)
	Error        string `json:"error,omitempty"`
}

// Plan states, in View.Plan.
const (
	PlanRunning  = "planning" // still sending
	PlanFinished = "finished" // sent everything
	PlanStopped  = "stopped"  // ended before sending everything
	PlanSilent   = "silent"   // not ended, and the planner has not been heard from for minutes: killed
)

// View is one run's progress as status prints it.
type View struct {
	Run    string `json:"run"`
	Source string `json:"source,omitempty"`
	Dest   string `json:"dest,omitempty"`
	// Plan is PlanRunning, PlanFinished or PlanStopped; PlanError says why
	// a stopped plan stopped.
	Plan      string         `json:"plan"`
	PlanError string         `json:"plan_error,omitempty"`
	Planned   *ledger.Totals `json:"planned,omitempty"`
	// Messages is how many sent messages are done, of Sent.
	Messages   int64    `json:"messages_done"`
	Sent       int64    `json:"messages_sent"`
	Unrecorded int64    `json:"messages_unrecorded,omitempty"`
	Copied     int64    `json:"copied"`
	Deleted    int64    `json:"deleted"`
	Skipped    int64    `json:"skipped"`
	Failed     int64    `json:"failed"`
	Bytes      int64    `json:"bytes_copied"`
	Remaining  *int64   `json:"remaining,omitempty"`
	Workers    int      `json:"workers"`
	Rate       float64  `json:"objects_per_second"`
	RecentRate float64  `json:"recent_objects_per_second"`
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	Complete   bool     `json:"complete"`
	// Stalled: not complete, nothing left on the work queue, and messages
	// in its dead-letter queue: no worker can finish the run until they are
	// fixed and redriven.
	Stalled  bool             `json:"stalled,omitempty"`
	Deadline *Deadline        `json:"deadline,omitempty"`
	Queue    *Depth           `json:"queue,omitempty"`
	Failures []ledger.Failure `json:"failures,omitempty"`
	// Verdict is a cutover's, once it has given one; ReconURL is where its
	// reconciliation file is.
	Verdict *ledger.Verdict `json:"verdict,omitempty"`
	// Holds are the worker services whose dynamic scale-in an s3clone
	// command holds suspended (ledger.FleetHold), not released.
	Holds    []ledger.FleetHold `json:"fleet_holds,omitempty"`
	ReconURL string             `json:"recon_url,omitempty"`
	Scale    *Scale             `json:"scale,omitempty"`
	// Follow is planner follow's record, for a follow's run, with how long
	// a cutover --follow would take now.
	Follow *Following `json:"follow,omitempty"`
	// Pacing is how the fleet paces its writes to the destination's
	// prefixes now, from the workers' presence in the ledger (pace/).
	Pacing *Pacing `json:"pacing,omitempty"`
}

// Following is a follow's state and the window it predicts.
type Following struct {
	Record     ledger.Follow     `json:"record"`
	Prediction follow.Prediction `json:"prediction"`
	// Running: the record was written lately (every 5 s while it runs).
	Running bool `json:"running"`
}

// NewFollowing is a follow's view at now; fleetRate is the bulk copy's
// rate (0: unknown).
func NewFollowing(f ledger.Follow, st ledger.Status, fleetRate float64, now time.Time) *Following {
	return &Following{Record: f, Prediction: follow.Predict(f, st, fleetRate), Running: f.Stopped.IsZero() && now.Sub(f.Alive) < 30*time.Second}
}

func (fw *Following) print(row func(label, format string, args ...any)) {
	r, p := fw.Record, fw.Prediction
	state := "running"
	switch {
	case !r.Stopped.IsZero():
		state = "stopped " + r.Stopped.Format(time.RFC3339)
	case !fw.Running:
		state = "silent since " + r.Alive.Format(time.RFC3339) + " (killed?)"
	}
	anchored := "anchored"
	if !r.Anchored {
		anchored = "NOT anchored yet (its probe, or the catch-up listing after the bulk run, is not done)"
	}
	row("follow", "%s, via %s, %s", state, r.Via, anchored)
	row("", "%d events, %d keys sent (%d from the catch-up), %d ignored; lag %s, events up to %s out of order lately",
		r.Events, r.Keys, r.CaughtUp, r.Ignored, r.Lag.Round(10*time.Millisecond), r.Lateness.Round(10*time.Millisecond))
	if !p.Known {
		row("window", "at least %s at a freeze now (lag %s + settle %s; the fleet has no rate yet for the %.0f keys to do)",
			p.Window.Round(10*time.Millisecond), p.Lag.Round(10*time.Millisecond), p.Settle.Round(10*time.Millisecond), p.Keys)
	} else {
		row("window", "about %s at a freeze now: lag %s + settle %s + the fleet's %s for %.0f keys at %.0f/s",
			p.Window.Round(10*time.Millisecond), p.Lag.Round(10*time.Millisecond), p.Settle.Round(10*time.Millisecond), p.Tail.Round(10*time.Millisecond), p.Keys, p.FleetRate)
	}
	row("", "%d requests, $%.4f; following costs $%.2f an hour at %.1f changes/s", p.Requests, p.Cost, p.HourlyCost, p.ChangeRate)
}

// Pacing is the fleet's write pacing as its workers last reported it.
type Pacing struct {
	Workers  int          `json:"workers"`
	Prefixes []PrefixPace `json:"prefixes,omitempty"` // the busiest first
	// Queued keys wait for their prefix's rate before they start.
	Queued int `json:"keys_queued"`
	// Waiting keys are being retried after a throttle; Longest has waited
	// longest, WaitSeconds so far.
	Waiting     int             `json:"keys_waiting"`
	Longest     *ledger.KeyWait `json:"longest_wait,omitempty"`
	WaitSeconds float64         `json:"longest_wait_seconds,omitempty"`
	// Caps are the operator's (--max-rate, --max-fleet-rate), if any.
	Caps map[string]int `json:"caps,omitempty"`
}

// PrefixPace is one prefix's pacing across the fleet.
type PrefixPace struct {
	Bucket string  `json:"bucket"`
	Prefix string  `json:"prefix"`
	Rate   float64 `json:"rate"`              // write requests a second the fleet's workers may send it
	Writes float64 `json:"writes_per_second"` // sent by the fleet, over the workers' last intervals
	// Throttled is the share of those writes S3 throttled.
	Throttled float64 `json:"throttled_share"`
}

// maxPacedPrefixes is how many prefixes status shows.
const maxPacedPrefixes = 5

// NewPacing sums the workers' presences: those writing to bucket lately
// (every one when bucket is ""); nil when there are none.
func NewPacing(presences []ledger.Presence, bucket string, now time.Time) *Pacing {
	if bucket != "" {
		var mine []ledger.Presence
		for _, p := range presences {
			if slices.ContainsFunc(p.Prefixes, func(r ledger.PrefixRate) bool { return r.Bucket == bucket }) {
				mine = append(mine, p)
			}
		}
		presences = mine
	}
	if len(presences) == 0 {
		return nil
	}
	pc := &Pacing{Workers: len(presences)}
	type sum struct {
		rate, writes, throttled float64
	}
	sums := map[[2]string]*sum{}
	for _, p := range presences {
		pc.Waiting += p.Waiting
		pc.Queued += p.Queued
		if l := p.Longest; l != nil && (pc.Longest == nil || l.Since.Before(pc.Longest.Since)) {
			pc.Longest = l
		}
		if p.Caps != nil {
			pc.Caps = p.Caps
		}
		for _, r := range p.Prefixes {
			if bucket != "" && r.Bucket != bucket {
				continue
			}
			k := [2]string{r.Bucket, r.Prefix}
			if sums[k] == nil {
				sums[k] = &sum{}
			}
			s := sums[k]
			s.rate += r.Allowed
			if r.Seconds > 0 {
				s.writes += float64(r.Sent) / r.Seconds
				s.throttled += float64(r.Throttled) / r.Seconds
			}
		}
	}
	for k, s := range sums {
		pp := PrefixPace{Bucket: k[0], Prefix: k[1], Rate: s.rate, Writes: s.writes}
		if s.writes > 0 {
			pp.Throttled = s.throttled / s.writes
		}
		pc.Prefixes = append(pc.Prefixes, pp)
	}
	sort.Slice(pc.Prefixes, func(i, j int) bool {
		a, b := pc.Prefixes[i], pc.Prefixes[j]
		if a.Writes != b.Writes {
			return a.Writes > b.Writes
		}
		return a.Prefix < b.Prefix
	})
	if len(pc.Prefixes) > maxPacedPrefixes {
		pc.Prefixes = pc.Prefixes[:maxPacedPrefixes]
	}
	if pc.Longest != nil {
		pc.WaitSeconds = now.Sub(pc.Longest.Since).Seconds()
	}
	return pc
}

func (pc *Pacing) print(row func(label, format string, args ...any)) {
	caps := ""
	if c := pc.Caps; c != nil {
		caps = fmt.Sprintf(" (capped by the operator: %d/s per prefix, %d/s in all; 0: none)", c["per_prefix"], c["fleet"])
	}
	row("pacing", "%d workers writing here share each prefix's write rate%s; %d keys wait for their prefix's rate", pc.Workers, caps, pc.Queued)
	for _, p := range pc.Prefixes {
		prefix := p.Prefix
		if prefix == "" {
			prefix = "(keys with no /)"
		}
		row("", "%s: %.0f writes/s allowed, %.0f/s sent, %.1f%% throttled", prefix, p.Rate, p.Writes, 100*p.Throttled)
	}
	if pc.Waiting > 0 && pc.Longest != nil {
		row("", "%d keys retried after a throttle; the longest, s3://%s/%s, for %s", pc.Waiting, pc.Longest.Bucket, pc.Longest.Key,
			(time.Duration(pc.WaitSeconds * float64(time.Second))).Round(100*time.Millisecond))
	}
}

// Scale is what a --scale-ecs refresh did.
type Scale struct {
	fleet.Result
	Error string `json:"error,omitempty"`
}

// Deadline says how many workers would finish the rest in time.
type Deadline struct {
	Seconds       float64 `json:"seconds"`
	PerWorkerRate float64 `json:"objects_per_second_per_worker"`
	// WorkersNeeded is 0 when there is no rate to go by yet.
	WorkersNeeded int `json:"workers_needed"`
}

// New builds the view of run from its status, the work queue's depth (nil
// when unknown) and the time left to a deadline (0: none asked for; a
// passed deadline should be given as a tiny positive duration).
func New(run string, st ledger.Status, depth *Depth, deadline time.Duration) View {
	v := View{
		Run: run, Plan: PlanRunning, Messages: st.Done, Sent: st.Sent, Unrecorded: st.Unrecorded,
		Copied: st.Copied, Deleted: st.Deleted, Skipped: st.Skipped, Failed: st.Failed, Bytes: st.Bytes,
		Workers: st.Workers, Rate: st.Rate, RecentRate: st.RecentRate,
		Queue: depth, Failures: st.Failures, Complete: st.Complete,
	}
	if r := st.Run; r != nil {
		v.Source, v.Dest = r.Source.String(), r.Dest.String()
		switch {
		case r.Finished():
			v.Plan = PlanFinished
		case !r.Ended.IsZero():
			v.Plan, v.PlanError = PlanStopped, r.Stopped
		case r.Silent(st.Now):
			v.Plan = PlanSilent
			v.PlanError = fmt.Sprintf("the planner has not been heard from since %s (killed?)", maxTime(r.Alive, r.Started).Format(time.RFC3339))
		}
	}
	planned := st.Planned
	v.Planned = &planned
	rem := st.Remaining()
	v.Remaining = &rem
	v.Stalled = !v.Complete && v.Plan == PlanFinished && depth != nil && depth.Error == "" && depth.Visible == 0 && depth.InFlight == 0 &&
		depth.DeadLettered != nil && *depth.DeadLettered > 0
	rate := st.RecentRate
	if rate <= 0 {
		rate = st.Rate
	}
	if rem > 0 && rate > 0 && !v.Complete {
		eta := float64(rem) / rate
		v.ETASeconds = &eta
	}
	if deadline > 0 {
		v.Deadline = PlanDeadline(rem, st, deadline)
	}
	return v
}

// Ended reports a run that cannot progress by itself any more: complete,
// or its plan stopped (or lost its planner) and every message it did send
// is done.
func (v View) Ended() bool {
	return v.Complete || ((v.Plan == PlanStopped || v.Plan == PlanSilent) && v.Messages == v.Sent)
}

// PlanDeadline sizes the fleet from the rate of the workers that finished
// messages in the last minute: each is assumed to keep its share of that
// rate.
func PlanDeadline(remaining int64, st ledger.Status, deadline time.Duration) *Deadline {
	d := &Deadline{Seconds: deadline.Seconds()}
	if st.RecentWorkers > 0 && st.RecentRate > 0 {
		d.PerWorkerRate = st.RecentRate / float64(st.RecentWorkers)
		d.WorkersNeeded = max(1, int(math.Ceil(float64(remaining)/(d.PerWorkerRate*deadline.Seconds()))))
		if remaining <= 0 {
			d.WorkersNeeded = 0
		}
	}
	return d
}

// Print writes the view as aligned text.
func (v View) Print(w io.Writer) error {
	// Labels in a column of 12, as in the plan summary printed above it.
	tw := tabwriter.NewWriter(w, 12, 0, 1, ' ', 0)
	row := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	row("run", "%s", v.Run)
	if v.Source != "" {
		row("copy", "%s -> %s", v.Source, v.Dest)
	}
	p := v.Planned
	switch v.Plan {
	case PlanRunning:
		row("planned", "%d objects, %s, %d messages so far (the planner is still sending)", p.Objects, cli.FormatSize(p.Bytes), p.Messages)
	case PlanStopped:
		row("planned", "%d objects, %s, %d messages: the plan stopped before sending everything: %s", p.Objects, cli.FormatSize(p.Bytes), p.Messages, v.PlanError)
	case PlanSilent:
		row("planned", "%d objects, %s, %d messages so far: %s; run the plan again (with --checkpoint it carries on)", p.Objects, cli.FormatSize(p.Bytes), p.Messages, v.PlanError)
	default:
		row("planned", "%d objects, %s, %d messages", p.Objects, cli.FormatSize(p.Bytes), p.Messages)
	}
	row("done", "%d of %d messages (%s)", v.Messages, v.Sent, percent(v.Messages, v.Sent))
	if v.Unrecorded > 0 {
		row("", "and %d messages the plan did not record as sent (a planner stopped between sending and recording; their keys were planned again)", v.Unrecorded)
	}
	row("copied", "%d objects, %s", v.Copied, cli.FormatSize(v.Bytes))
	if v.Deleted > 0 || p.Deletes > 0 {
		row("deleted", "%d", v.Deleted)
	}
	row("skipped", "%d (source object gone since it was listed)", v.Skipped)
	row("failed", "%d", v.Failed)
	row("rate", "%.0f objects/s overall, %.0f/s in the last minute, %d workers", v.Rate, v.RecentRate, v.Workers)
	switch {
	case v.Complete:
		row("eta", "complete")
	case v.Stalled:
		row("eta", "stalled: nothing left to copy but the dead-lettered messages; fix their cause, then planner redrive")
	case v.Ended():
		row("eta", "ended incomplete: every sent message is done, but the plan did not finish; run it again (with --checkpoint it carries on)")
	case v.ETASeconds != nil:
		row("eta", "%s", (time.Duration(*v.ETASeconds) * time.Second).Round(time.Second))
	}
	v.printDeadline(row)
	if vd := v.Verdict; vd != nil {
		what := "CLEAN: every difference copied or deleted as listed"
		if !vd.Clean {
			what = fmt.Sprintf("NOT CLEAN: %d keys not copied or deleted as listed", vd.NotRight)
			if vd.Why != "" {
				what += "; " + vd.Why
			}
		}
		row("verdict", "%s %s (given %s, window %s)", vd.Mode, what, vd.Written.Format(time.RFC3339), vd.Window.Total.Round(10*time.Millisecond))
		if v.ReconURL != "" {
			row("", "the keys: %s (aws s3 cp it, then planner plan --from-file)", v.ReconURL)
		}
	}
	for _, h := range v.Holds {
		row("fleet", "%s", holdText(h))
	}
	if v.Follow != nil {
		v.Follow.print(row)
	}
	if v.Pacing != nil && !v.Complete {
		v.Pacing.print(row)
	}
	if q := v.Queue; q != nil {
		if q.Error != "" {
			row("queue", "unreadable: %s", q.Error)
		} else {
			dl := "no dead-letter queue"
			if q.DeadLettered != nil {
				dl = fmt.Sprintf("%d dead-lettered", *q.DeadLettered)
			}
			row("queue", "%d waiting, %d in flight, %s", q.Visible, q.InFlight, dl)
		}
	}
	if sc := v.Scale; sc != nil {
		switch {
		case sc.Error != "":
			row("scale", "%s: %s", sc.Service, sc.Error)
		case sc.Changed:
			row("scale", "%s: desired count %d -> %d (%d running)", sc.Service, sc.Previous, sc.Desired, sc.Running)
		default:
			row("scale", "%s: desired count stays %d (%d running)", sc.Service, sc.Desired, sc.Running)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(v.Failures) > 0 {
		fmt.Fprintf(w, "failures (first %d; planner status --failures lists all):\n", len(v.Failures))
		for _, f := range v.Failures {
			fmt.Fprintf(w, "  %s: %s %s\n", f.Key, f.Reason, strings.TrimSpace(f.Code))
		}
	}
	return nil
}

func (v View) printDeadline(row func(label, format string, args ...any)) {
	d := v.Deadline
	switch {
	case d == nil, v.Complete:
	case d.Seconds < 1 && d.WorkersNeeded > 0:
		row("deadline", "passed: %.1f objects/s per worker; only more workers shorten the rest now", d.PerWorkerRate)
	case d.WorkersNeeded == 0:
		row("deadline", "%s: no rate yet (no worker finished a message in the last minute)", time.Duration(d.Seconds)*time.Second)
	default:
		row("deadline", "%s: %.1f objects/s per worker; %d workers would finish the rest in time",
			time.Duration(d.Seconds)*time.Second, d.PerWorkerRate, d.WorkersNeeded)
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func percent(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

// holdText says who holds a service's scale-in suspended.
func holdText(h ledger.FleetHold) string {
	return fmt.Sprintf("%s: dynamic scale-in held suspended by %s on %s since %s (it ends with that command; if it is gone: planner fleet --release)",
		h.Service, h.Holder, h.Host, h.Since.Format(time.RFC3339))
}

// PrintHolds writes the holds alone, for a ledger with no run yet.
func PrintHolds(w io.Writer, holds []ledger.FleetHold) {
	for _, h := range holds {
		fmt.Fprintf(w, "fleet       %s\n", holdText(h))
	}
}
