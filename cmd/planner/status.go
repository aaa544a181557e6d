package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/fleet"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/report"
)

const statusUsage = `usage: planner status --report-queue-url URL [--run-id ID] [--queue-url URL] [--json]
       [--deadline DURATION [--scale-ecs CLUSTER/SERVICE [--min-workers N] [--max-workers N]]] [--watch INTERVAL]

Counts what the workers reported for a run (the latest, unless --run-id
says otherwise) against what its plan enqueued: each work message once,
however often it was delivered. The tally lives on the report queue itself:
status reads every report there, writes them back compacted into "bundle"
messages, and deletes what it read, so any later status run, from any
machine, starts from the same totals.

--deadline says how many workers would finish the rest in time, from the
rate each worker reached in the last minute; --scale-ecs sets an ECS
service's desired count to that, within --min-workers and --max-workers
(once the run is complete: to --min-workers). --watch refreshes the view
every INTERVAL until the run is complete or interrupted; the deadline then
counts down from when status started, and each refresh scales again.`

// statusOptions are status's flags.
type statusOptions struct {
	reportURL, queueURL, runID string
	asJSON                     bool
	deadline, watch            time.Duration
	scaleECS                   string
	service                    fleet.Service
	bounds                     fleet.Bounds
	conn                       config.Connection
}

func statusCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o statusOptions
	f := config.NewFlags("planner status", statusUsage, os.Stderr)
	f.StringVar(&o.reportURL, "report-queue-url", "", "URL of the report queue (required)")
	f.StringVar(&o.runID, "run-id", "", "run to show (default: the latest run reported)")
	f.StringVar(&o.queueURL, "queue-url", "", "work queue whose depth to show (default: the one the plan used)")
	f.BoolVar(&o.asJSON, "json", false, "print JSON instead of text (with --watch: one object per line per refresh)")
	f.DurationVar(&o.deadline, "deadline", 0, "time left to finish, e.g. 30m: prints how many workers would finish the rest by then")
	f.StringVar(&o.scaleECS, "scale-ecs", "", "with --deadline: set this ECS service's desired count (CLUSTER/SERVICE, the stack's ScaleEcs output) to the workers needed")
	f.IntVar(&o.bounds.Min, "min-workers", 0, "with --scale-ecs: fewest workers to set (and what a complete run scales to)")
	f.IntVar(&o.bounds.Max, "max-workers", 16, "with --scale-ecs: most workers to set (keep within the account's Fargate quota)")
	f.DurationVar(&o.watch, "watch", 0, "refresh every INTERVAL (at least 1s, e.g. 10s) until the run is complete or interrupted")
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return err
	}
	log, awsCfg, err := o.conn.Open(ctx, 16)
	if err != nil {
		return err
	}
	sqsClient := o.conn.AWS.SQS(awsCfg)
	reports := queue.NewSQS(sqsClient, o.reportURL)
	if err := config.CheckQueue(ctx, reports, "report-queue-url"); err != nil {
		return err
	}
	var scaler fleet.API
	if o.scaleECS != "" {
		scaler = ecs.NewFromConfig(awsCfg)
	}
	s := statusSession{statusOptions: o, sqs: sqsClient, reports: reports, ecs: scaler, log: log, until: time.Now().Add(o.deadline)}
	if o.watch == 0 {
		v, err := s.refresh(ctx)
		if err != nil {
			return err
		}
		return s.show(stdout, v)
	}
	return s.watchLoop(ctx, stdout)
}

func (o *statusOptions) validate() error {
	var p config.Problems
	if o.reportURL == "" {
		p.Addf("--report-queue-url is required: the queue the planner and workers report to")
	}
	config.CheckQueueURL(&p, "report-queue-url", o.reportURL)
	config.CheckQueueURL(&p, "queue-url", o.queueURL)
	if o.deadline < 0 {
		p.Addf("--deadline %s: must be positive, e.g. 30m", o.deadline)
	}
	if o.watch != 0 && o.watch < time.Second {
		p.Addf("--watch %s: refresh at most once a second, e.g. --watch 10s", o.watch)
	}
	if o.scaleECS != "" {
		svc, err := fleet.ParseService(o.scaleECS)
		if err != nil {
			p.Addf("--scale-ecs: %v", err)
		}
		o.service = svc
		if o.deadline == 0 {
			p.Addf("--scale-ecs needs --deadline: the time the rest must be copied in, e.g. --deadline 45m")
		}
		if o.bounds.Min < 0 || o.bounds.Max < 1 || o.bounds.Min > o.bounds.Max {
			p.Addf("--min-workers %d --max-workers %d: want 0 <= min <= max and max >= 1", o.bounds.Min, o.bounds.Max)
		}
	}
	o.conn.Validate(&p)
	return p.Err()
}

// statusSession is one status command: one view, or one per refresh.
type statusSession struct {
	statusOptions
	sqs     queue.API
	reports *queue.SQS
	ecs     fleet.API
	log     zerolog.Logger
	until   time.Time // the deadline
}

// refresh collects the reports and builds the view (scaling the fleet when
// asked to); it returns nil when no run has reported yet.
func (s *statusSession) refresh(ctx context.Context) (*statusView, error) {
	budget := 20 * time.Second
	if s.watch > 0 {
		budget = max(time.Second, s.watch/2)
	}
	tally, err := collect(ctx, s.reports, budget, s.log)
	if err != nil {
		return nil, err
	}
	runID := s.runID
	if runID == "" {
		runs := tally.Runs()
		if len(runs) == 0 {
			return nil, nil
		}
		runID = runs[len(runs)-1]
	}
	st := tally.Status(runID)
	queueURL := s.queueURL
	if queueURL == "" && st.Plan != nil {
		queueURL = st.Plan.Queue
	}
	var depth *queueDepth
	if queueURL != "" {
		depth = readDepth(ctx, s.sqs, queueURL, s.log)
	}
	var left time.Duration
	if s.deadline > 0 {
		left = max(time.Until(s.until), time.Nanosecond) // a passed deadline still sizes for "as soon as possible"
	}
	v := newStatusView(st, depth, left)
	if s.ecs != nil {
		v.Scale = s.scale(ctx, v)
	}
	return &v, nil
}

// scale sizes the ECS service for the deadline. A failure is shown with the
// view, not fatal, so a watch carries on.
func (s *statusSession) scale(ctx context.Context, v statusView) *scaleView {
	wanted := fleet.Unknown
	switch {
	case v.Complete, v.Stalled:
		wanted = s.bounds.Min
	case v.Deadline != nil && v.Deadline.WorkersNeeded > 0:
		wanted = v.Deadline.WorkersNeeded
	} // else still planning, or no rate yet: keep the fleet, at least one worker
	r, err := fleet.Scale(ctx, s.ecs, s.service, wanted, s.bounds)
	sv := &scaleView{Result: r}
	if err != nil {
		sv.Error = err.Error()
		s.log.Warn().Err(err).Msg("could not scale the worker service")
	}
	return sv
}

func (s *statusSession) show(w io.Writer, v *statusView) error {
	if v == nil {
		if s.asJSON {
			_, err := fmt.Fprintln(w, "{}")
			return err
		}
		_, err := fmt.Fprintf(w, "no run has reported to %s yet\n", s.reportURL)
		return err
	}
	if s.asJSON {
		enc := json.NewEncoder(w)
		if s.watch == 0 {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(v)
	}
	v.print(w)
	return nil
}

// watchLoop refreshes until the run is complete (exit 0), stalls (exit 1),
// ctx ends (an interrupt: exit 0 too, it is how a watch is stopped) or five
// refreshes in a row fail; a failed refresh is logged and tried again. On a terminal each
// refresh redraws the screen; otherwise views follow one another.
func (s *statusSession) watchLoop(ctx context.Context, w io.Writer) error {
	redraw := !s.asJSON && isTerminal(w)
	tick := time.NewTicker(s.watch)
	defer tick.Stop()
	const giveUp = 5 // refreshes failed in a row (each after the SDK's own retries)
	for failed := 0; ; {
		v, err := s.refresh(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if failed++; failed >= giveUp {
				return fmt.Errorf("%d refreshes in a row failed, the last: %w", failed, err)
			}
			s.log.Warn().Err(err).Int("failed_in_a_row", failed).Msg("refresh failed; trying again at the next interval")
		default:
			failed = 0
			if redraw {
				fmt.Fprint(w, "\033[H\033[2J")
			}
			if !s.asJSON {
				fmt.Fprintf(w, "--- %s (every %s; Ctrl-C to stop)\n", time.Now().Format("15:04:05"), s.watch)
			}
			if err := s.show(w, v); err != nil {
				return err
			}
			if v != nil && v.Complete {
				return nil
			}
			if v != nil && v.Stalled {
				return fmt.Errorf("%w: the work queue is empty and %d messages are in its dead-letter queue; fix what the failures above say, then planner redrive",
					errStalled, *v.Queue.DeadLettered)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// errStalled ends a watch that cannot end by itself: exit 1.
var errStalled = fmt.Errorf("run stalled: %w", config.ErrObjectsFailed)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// collect reads every report on the queue into a tally, writes the tally
// back as bundles, and only then deletes what it read: a crash in between
// leaves duplicates, which the tally ignores, never a gap. It stops reading
// after budget even if reports keep coming (a busy fleet reports faster
// than one reader drains, and a watch must refresh); what is left is
// counted by the next status.
func collect(ctx context.Context, q *queue.SQS, budget time.Duration, log zerolog.Logger) (*report.Tally, error) {
	const hold = 5 * time.Minute
	tally := report.NewTally()
	var consumed, foreign []queue.Message
	release := func() {
		// Best effort: unreleased messages come back after hold anyway.
		if err := q.ChangeVisibility(context.WithoutCancel(ctx), append(consumed, foreign...), 0); err != nil {
			log.Warn().Err(err).Msg("could not release report messages")
		}
	}
	stop := time.Now().Add(budget)
	for empty := 0; empty < 2 && time.Now().Before(stop); {
		msgs, err := q.Receive(ctx, 10, time.Second, hold)
		if err != nil {
			release()
			return nil, err
		}
		if len(msgs) == 0 {
			empty++
			continue
		}
		empty = 0
		for _, m := range msgs {
			env, err := report.Decode(m.Body)
			if err != nil {
				log.Warn().Err(err).Str("message", m.ID).Msg("ignoring a message that is not an s3clone report")
				foreign = append(foreign, m)
				continue
			}
			tally.Add(env)
			consumed = append(consumed, m)
		}
	}
	if len(consumed) == 0 {
		release()
		return tally, nil
	}
	var out []queue.Outgoing
	for _, b := range tally.Bundles(200 << 10) {
		body, err := report.Encode(b)
		if err != nil {
			release()
			return nil, err
		}
		out = append(out, queue.Outgoing{Body: body, Kind: report.KindBundle})
	}
	if err := q.Send(ctx, out); err != nil {
		release()
		return nil, fmt.Errorf("write the tally back to the report queue: %w", err)
	}
	if err := q.Delete(context.WithoutCancel(ctx), consumed); err != nil {
		log.Warn().Err(err).Msg("some reports were not deleted; they will be read again and counted once")
	}
	consumed = nil
	release()
	return tally, nil
}

type queueDepth struct {
	URL          string `json:"url"`
	Visible      int64  `json:"visible"`
	InFlight     int64  `json:"in_flight"`
	DeadLettered *int64 `json:"dead_lettered,omitempty"`
	Error        string `json:"error,omitempty"`
}

// readDepth reads the work queue's depth and its dead-letter queue's; a
// failure is shown, not fatal.
func readDepth(ctx context.Context, client queue.API, url string, log zerolog.Logger) *queueDepth {
	d := &queueDepth{URL: url}
	work, err := queue.NewSQS(client, url).Depth(ctx)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	d.Visible, d.InFlight = work.Visible, work.InFlight
	if work.DeadLetterARN == "" {
		return d
	}
	dlq, err := queue.FromARN(ctx, client, work.DeadLetterARN)
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the dead-letter queue")
		return d
	}
	dd, err := dlq.Depth(ctx)
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the dead-letter queue")
		return d
	}
	n := dd.Visible + dd.InFlight
	d.DeadLettered = &n
	return d
}

// statusView is what status prints, as text or JSON.
type statusView struct {
	Run        string       `json:"run"`
	Source     string       `json:"source,omitempty"`
	Dest       string       `json:"dest,omitempty"`
	Planned    *report.Plan `json:"planned,omitempty"`
	Messages   int64        `json:"messages_done"`
	Copied     int64        `json:"copied"`
	Deleted    int64        `json:"deleted"`
	Skipped    int64        `json:"skipped"`
	Failed     int64        `json:"failed"`
	Bytes      int64        `json:"bytes_copied"`
	Remaining  *int64       `json:"remaining,omitempty"`
	Workers    int          `json:"workers"`
	Rate       float64      `json:"objects_per_second"`
	RecentRate float64      `json:"recent_objects_per_second"`
	ETASeconds *float64     `json:"eta_seconds,omitempty"`
	Complete   bool         `json:"complete"`
	// Stalled: not complete, nothing left on the work queue, and messages
	// in its dead-letter queue: no worker can finish the run until they are
	// fixed and redriven.
	Stalled  bool             `json:"stalled,omitempty"`
	Deadline *deadlineView    `json:"deadline,omitempty"`
	Queue    *queueDepth      `json:"queue,omitempty"`
	Failures []report.Failure `json:"failures,omitempty"`
	Scale    *scaleView       `json:"scale,omitempty"`
}

// scaleView is what --scale-ecs did.
type scaleView struct {
	fleet.Result
	Error string `json:"error,omitempty"`
}

// deadlineView says how many workers would finish the rest in time.
type deadlineView struct {
	Seconds       float64 `json:"seconds"`
	PerWorkerRate float64 `json:"objects_per_second_per_worker"`
	// WorkersNeeded is 0 when there is no rate to go by yet.
	WorkersNeeded int `json:"workers_needed"`
}

func newStatusView(st report.Status, depth *queueDepth, deadline time.Duration) statusView {
	v := statusView{
		Run: st.Run, Planned: st.Plan, Messages: st.Done,
		Copied: st.Copied, Deleted: st.Deleted, Skipped: st.Skipped, Failed: st.Failed, Bytes: st.Bytes,
		Workers: st.Workers, Rate: st.Rate, RecentRate: st.RecentRate,
		Queue: depth, Failures: st.Failures,
	}
	if st.Plan != nil {
		v.Source, v.Dest = st.Plan.Source, st.Plan.Dest
		rem := st.Plan.Objects - st.Copied - st.Deleted - st.Skipped - st.Failed
		v.Remaining = &rem
		v.Complete = st.Done >= st.Plan.Messages
		v.Stalled = !v.Complete && depth != nil && depth.Error == "" && depth.Visible == 0 && depth.InFlight == 0 &&
			depth.DeadLettered != nil && *depth.DeadLettered > 0
		rate := st.RecentRate
		if rate <= 0 {
			rate = st.Rate
		}
		if rem > 0 && rate > 0 {
			eta := float64(rem) / rate
			v.ETASeconds = &eta
		}
		if deadline > 0 {
			v.Deadline = planDeadline(rem, st, deadline)
		}
	}
	return v
}

// planDeadline sizes the fleet from the rate of the workers that reported in
// the last minute: each is assumed to keep its share of that rate.
func planDeadline(remaining int64, st report.Status, deadline time.Duration) *deadlineView {
	d := &deadlineView{Seconds: deadline.Seconds()}
	if st.RecentWorkers > 0 && st.RecentRate > 0 {
		d.PerWorkerRate = st.RecentRate / float64(st.RecentWorkers)
		d.WorkersNeeded = max(1, int(math.Ceil(float64(remaining)/(d.PerWorkerRate*deadline.Seconds()))))
		if remaining <= 0 {
			d.WorkersNeeded = 0
		}
	}
	return d
}

func (v statusView) print(w io.Writer) {
	fmt.Fprintf(w, "run         %s\n", v.Run)
	if v.Planned == nil {
		fmt.Fprintf(w, "planned     (no plan summary yet: the planner is still listing, or ran without --report-queue-url)\n")
	} else {
		p := v.Planned
		fmt.Fprintf(w, "copy        %s -> %s\n", p.Source, p.Dest)
		fmt.Fprintf(w, "planned     %d objects, %s, %d messages\n", p.Objects, config.FormatSize(p.Bytes), p.Messages)
		fmt.Fprintf(w, "done        %d of %d messages (%s)\n", v.Messages, p.Messages, percent(v.Messages, p.Messages))
	}
	fmt.Fprintf(w, "copied      %d objects, %s\n", v.Copied, config.FormatSize(v.Bytes))
	if v.Deleted > 0 || (v.Planned != nil && v.Planned.Deletes > 0) {
		fmt.Fprintf(w, "deleted     %d\n", v.Deleted)
	}
	fmt.Fprintf(w, "skipped     %d (source object gone since it was listed)\n", v.Skipped)
	fmt.Fprintf(w, "failed      %d\n", v.Failed)
	fmt.Fprintf(w, "rate        %.0f objects/s overall, %.0f/s in the last minute, %d workers reported\n", v.Rate, v.RecentRate, v.Workers)
	switch {
	case v.Complete:
		fmt.Fprintf(w, "eta         complete\n")
	case v.Stalled:
		fmt.Fprintf(w, "eta         stalled: nothing left to copy but the dead-lettered messages; fix their cause, then planner redrive\n")
	case v.ETASeconds != nil:
		fmt.Fprintf(w, "eta         %s\n", (time.Duration(*v.ETASeconds) * time.Second).Round(time.Second))
	}
	if d := v.Deadline; d != nil {
		switch {
		case v.Complete:
		case d.Seconds < 1 && d.WorkersNeeded > 0:
			fmt.Fprintf(w, "deadline    passed: %.1f objects/s per worker; only more workers shorten the rest now\n", d.PerWorkerRate)
		case d.WorkersNeeded == 0:
			fmt.Fprintf(w, "deadline    %s: no rate yet (no worker reported in the last minute)\n", time.Duration(d.Seconds)*time.Second)
		default:
			fmt.Fprintf(w, "deadline    %s: %.1f objects/s per worker; %d workers would finish the rest in time\n",
				time.Duration(d.Seconds)*time.Second, d.PerWorkerRate, d.WorkersNeeded)
		}
	}
	if q := v.Queue; q != nil {
		if q.Error != "" {
			fmt.Fprintf(w, "queue       unreadable: %s\n", q.Error)
		} else {
			dl := "no dead-letter queue"
			if q.DeadLettered != nil {
				dl = fmt.Sprintf("%d dead-lettered", *q.DeadLettered)
			}
			fmt.Fprintf(w, "queue       %d waiting, %d in flight, %s\n", q.Visible, q.InFlight, dl)
		}
	}
	if sc := v.Scale; sc != nil {
		switch {
		case sc.Error != "":
			fmt.Fprintf(w, "scale       %s: %s\n", sc.Service, sc.Error)
		case sc.Changed:
			fmt.Fprintf(w, "scale       %s: desired count %d -> %d (%d running)\n", sc.Service, sc.Previous, sc.Desired, sc.Running)
		default:
			fmt.Fprintf(w, "scale       %s: desired count stays %d (%d running)\n", sc.Service, sc.Desired, sc.Running)
		}
	}
	if len(v.Failures) > 0 {
		fmt.Fprintf(w, "failures (first %d):\n", len(v.Failures))
		for _, f := range v.Failures {
			fmt.Fprintf(w, "  %s: %s %s\n", f.Key, f.Reason, strings.TrimSpace(f.Code))
		}
	}
}

func percent(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}
