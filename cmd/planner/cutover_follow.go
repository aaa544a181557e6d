package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
	"github.com/s3clone/s3clone/internal/status"
)

// followAliveWithin is how recently a follow must have written its record
// for a cutover to rely on it (it writes every 5 s).
const followAliveWithin = 30 * time.Second

// markWait is how long a cutover waits for follow to close its mark by
// default: the longest settle time, and a minute for S3 to deliver.
const markWait = follow.MaxSettle + time.Minute

// followWindow is how long each part of a cutover --follow took.
type followWindow struct {
	mark, fleet, verify, total time.Duration
}

// cutoverFollow is the frozen window when planner follow has kept the
// destination in step: no listing. It marks the freeze through the same
// event path as every change (a marker object in the source), waits until
// follow has seen the mark and every work message up to it is done, and
// gives the verdict on those messages and on the bulk run before them.
func cutoverFollow(ctx context.Context, o *cutoverOptions, stdout io.Writer) error {
	w := followWindow{}
	started := time.Now()
	log, awsCfg, err := o.conn.Open(ctx, 16)
	if err != nil {
		return err
	}
	regions := o.conn.AWS.Regions(awsCfg)
	store := o.led.Open(ctx, regions)
	if err := store.CheckBucket(ctx); err != nil {
		return config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
	}
	if o.followRun == "latest" {
		id, err := latestFollow(ctx, store)
		if err != nil {
			return err
		}
		o.followRun = id
	}
	fr, err := store.FollowRecord(ctx, o.followRun)
	if errors.Is(err, ledger.ErrNotFound) {
		return cli.Usagef("--follow %s: the ledger %s has no follow run of that id (planner follow prints its run id when it starts)", o.followRun, store)
	}
	if err != nil {
		return config.LedgerError(err, store, "s3:GetObject on "+config.LedgerARN(store, "runs/*"))
	}
	run, err := store.Run(ctx, o.followRun)
	if err != nil {
		return config.LedgerError(err, store, "s3:GetObject on "+config.LedgerARN(store, "runs/*"))
	}
	switch {
	case !fr.Stopped.IsZero():
		return cli.Usagef("--follow %s: that follow stopped at %s: start planner follow again (the events wait on its queue) and cut over with its new run", o.followRun, fr.Stopped.Format(time.RFC3339))
	case time.Since(fr.Alive) > followAliveWithin:
		return cli.Usagef("--follow %s: that follow last wrote its record %s ago (every 5 s while it runs): is it running?", o.followRun, time.Since(fr.Alive).Round(time.Second))
	}
	rec, err := plan.NewRecordFile(o.out)
	if err != nil {
		return cli.Usagef("--out %s: %v", o.out, err)
	}
	defer rec.Discard()
	s := &o.s
	if err := sameAsFollow(o, run); err != nil {
		return err
	}
	s.Src, s.Dst = run.Source, run.Dest
	if err := s.Connect(ctx, regions); err != nil {
		return err
	}

	// The cutover's own record: its verdict goes under it, for status.
	sum := s.NewSummary()
	host, _ := os.Hostname()
	mode := "cutover"
	if o.rehearse {
		mode = "rehearsal"
	}
	runLog, err := store.BeginRun(ctx, ledger.Run{ID: sum.Run, Source: s.Src, Dest: s.Dst, Queue: run.Queue, Mode: ledger.ModeCutover,
		Options: map[string]string{"follow": o.followRun, "cutover": mode}, Version: cli.Version(), Host: host, Started: sum.Started.UTC()})
	if err != nil {
		return config.LedgerError(err, store, "s3:PutObject on "+config.LedgerARN(store, "runs/*"))
	}
	if err := runLog.End(ctx, 0, nil); err != nil {
		return config.LedgerError(err, store, "s3:PutObject on "+config.LedgerARN(store, "runs/*"))
	}
	fmt.Fprintf(stdout, "cutover   %s of follow %s: s3://%s/%s -> s3://%s/%s\n", sum.Run, o.followRun, s.Src.Bucket, s.Src.Prefix, s.Dst.Bucket, s.Dst.Prefix)
	v := &verdict{}
	if !fr.Anchored {
		// The verdict cannot be clean whatever the fleet does: say so now,
		// not after waiting for it in the window.
		v.why = fmt.Sprintf("follow %s is not anchored yet: its events began (or its configuration took effect) after the bulk copy began, and its catch-up listing (once the bulk copy is done) has not finished", fr.Run)
		return followVerdict(ctx, stdout, store, rec, v, sum.Run, mode, host, ledger.Status{}, followWindow{total: time.Since(started)}, o.out, log)
	}

	// The freeze, marked through the events' own path, at once: what the
	// verdict needs besides (the bulk copy's ledger, which grows with the
	// bucket) is read while the mark settles. A rehearsal's mark says so:
	// follow holds at a cutover's (until its verdict), not at a
	// rehearsal's, which production goes on writing after.
	markID := sum.Run
	if o.rehearse {
		markID = follow.RehearsalPrefix + sum.Run
	}
	if err := follow.PlaceMark(ctx, s.SrcAPI, s.Src.Bucket, markID); err != nil {
		if job.IsDenied(err) {
			return cli.Usagef("%v: grant s3:PutObject and s3:DeleteObject on arn:aws:s3:::%s/%s* to the cutover (the marker is excluded from the clone)", err, s.Src.Bucket, follow.MarksPrefix)
		}
		return err
	}
	// One reader of follow's work for the whole window, of its entries
	// alone, read once while the mark settles: then only what is new.
	reader := store.Follow(o.followRun)
	reader.EntriesOnly()
	type prepared struct {
		bulk      bulkCheck
		predicted follow.Prediction
	}
	ready := make(chan prepared, 1)
	go func() {
		var p prepared
		p.bulk = checkBulk(ctx, store, run, log)
		if reader.Refresh(ctx) == nil {
			p.predicted = follow.Predict(*fr, reader.Tally().Status(), p.bulk.rate)
		}
		ready <- p
	}()
	waitCtx := ctx
	if o.timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	markCtx, cancel := context.WithTimeout(waitCtx, markWait)
	prep := <-ready
	predicted := prep.predicted
	if predicted.Known {
		fmt.Fprintf(stdout, "predicted about %s: lag %s + settle %s + the fleet's %s for %.0f keys; %d requests, $%.4f\n", cli.Seconds(predicted.Window),
			cli.Seconds(predicted.Lag), cli.Seconds(predicted.Settle), cli.Seconds(predicted.Tail), predicted.Keys, predicted.Requests, predicted.Cost)
	}
	v.notRight = append(v.notRight, prep.bulk.notRight...)
	var mark *ledger.Mark
	var markErr error
	if prep.bulk.why != "" {
		v.why = prep.bulk.why // not clean whatever the fleet does: no wait
		markErr = errors.New(prep.bulk.why)
	} else {
		mark, markErr = follow.AwaitMark(markCtx, store, o.followRun, markID, 100*time.Millisecond)
	}
	cancel()
	w.mark = time.Since(started)
	if err := follow.RemoveMark(context.WithoutCancel(ctx), s.SrcAPI, s.Src.Bucket, markID); err != nil {
		log.Warn().Err(err).Msg("could not delete the cutover's marker object: delete it by hand")
	}
	var st ledger.Status
	switch {
	case prep.bulk.why != "":
	case markErr != nil && ctx.Err() != nil:
		v.why = ctx.Err().Error()
	case markErr != nil:
		v.why = fmt.Sprintf("follow %s did not see the mark within %s (%v): is it running, and does the bucket still send its events?", o.followRun, cli.Seconds(w.mark), markErr)
	default:
		fmt.Fprintf(stdout, "mark      seen by follow %s after the freeze, closed after waiting %s for late events: messages 1 to %d hold every change before it\n",
			cli.Seconds(mark.Seen.Sub(started)), cli.Seconds(mark.Settle), mark.Seq)
		// Events dated before the mark that came after it closed are sent
		// all the same (recorded with the mark): wait for their work too,
		// until a reading of the mark finds no more.
		upTo, late := mark.Seq, 0
		var waitErr error
		for waited := int64(-1); waited != upTo && waitErr == nil; {
			st, waitErr = waitForFollow(waitCtx, reader, upTo, o.timeout, o.conn.AWS.SQS(awsCfg), run.Queue, log)
			waited = upTo
			if m, err := store.Mark(ctx, o.followRun, markID); err == nil {
				late = len(m.Late)
				for _, l := range m.Late {
					upTo = max(upTo, l.Seq)
				}
			}
		}
		if waitErr != nil {
			v.why = waitErr.Error()
		}
		if late > 0 {
			fmt.Fprintf(stdout, "late      %d events dated before the freeze came after the mark closed; their keys were synced before this verdict (a longer follow --settle would have waited for them)\n", late)
		}
		failed, err := followFailures(context.WithoutCancel(ctx), reader, upTo)
		if err != nil {
			return err
		}
		v.notRight = append(v.notRight, failed...)
	}
	w.fleet = time.Since(started) - w.mark
	if o.verify && v.clean() {
		begun := time.Now()
		var counts plan.DiffCounts
		if err := plan.Diff(ctx, s.Paired(listing.Options{Listers: s.Listers}), s.Comparer(), &counts, func(ctx context.Context, f plan.Finding) error {
			v.notRight = append(v.notRight, notRight{rec: plan.NewRecord(f), why: "verify: " + string(f.Problem) + " (" + f.Reason + ")"})
			return nil
		}); err != nil {
			return fmt.Errorf("cutover %s: verify: %w", sum.Run, err)
		}
		w.verify = time.Since(begun)
		v.verified = counts.Compared.Load()
	}
	w.total = time.Since(started)
	if o.rehearse && predicted.Known {
		fmt.Fprintf(stdout, "rehearsal the window took %s with production live; predicted %s (a freeze stops new changes, so the real one is no longer)\n", cli.Seconds(w.total-w.verify), cli.Seconds(predicted.Window))
	}
	return followVerdict(ctx, stdout, store, rec, v, sum.Run, mode, host, st, w, o.out, log)
}

// followVerdict writes a cutover --follow's verdict: the reconciliation
// file (--out, and in the ledger), the printed verdict, and the ledger's
// record of it; its error is the command's.
func followVerdict(ctx context.Context, stdout io.Writer, store *ledger.Store, rec *plan.RecordFile, v *verdict, run, mode, host string,
	st ledger.Status, w followWindow, out string, log zerolog.Logger) error {
	recon, err := v.writeRecon(rec)
	if err != nil {
		return err
	}
	printFollowVerdict(stdout, v, st, w, out)
	lv := ledger.Verdict{Run: run, Mode: mode, Clean: v.clean() && ctx.Err() == nil, Why: v.why, NotRight: len(v.notRight), Verified: v.verified,
		Copied: st.Copied, Deleted: st.Deleted, Host: host,
		Window: ledger.VerdictWindow{Plan: w.mark, Fleet: w.fleet, Verify: w.verify, Total: w.total}}
	switch url, err := store.PutVerdict(context.WithoutCancel(ctx), lv, recon); {
	case err != nil:
		log.Error().Err(err).Msg("could not record the verdict in the ledger (it is printed above)")
	case url != "":
		fmt.Fprintf(stdout, "recorded  the verdict in %s (run %s), the keys in %s\n", store, run, url)
	default:
		fmt.Fprintf(stdout, "recorded  the verdict in %s (run %s)\n", store, run)
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("cutover %s: %w", run, ctx.Err())
	case !v.clean():
		return fmt.Errorf("%w: cutover %s: %d keys not copied or deleted as seen%s", cli.ErrMismatch, run, len(v.notRight), whyClause(v.why))
	}
	return nil
}

// latestFollow is the newest follow run in the ledger.
func latestFollow(ctx context.Context, store *ledger.Store) (string, error) {
	ids, err := store.Runs(ctx)
	if err != nil {
		return "", config.LedgerError(err, store, "s3:ListBucket on arn:aws:s3:::"+store.Bucket())
	}
	for _, id := range slices.Backward(ids) {
		if r, err := store.Run(ctx, id); err == nil && r.Mode == ledger.ModeFollow {
			return id, nil
		}
	}
	return "", cli.Usagef("--follow latest: the ledger %s holds no follow run (start planner follow first)", store)
}

// sameAsFollow checks --source, --dest and --queue-url, when given (a task
// in the stack has them in its environment), against the follow's run.
func sameAsFollow(o *cutoverOptions, run *ledger.Run) error {
	for _, c := range []struct {
		flag, given string
		want        plan.Location
	}{{"source", o.s.RawSource, run.Source}, {"dest", o.s.RawDest, run.Dest}} {
		if c.given == "" {
			continue
		}
		loc, err := plan.ParseLocation(c.given)
		if err != nil {
			return cli.Usagef("--%s: %v", c.flag, err)
		}
		if loc.Bucket != c.want.Bucket || loc.Prefix != c.want.Prefix {
			return cli.Usagef("--%s %s is not follow %s's (s3://%s/%s): leave it out, --follow takes the follow's", c.flag, c.given, o.followRun, c.want.Bucket, c.want.Prefix)
		}
	}
	if o.queueURL != "" && o.queueURL != run.Queue {
		return cli.Usagef("--queue-url %s is not follow %s's (%s): leave it out, --follow takes the follow's", o.queueURL, o.followRun, run.Queue)
	}
	return nil
}

func whyClause(why string) string {
	if why == "" {
		return ""
	}
	return "; " + why
}

// bulkCheck is what the bulk copy before a follow leaves undone.
type bulkCheck struct {
	notRight []notRight
	why      string
	rate     float64 // the base run's objects a second
}

// checkBulk judges the bulk copy of the follow's pair: the newest full or
// diff run and every from-file run after it (ledger.Store.Bulk). Each must
// be complete, and its keys that failed must be ones follow covers: a key
// that changed after the bulk listing saw it has an event, or the catch-up
// found it, once follow is anchored. A dead-lettered message of the base
// run leaves it incomplete, whatever a from-file run did later.
func checkBulk(ctx context.Context, store *ledger.Store, follow *ledger.Run, log zerolog.Logger) bulkCheck {
	chain, err := store.Bulk(ctx, follow.Source, follow.Dest)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return bulkCheck{why: fmt.Sprintf("the ledger holds no bulk run (planner plan) of s3://%s/%s to s3://%s/%s: follow alone copies only what changed",
			follow.Source.Bucket, follow.Source.Prefix, follow.Dest.Bucket, follow.Dest.Prefix)}
	case err != nil:
		return bulkCheck{why: fmt.Sprintf("cannot list the ledger's runs to find the bulk copy: %v", err)}
	}
	var c bulkCheck
	for _, bulk := range chain {
		reader := store.Follow(bulk.ID)
		if err := reader.Refresh(ctx); err != nil {
			c.why = fmt.Sprintf("cannot read the bulk run %s: %v", bulk.ID, err)
			return c
		}
		st := reader.Tally().Status()
		if bulk == chain[len(chain)-1] {
			c.rate = st.Rate // the fleet copying as fast as it can
		}
		if !st.Complete {
			c.why = fmt.Sprintf("the bulk run %s is not done: %d of %d messages (planner status --run-id %s)", bulk.ID, st.Done, st.Sent, bulk.ID)
			return c
		}
		entries, err := reader.Failed(ctx, ledger.MaxFailures)
		if err != nil {
			c.why = fmt.Sprintf("cannot read the bulk run %s's failures: %v", bulk.ID, err)
			return c
		}
		for _, e := range entries {
			for _, f := range e.Failed {
				if f.Reason == string(copier.ReasonChanged) {
					continue // its change came as an event, or the catch-up found it
				}
				c.notRight = append(c.notRight, notRight{rec: e.Record(f), why: "bulk run " + bulk.ID + ": " + f.Reason})
			}
		}
	}
	if len(c.notRight) > 0 {
		log.Warn().Int("keys", len(c.notRight)).Msg("the bulk copy failed keys no event will mend")
	}
	return c
}

// waitForFollow reads the follow run's ledger until every work message up
// to seq has an entry, or ctx ends. It gives up when the work cannot
// finish: the work queue empty, nothing in flight and messages in its
// dead-letter queue, for cutoverStallFor with no entry coming in.
func waitForFollow(ctx context.Context, reader *ledger.Reader, seq int64, timeout time.Duration, sqs queue.API, queueURL string, log zerolog.Logger) (ledger.Status, error) {
	var st ledger.Status
	started := time.Now()
	lastLog, lastDepth, lastEntry := started, time.Time{}, started
	var stalledSince time.Time
	entries, through := int64(-1), int64(0)
	for {
		refresh, cancel := context.WithTimeout(ctx, cutoverRefreshLimit)
		err := reader.Refresh(refresh)
		cancel()
		now := time.Now()
		var missing []int64
		switch {
		case ctx.Err() != nil:
			return st, waitEnded(ctx, timeout, st)
		case err != nil:
			log.Warn().Err(err).Msg("reading the ledger failed; trying again")
		default:
			st = reader.Tally().Status()
			if st.Done != entries {
				entries, lastEntry, stalledSince = st.Done, now, time.Time{}
			}
			missing, through = follow.Missing(reader.Tally(), through+1, seq, 10)
			if len(missing) == 0 {
				return st, nil
			}
		}
		if now.Sub(lastDepth) >= cutoverDepthEvery {
			lastDepth = now
			d := status.ReadDepth(ctx, sqs, queueURL, log)
			switch {
			case d.Error != "" || d.Visible > 0 || d.InFlight > 0 || deadLettered(d) == 0:
				stalledSince = time.Time{}
			case stalledSince.IsZero():
				stalledSince = now
			case now.Sub(stalledSince) >= cutoverStallFor && now.Sub(lastEntry) >= cutoverStallFor:
				return st, fmt.Errorf("the work queue has been empty for %s with messages in its dead-letter queue, and messages %v (of 1 to %d) are not done: fix what the workers' log says, then planner redrive",
					now.Sub(stalledSince).Round(time.Second), missing, seq)
			}
		}
		if now.Sub(lastLog) >= 10*time.Second {
			lastLog = now
			log.Info().Ints64("waiting_for", missing).Int64("up_to", seq).Msg("waiting for the fleet to finish follow's work up to the mark (is a worker running?)")
		}
		select {
		case <-ctx.Done():
			return st, waitEnded(ctx, timeout, st)
		case <-time.After(cutoverPoll):
		}
	}
}

// followFailures are the keys follow's work up to seq failed.
func followFailures(ctx context.Context, reader *ledger.Reader, seq int64) ([]notRight, error) {
	entries, err := reader.Failed(ctx, ledger.MaxFailures)
	if err != nil {
		return nil, err
	}
	var out []notRight
	for _, e := range entries {
		if e.Seq > seq {
			continue
		}
		for _, f := range e.Failed {
			out = append(out, notRight{rec: e.Record(f), why: "follow: " + f.Reason})
		}
	}
	return out, nil
}

func printFollowVerdict(w io.Writer, v *verdict, st ledger.Status, win followWindow, out string) {
	fmt.Fprintf(w, "fleet     %d copied, %d deleted or found absent, %d failed in follow's work\n", st.Copied, st.Deleted, st.Failed)
	fmt.Fprintf(w, "window    %s: the mark %s, then the fleet %s", cli.Seconds(win.total), cli.Seconds(win.mark), cli.Seconds(win.fleet))
	if win.verify > 0 {
		fmt.Fprintf(w, ", verify %s (%d keys)", cli.Seconds(win.verify), v.verified)
	}
	fmt.Fprintln(w)
	if v.clean() {
		fmt.Fprintln(w, "verdict   clean: every change up to the freeze was copied or deleted as seen")
		return
	}
	fmt.Fprintf(w, "verdict   NOT CLEAN: %d keys not copied or deleted as seen\n", len(v.notRight))
	if v.why != "" {
		fmt.Fprintf(w, "          %s\n", v.why)
	}
	for i, n := range v.notRight {
		if i == 50 {
			fmt.Fprintf(w, "          ... and %d more\n", len(v.notRight)-50)
			break
		}
		fmt.Fprintf(w, "  %s\t%s\n", n.rec.Key, n.why)
	}
	if out != "" {
		fmt.Fprintf(w, "written   %s (planner plan --from-file %s --delete, once the cause is fixed)\n", out, out)
	}
}
