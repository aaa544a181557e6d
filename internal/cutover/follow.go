package cutover

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
	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/status"
)

// followAliveWithin is how recently a follow must have written its record
// for a cutover to rely on it (it writes every 5 s).
const followAliveWithin = 30 * time.Second

// followTimes is how long each part of a cutover --follow took.
type followTimes struct {
	mark, fleet, verify, total time.Duration
}

// runFollow is the frozen window when planner follow has kept the
// destination in step: no listing. It finds the follow, records the
// cutover's own run (its verdict goes under it, for status), and hands the
// window to a followCut.
func runFollow(ctx context.Context, o *Options, stdout io.Writer) error {
	started := time.Now()
	log, awsCfg, err := o.Conn.Open(ctx, 16)
	if err != nil {
		return err
	}
	regions := o.Conn.AWS.Regions(awsCfg)
	store := o.Ledger.Open(ctx, regions)
	if err := store.CheckBucket(ctx); err != nil {
		return config.LedgerError(err, store)
	}
	fr, run, err := o.followed(ctx, store)
	if err != nil {
		return err
	}
	rec, err := plan.NewRecordFile(o.Out)
	if err != nil {
		return cli.Usagef("--out %s: %v", o.Out, err)
	}
	defer rec.Discard()
	s := &o.Job
	if err := sameAsFollow(o, run); err != nil {
		return err
	}
	s.Src, s.Dst = run.Source, run.Dest
	if err := s.Connect(ctx, regions); err != nil {
		return err
	}
	sum := s.NewSummary()
	host, _ := os.Hostname() // "" is fine: the record says where it ran only when it can
	runLog, err := store.BeginRun(ctx, ledger.Run{ID: sum.Run, Source: s.Src, Dest: s.Dst, Queue: run.Queue, Mode: ledger.ModeCutover,
		Options: map[string]string{"follow": o.Follow, "cutover": o.mode()}, Version: cli.Version(), Host: host, Started: sum.Started.UTC()})
	if err != nil {
		return config.LedgerError(err, store)
	}
	if err := runLog.End(ctx, 0, nil); err != nil {
		return config.LedgerError(err, store)
	}
	fmt.Fprintf(stdout, "cutover   %s of follow %s: s3://%s/%s -> s3://%s/%s\n", sum.Run, o.Follow, s.Src.Bucket, s.Src.Prefix, s.Dst.Bucket, s.Dst.Prefix)
	sqsAPI := o.Conn.AWS.SQS(awsCfg)
	c := &followCut{
		id: sum.Run, mode: o.mode(), rehearse: o.Rehearse, timeout: o.Timeout, markWait: o.markWait(), out: o.Out,
		started: started, store: store, follow: run, record: fr, source: s.SrcAPI,
		depth: func(ctx context.Context) *status.Depth { return status.ReadDepth(ctx, sqsAPI, run.Queue, log) },
		rec:   rec, pace: defaultPace(), log: log,
	}
	if o.Verify {
		c.verify = func(ctx context.Context, v *verdict) error {
			return v.verifyAll(ctx, s.Paired(listing.Options{Listers: s.Listers}), s.Comparer())
		}
	}
	return c.run(ctx, stdout)
}

// followed reads the follow run o names (the newest with "latest") and
// follow's record of it, and refuses a follow that stopped or has not
// written its record lately.
func (o *Options) followed(ctx context.Context, store *ledger.Store) (*ledger.Follow, *ledger.Run, error) {
	if o.Follow == "latest" {
		id, err := latestFollow(ctx, store)
		switch {
		case err != nil:
			return nil, nil, config.LedgerError(err, store)
		case id == "":
			return nil, nil, cli.Usagef("--follow latest: the ledger %s holds no follow run (start planner follow first)", store)
		}
		o.Follow = id
	}
	fr, err := store.FollowRecord(ctx, o.Follow)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil, cli.Usagef("--follow %s: the ledger %s has no follow run of that id (planner follow prints its run id when it starts)", o.Follow, store)
	}
	if err != nil {
		return nil, nil, config.LedgerError(err, store)
	}
	run, err := store.Run(ctx, o.Follow)
	if err != nil {
		return nil, nil, config.LedgerError(err, store)
	}
	switch {
	case !fr.Stopped.IsZero():
		return nil, nil, cli.Usagef("--follow %s: that follow stopped at %s: start planner follow again (the events wait on its queue) and cut over with its new run", o.Follow, fr.Stopped.Format(time.RFC3339))
	case time.Since(fr.Alive) > followAliveWithin:
		return nil, nil, cli.Usagef("--follow %s: that follow last wrote its record %s ago (every 5 s while it runs): is it running?", o.Follow, time.Since(fr.Alive).Round(time.Second))
	}
	return fr, run, nil
}

// runBook is where latestFollow finds the runs: a *ledger.Store.
type runBook interface {
	Runs(ctx context.Context) ([]string, error)
	Run(ctx context.Context, id string) (*ledger.Run, error)
}

var _ runBook = (*ledger.Store)(nil)

// latestFollow is the newest follow run in the ledger, "" when there is
// none; the error is the ledger's, when it cannot list the runs.
func latestFollow(ctx context.Context, book runBook) (string, error) {
	ids, err := book.Runs(ctx)
	if err != nil {
		return "", err
	}
	for _, id := range slices.Backward(ids) {
		if r, err := book.Run(ctx, id); err == nil && r.Mode == ledger.ModeFollow {
			return id, nil
		}
	}
	return "", nil
}

// sameAsFollow checks --source, --dest and --queue-url, when given (a task
// in the stack has them in its environment), against the follow's run.
func sameAsFollow(o *Options, run *ledger.Run) error {
	for _, c := range []struct {
		flag, given string
		want        plan.Location
	}{{"source", o.Job.RawSource, run.Source}, {"dest", o.Job.RawDest, run.Dest}} {
		if c.given == "" {
			continue
		}
		loc, err := plan.ParseLocation(c.given)
		if err != nil {
			return cli.Usagef("--%s: %v", c.flag, err)
		}
		if loc.Bucket != c.want.Bucket || loc.Prefix != c.want.Prefix {
			return cli.Usagef("--%s %s is not follow %s's (s3://%s/%s): leave it out, --follow takes the follow's", c.flag, c.given, o.Follow, c.want.Bucket, c.want.Prefix)
		}
	}
	if o.QueueURL != "" && o.QueueURL != run.Queue {
		return cli.Usagef("--queue-url %s is not follow %s's (%s): leave it out, --follow takes the follow's", o.QueueURL, o.Follow, run.Queue)
	}
	return nil
}

// followCut is a cutover --follow once the follow is found and the
// cutover's own run recorded: the mark, the wait for follow's work up to
// it, and the verdict.
type followCut struct {
	id, mode string // the cutover's run, and "cutover" or "rehearsal"
	rehearse bool
	// timeout bounds the whole wait (0: none); markWait the wait for the
	// mark.
	timeout, markWait time.Duration
	out               string        // --out, named in the verdict
	started           time.Time     // when the window began
	store             *ledger.Store // the ledger
	follow            *ledger.Run   // the follow's run
	record            *ledger.Follow
	source            follow.MarkerAPI // the source bucket, where the mark goes
	depth             depthFunc        // the follow's work queue's
	rec               *plan.RecordFile // --out
	// verify, with --verify, lists both sides again in full, adding what
	// is not right to the verdict; nil without.
	verify func(ctx context.Context, v *verdict) error
	pace   pace
	log    zerolog.Logger
}

// prepared is what a cutover --follow reads while its mark settles.
type prepared struct {
	bulk      bulkCheck
	predicted follow.Prediction
}

// run marks the freeze through the same event path as every change (a
// marker object in the source), waits until follow has seen the mark and
// every work message up to it is done, and gives the verdict on those
// messages and on the bulk run before them.
func (c *followCut) run(ctx context.Context, stdout io.Writer) error {
	v := &verdict{}
	if !c.record.Anchored {
		// The verdict cannot be clean whatever the fleet does: say so now,
		// not after waiting for it in the window.
		v.why = fmt.Sprintf("follow %s is not anchored yet: its events began (or its configuration took effect) after the bulk copy began, and its catch-up listing (once the bulk copy is done) has not finished", c.record.Run)
		return c.verdict(ctx, stdout, v, ledger.Status{}, followTimes{total: time.Since(c.started)})
	}

	// The freeze, marked through the events' own path, at once: what the
	// verdict needs besides (the bulk copy's ledger, which grows with the
	// bucket) is read while the mark settles. A rehearsal's mark says so:
	// follow holds at a cutover's (until its verdict), not at a
	// rehearsal's, which production goes on writing after.
	markID := c.id
	if c.rehearse {
		markID = follow.RehearsalPrefix + c.id
	}
	bucket := c.follow.Source.Bucket
	if err := follow.PlaceMark(ctx, c.source, bucket, markID); err != nil {
		if job.IsDenied(err) {
			return cli.Usagef("%v: grant s3:PutObject and s3:DeleteObject on arn:aws:s3:::%s/%s* to the cutover (the marker is excluded from the clone)", err, bucket, follow.MarksPrefix)
		}
		return err
	}
	// One reader of follow's work for the whole window, of its entries
	// alone, read once while the mark settles: then only what is new.
	reader := c.store.Follow(c.follow.ID)
	reader.EntriesOnly()
	ready := make(chan prepared, 1)
	go func() {
		var p prepared
		p.bulk = checkBulk(ctx, c.store, c.follow, c.log)
		if reader.Refresh(ctx) == nil {
			p.predicted = follow.Predict(*c.record, reader.Tally().Status(), p.bulk.rate)
		}
		ready <- p
	}()
	waitCtx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	markCtx, cancel := context.WithTimeout(waitCtx, c.markWait)
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
	} else {
		mark, markErr = follow.AwaitMark(markCtx, c.store, c.follow.ID, markID, c.pace.markPoll)
	}
	cancel()
	var w followTimes
	w.mark = time.Since(c.started)
	if err := follow.RemoveMark(context.WithoutCancel(ctx), c.source, bucket, markID); err != nil {
		c.log.Warn().Err(err).Msg("could not delete the cutover's marker object: delete it by hand")
	}
	var st ledger.Status
	switch {
	case prep.bulk.why != "":
	case markErr != nil && ctx.Err() != nil:
		v.why = ctx.Err().Error()
	case markErr != nil:
		v.why = fmt.Sprintf("follow %s did not see the mark within %s (%v): is it running, and does the bucket still send its events?", c.follow.ID, cli.Seconds(w.mark), markErr)
	default:
		fmt.Fprintf(stdout, "mark      seen by follow %s after the freeze, closed after waiting %s for late events: messages 1 to %d hold every change before it\n",
			cli.Seconds(mark.Seen.Sub(c.started)), cli.Seconds(mark.Settle), mark.Seq)
		var err error
		if st, err = c.waitUpTo(ctx, waitCtx, reader, mark, markID, v, stdout); err != nil {
			return err
		}
	}
	w.fleet = time.Since(c.started) - w.mark
	if c.verify != nil && v.clean() {
		begun := time.Now()
		if err := c.verify(ctx, v); err != nil {
			return fmt.Errorf("cutover %s: verify: %w", c.id, err)
		}
		w.verify = time.Since(begun)
	}
	w.total = time.Since(c.started)
	if c.rehearse && predicted.Known {
		fmt.Fprintf(stdout, "rehearsal the window took %s with production live; predicted %s (a freeze stops new changes, so the real one is no longer)\n", cli.Seconds(w.total-w.verify), cli.Seconds(predicted.Window))
	}
	return c.verdict(ctx, stdout, v, st, w)
}

// waitUpTo waits, within waitCtx, until the fleet has done every work
// message up to the mark, and adds to v why it stopped early and the keys
// of those messages that failed. Events dated before the mark that came
// after it closed are sent all the same (recorded with the mark): it waits
// for their work too, until a reading of the mark finds no more.
func (c *followCut) waitUpTo(ctx, waitCtx context.Context, reader *ledger.Reader, mark *ledger.Mark, markID string, v *verdict, stdout io.Writer) (ledger.Status, error) {
	var st ledger.Status
	upTo, late := mark.Seq, 0
	var waitErr error
	for waited := int64(-1); waited != upTo && waitErr == nil; {
		st, waitErr = c.pace.waitForFollow(waitCtx, reader, upTo, c.timeout, c.depth, c.log)
		waited = upTo
		if m, err := c.store.Mark(ctx, c.follow.ID, markID); err == nil {
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
		return st, err
	}
	v.notRight = append(v.notRight, failed...)
	return st, nil
}

// verdict writes a cutover --follow's verdict: the reconciliation file
// (--out, and in the ledger), the printed verdict, and the ledger's record
// of it; its error is the command's.
func (c *followCut) verdict(ctx context.Context, stdout io.Writer, v *verdict, st ledger.Status, w followTimes) error {
	recon, err := v.writeRecon(c.rec)
	if err != nil {
		return err
	}
	printFollowVerdict(stdout, v, st, w, c.out)
	lv := newVerdict(c.id, c.mode, v.clean() && ctx.Err() == nil, v, st, ledger.VerdictWindow{Plan: w.mark, Fleet: w.fleet, Verify: w.verify, Total: w.total})
	switch url, err := c.store.PutVerdict(context.WithoutCancel(ctx), lv, recon); {
	case err != nil:
		c.log.Error().Err(err).Msg("could not record the verdict in the ledger (it is printed above)")
	case url != "":
		fmt.Fprintf(stdout, "recorded  the verdict in %s (run %s), the keys in %s\n", c.store, c.id, url)
	default:
		fmt.Fprintf(stdout, "recorded  the verdict in %s (run %s)\n", c.store, c.id)
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("cutover %s: %w", c.id, ctx.Err())
	case !v.clean():
		return fmt.Errorf("%w: cutover %s: %d keys not copied or deleted as seen%s", cli.ErrMismatch, c.id, len(v.notRight), whyClause(v.why))
	}
	return nil
}

// whyClause is why, as a clause to append to a sentence ("" for none).
func whyClause(why string) string {
	if why == "" {
		return ""
	}
	return "; " + why
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

// printFollowVerdict writes a cutover --follow's verdict and its window's
// timings.
func printFollowVerdict(w io.Writer, v *verdict, st ledger.Status, win followTimes, out string) {
	fmt.Fprintf(w, "fleet     %d copied, %d deleted or found absent, %d failed in follow's work\n", st.Copied, st.Deleted, st.Failed)
	fmt.Fprintf(w, "window    %s: the mark %s, then the fleet %s", cli.Seconds(win.total), cli.Seconds(win.mark), cli.Seconds(win.fleet))
	if win.verify > 0 {
		fmt.Fprintf(w, ", verify %s (%d keys)", cli.Seconds(win.verify), v.verified)
	}
	fmt.Fprintln(w)
	if !v.printKeys(w, "every change up to the freeze was copied or deleted as seen", "not copied or deleted as seen", func(n notRight) string { return n.why }) {
		return
	}
	if out != "" {
		fmt.Fprintf(w, "written   %s (planner plan --from-file %s --delete, once the cause is fixed)\n", out, out)
	}
}
