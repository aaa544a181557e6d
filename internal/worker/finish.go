package worker

import (
	"context"
	"slices"
	"time"

	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/report"
)

// callTimeout bounds each report, delete and visibility call made while
// finishing messages, which run on even after shutdown began.
const callTimeout = 30 * time.Second

// finishLoop takes finished messages, up to ten at a time when several are
// ready, and completes them.
func (w *Worker) finishLoop(ctx context.Context, finished <-chan *job) {
	for j := range finished {
		jobs := []*job{j}
	collect:
		for len(jobs) < 10 {
			select {
			case more, ok := <-finished:
				if !ok {
					break collect
				}
				jobs = append(jobs, more)
			default:
				break collect
			}
		}
		w.complete(ctx, jobs)
	}
}

// complete settles finished messages: those whose every key is done are
// reported, then deleted; those with a key worth retrying go back to the
// queue after a backoff; those cut short by shutdown go back at once.
func (w *Worker) complete(ctx context.Context, jobs []*job) {
	var done, retry, release, probes []queue.Message
	var results []report.Result
	for _, j := range jobs {
		j.mu.Lock()
		switch {
		case j.batch.Op == plan.OpProbe:
			probes = append(probes, j.msg)
		case j.canceled:
			release = append(release, j.msg)
		case j.retry:
			retry = append(retry, j.msg)
		default:
			j.result.Finished = time.Now()
			results = append(results, j.result)
			done = append(done, j.msg)
		}
		j.mu.Unlock()
	}
	w.unhold(jobs)

	if len(done) > 0 && w.report(ctx, results) {
		w.delete(ctx, done)
		w.Stats.Messages.Add(int64(len(done)))
		for _, r := range results {
			w.Stats.Skipped.Add(int64(len(r.Skipped)))
			w.Stats.Failed.Add(int64(len(r.Failed)))
		}
	}
	if len(probes) > 0 {
		w.delete(ctx, probes)
	}
	if len(retry) > 0 {
		w.Stats.Retried.Add(int64(len(retry)))
		w.setVisibility(ctx, retry, w.retryDelay(retry))
	}
	if len(release) > 0 {
		w.Stats.Retried.Add(int64(len(release)))
		w.setVisibility(ctx, release, 0)
	}
}

// retryDelay backs off with the number of times the messages were received.
func (w *Worker) retryDelay(msgs []queue.Message) time.Duration {
	receives := slices.MaxFunc(msgs, func(a, b queue.Message) int { return a.Receives - b.Receives }).Receives
	return min(time.Duration(max(receives, 1))*w.cfg.RetryBackoff, 5*time.Minute)
}

// report sends results and says whether their messages may be deleted.
func (w *Worker) report(ctx context.Context, results []report.Result) bool {
	if w.rep == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := w.rep.Report(ctx, results); err != nil {
		// Not deleted: the messages come back and are done and reported
		// again; status counts each message once.
		w.Stats.ReportErrs.Add(1)
		w.log.Error().Err(err).Int("messages", len(results)).Msg("report failed; messages will be redone")
		return false
	}
	return true
}

func (w *Worker) delete(ctx context.Context, msgs []queue.Message) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := w.src.Delete(ctx, msgs); err != nil {
		w.log.Warn().Err(err).Msg("delete failed; the messages will be redone and counted once")
	}
}

func (w *Worker) setVisibility(ctx context.Context, msgs []queue.Message, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := w.src.ChangeVisibility(ctx, msgs, d); err != nil {
		w.log.Warn().Err(err).Dur("visibility", d).Msg("could not hand messages back; they return when their visibility runs out")
	}
}

func (w *Worker) unhold(jobs []*job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range jobs {
		delete(w.held, j.msg.ID)
	}
}

// heartbeat extends the visibility of every held message every
// Visibility/2, and logs progress, until stop is closed.
func (w *Worker) heartbeat(ctx context.Context, stop <-chan struct{}) {
	extend := time.NewTicker(w.cfg.Visibility / 2)
	defer extend.Stop()
	progress := time.NewTicker(w.cfg.Progress)
	defer progress.Stop()
	for {
		select {
		case <-extend.C:
			w.mu.Lock()
			msgs := make([]queue.Message, 0, len(w.held))
			for _, j := range w.held {
				msgs = append(msgs, j.msg)
			}
			w.mu.Unlock()
			if len(msgs) > 0 {
				w.setVisibility(ctx, msgs, w.cfg.Visibility)
			}
		case <-progress.C:
			w.logProgress("progress")
		case <-stop:
			return
		}
	}
}

func (w *Worker) logProgress(msg string) {
	s := &w.Stats
	throttles, cuts := w.cfg.Limiter.Throttles()
	w.log.Info().
		Int("limit", w.cfg.Limiter.Limit()).
		Int64("throttles", throttles).
		Int64("limit_cuts", cuts).
		Int64("messages", s.Messages.Load()).
		Int64("copied", s.Copied.Load()).
		Int64("deleted", s.Deleted.Load()).
		Int64("skipped", s.Skipped.Load()).
		Int64("failed", s.Failed.Load()).
		Int64("bytes", s.Bytes.Load()).
		Int64("in_flight", s.InFlight.Load()).
		Int64("retried", s.Retried.Load()).
		Int64("malformed", s.Malformed.Load()).
		Msg(msg)
}
