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

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/report"
)

const statusUsage = `usage: planner status --report-queue-url URL [--run-id ID] [--queue-url URL] [--json]

Counts what the workers reported for a run (the latest, unless --run-id
says otherwise) against what its plan enqueued: each work message once,
however often it was delivered. The tally lives on the report queue itself:
status reads every report there, writes them back compacted into "bundle"
messages, and deletes what it read, so any later status run, from any
machine, starts from the same totals.`

func statusCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		reportURL, queueURL, runID string
		asJSON                     bool
		deadline                   time.Duration
		conn                       config.Connection
	)
	f := config.NewFlags("planner status", statusUsage, os.Stderr)
	f.StringVar(&reportURL, "report-queue-url", "", "URL of the report queue (required)")
	f.StringVar(&runID, "run-id", "", "run to show (default: the latest run reported)")
	f.StringVar(&queueURL, "queue-url", "", "work queue whose depth to show (default: the one the plan used)")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	f.DurationVar(&deadline, "deadline", 0, "time left to finish, e.g. 30m: prints how many workers would finish the rest by then")
	conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p config.Problems
	if reportURL == "" {
		p.Addf("--report-queue-url is required: the queue the planner and workers report to")
	}
	config.CheckQueueURL(&p, "report-queue-url", reportURL)
	config.CheckQueueURL(&p, "queue-url", queueURL)
	if deadline < 0 {
		p.Addf("--deadline %s: must be positive, e.g. 30m", deadline)
	}
	conn.Validate(&p)
	if err := p.Err(); err != nil {
		return err
	}
	log, awsCfg, err := conn.Open(ctx, 16)
	if err != nil {
		return err
	}
	sqsClient := conn.AWS.SQS(awsCfg)
	reports := queue.NewSQS(sqsClient, reportURL)
	if err := config.CheckQueue(ctx, reports, "report-queue-url"); err != nil {
		return err
	}
	tally, err := collect(ctx, reports, log)
	if err != nil {
		return err
	}
	if runID == "" {
		runs := tally.Runs()
		if len(runs) == 0 {
			fmt.Fprintf(stdout, "no run has reported to %s yet\n", reportURL)
			return nil
		}
		runID = runs[len(runs)-1]
	}
	st := tally.Status(runID)
	if queueURL == "" && st.Plan != nil {
		queueURL = st.Plan.Queue
	}
	var depth *queueDepth
	if queueURL != "" {
		depth = readDepth(ctx, sqsClient, queueURL, log)
	}
	v := newStatusView(st, depth, deadline)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	v.print(stdout)
	return nil
}

// collect reads every report on the queue into a tally, writes the tally
// back as bundles, and only then deletes what it read: a crash in between
// leaves duplicates, which the tally ignores, never a gap.
func collect(ctx context.Context, q *queue.SQS, log zerolog.Logger) (*report.Tally, error) {
	const hold = 5 * time.Minute
	tally := report.NewTally()
	var consumed, foreign []queue.Message
	release := func() {
		// Best effort: unreleased messages come back after hold anyway.
		if err := q.ChangeVisibility(context.WithoutCancel(ctx), append(consumed, foreign...), 0); err != nil {
			log.Warn().Err(err).Msg("could not release report messages")
		}
	}
	for empty := 0; empty < 2; {
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
	Run        string           `json:"run"`
	Source     string           `json:"source,omitempty"`
	Dest       string           `json:"dest,omitempty"`
	Planned    *report.Plan     `json:"planned,omitempty"`
	Messages   int64            `json:"messages_done"`
	Copied     int64            `json:"copied"`
	Deleted    int64            `json:"deleted"`
	Skipped    int64            `json:"skipped"`
	Failed     int64            `json:"failed"`
	Bytes      int64            `json:"bytes_copied"`
	Remaining  *int64           `json:"remaining,omitempty"`
	Workers    int              `json:"workers"`
	Rate       float64          `json:"objects_per_second"`
	RecentRate float64          `json:"recent_objects_per_second"`
	ETASeconds *float64         `json:"eta_seconds,omitempty"`
	Complete   bool             `json:"complete"`
	Deadline   *deadlineView    `json:"deadline,omitempty"`
	Queue      *queueDepth      `json:"queue,omitempty"`
	Failures   []report.Failure `json:"failures,omitempty"`
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
	case v.ETASeconds != nil:
		fmt.Fprintf(w, "eta         %s\n", (time.Duration(*v.ETASeconds) * time.Second).Round(time.Second))
	}
	if d := v.Deadline; d != nil {
		switch {
		case v.Complete:
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
