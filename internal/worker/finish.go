package worker

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

// CallTimeout bounds each ledger write, delete and visibility call made
// while finishing messages, which run on even after shutdown began.
const CallTimeout = 30 * time.Second

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
// recorded in the ledger, then deleted; those with a key worth retrying go
// back to the queue after a backoff; those cut short by shutdown go back at
// once. Every message stays held (its visibility extended) until it is
// deleted or handed back.
func (w *Worker) complete(ctx context.Context, jobs []*job) {
	var done, retry, release, probes []*job
	for _, j := range jobs {
		w.settleRefusals(j)
		j.mu.Lock()
		switch {
		case j.batch.Op == plan.OpProbe:
			probes = append(probes, j)
		case j.canceled:
			release = append(release, j)
		case j.retry:
			retry = append(retry, j)
		default:
			j.result.Finished = time.Now()
			done = append(done, j)
		}
		j.mu.Unlock()
	}
	if recorded := w.record(ctx, done); len(recorded) > 0 {
		w.settle(recorded, func(msgs []queue.Message) { w.delete(ctx, msgs) })
		w.Stats.Messages.Add(int64(len(recorded)))
		for _, j := range recorded {
			w.Stats.Skipped.Add(int64(len(j.result.Skipped)))
			w.Stats.Failed.Add(int64(len(j.result.Failed)))
		}
	}
	if len(probes) > 0 {
		w.settle(probes, func(msgs []queue.Message) { w.delete(ctx, msgs) })
	}
	if len(retry) > 0 {
		w.Stats.Retried.Add(int64(len(retry)))
		w.settle(retry, func(msgs []queue.Message) { w.setVisibility(ctx, msgs, w.retryDelay(msgs)) })
	}
	if len(release) > 0 {
		w.Stats.Retried.Add(int64(len(release)))
		w.settle(release, func(msgs []queue.Message) { w.setVisibility(ctx, msgs, 0) })
	}
}

// settle stops holding jobs' messages and does what ends them (a delete,
// a hand-back), with no visibility extension under way in between.
func (w *Worker) settle(jobs []*job, end func([]queue.Message)) {
	msgs := make([]queue.Message, len(jobs))
	for i, j := range jobs {
		msgs[i] = j.msg
	}
	w.vis.Lock()
	defer w.vis.Unlock()
	w.unhold(jobs)
	end(msgs)
}

// retryDelay backs off with the number of times the messages were received.
func (w *Worker) retryDelay(msgs []queue.Message) time.Duration {
	receives := slices.MaxFunc(msgs, func(a, b queue.Message) int { return a.Receives - b.Receives }).Receives
	return min(time.Duration(max(receives, 1))*w.cfg.RetryBackoff, 5*time.Minute)
}

// record writes the entries of finished messages, all at once, and
// returns the jobs whose entries are durable: only their messages may be
// deleted. The rest stay held and are released for another try.
func (w *Worker) record(ctx context.Context, jobs []*job) []*job {
	if len(jobs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { errs[i] = w.rec.Record(ctx, &j.result) })
	}
	wg.Wait()
	var recorded, unrecorded []*job
	for i, j := range jobs {
		if errs[i] == nil {
			recorded = append(recorded, j)
			continue
		}
		// Not deleted: the message comes back, is done again and recorded
		// then; the ledger counts each message once.
		w.Stats.LedgerErrs.Add(1)
		w.log.Error().Err(errs[i]).Str("run", j.result.Run).Int64("seq", j.result.Seq).Msg("could not record a finished message in the ledger; it will be redone")
		unrecorded = append(unrecorded, j)
	}
	if len(unrecorded) > 0 {
		w.Stats.Retried.Add(int64(len(unrecorded)))
		w.settle(unrecorded, func(msgs []queue.Message) { w.setVisibility(ctx, msgs, w.retryDelay(msgs)) })
	}
	return recorded
}

func (w *Worker) delete(ctx context.Context, msgs []queue.Message) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	if err := w.src.Delete(ctx, msgs); err != nil {
		w.log.Warn().Err(err).Msg("delete failed; the messages will be redone and counted once")
	}
}

func (w *Worker) setVisibility(ctx context.Context, msgs []queue.Message, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	if err := w.src.ChangeVisibility(ctx, msgs, d); err != nil {
		w.log.Warn().Err(err).Dur("visibility", d).Msg("could not hand messages back; they return when their visibility runs out")
	}
}

func (w *Worker) unhold(jobs []*job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range jobs {
		delete(w.held, j)
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
			w.extend(ctx)
		case <-progress.C:
			w.logProgress("progress")
		case <-stop:
			return
		}
	}
}

// extend extends the visibility of every held message.
func (w *Worker) extend(ctx context.Context) {
	w.vis.Lock()
	defer w.vis.Unlock()
	w.mu.Lock()
	msgs := make([]queue.Message, 0, len(w.held))
	for j := range w.held {
		msgs = append(msgs, j.msg)
	}
	w.mu.Unlock()
	if len(msgs) > 0 {
		w.setVisibility(ctx, msgs, w.cfg.Visibility)
	}
}

func (w *Worker) logProgress(msg string) {
	s := &w.Stats
	ev := w.log.Info().Int("limit", w.cfg.Limiter.Limit())
	if p := w.cfg.Pace; p != nil {
		// How the writes were paced: what this worker may send the
		// busiest prefix a second, the write requests S3 throttled, and
		// the keys being retried after a throttle.
		t := p.Totals()
		ev = ev.Int64("throttles", t.Heard).Int64("writes", t.Sent).Int64("writes_throttled", t.Throttled).Int64("rate_cuts", t.Cuts).
			Int("fleet_workers", t.Workers)
		if t.Hot != "" {
			ev = ev.Str("hot_prefix", t.Hot).Float64("hot_allowed", round1(t.Share))
		}
		if t.Queued > 0 {
			ev = ev.Int("keys_paced", t.Queued) // waiting for their prefix's rate to start
		}
		if t.Waiting > 0 {
			ev = ev.Int("keys_waiting", t.Waiting).Str("longest_wait_key", t.Longest).Dur("longest_wait", time.Since(t.Since).Round(100*time.Millisecond))
		}
	}
	ev.Int64("messages", s.Messages.Load()).
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

func round1(f float64) float64 { return math.Round(f*10) / 10 }
