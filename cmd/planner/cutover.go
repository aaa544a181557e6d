package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/s3clone/s3clone/internal/config"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/listing"
	"github.com/s3clone/s3clone/internal/plan"
	"github.com/s3clone/s3clone/internal/queue"
)

const cutoverUsage = `usage: planner cutover --source s3://BUCKET[/PREFIX] --dest s3://BUCKET[/PREFIX] --queue-url URL --ledger s3://BUCKET/PREFIX/
                       [--no-delete] [--verify] [--rehearse] [--out FILE] [--timeout DURATION]

The frozen window as one command, once production is frozen: plans what
differs between source and destination (plan --diff --delete), waits for
the fleet to copy and delete it (following the ledger, several times a
second), and gives a verdict. Exit 0 only when every difference it found
was copied or deleted as listed: each copy pinned to the ETag the listing
saw, each recorded by a worker, none failed, none skipped. Exit 1
otherwise, naming the keys that are not right; --out writes them as a
reconciliation file for planner plan --from-file. --verify then lists both
sides again in full and compares them key by key.

Before the freeze, --rehearse runs the same delta while production is live
and says how long the real window would take; keys that change while it
runs are expected then, and do not fail it.`

// cutoverPoll is how often the ledger is read while the fleet works: the
// verdict comes a fraction of a second after the last entry is written.
const cutoverPoll = 200 * time.Millisecond

// cutoverDepthEvery is how often the queues are read, to notice a run that
// cannot finish (its work queue empty, messages in its dead-letter queue).
const cutoverDepthEvery = 5 * time.Second

type cutoverOptions struct {
	s                source
	from             planFrom
	queueURL, out    string
	led              config.Ledger
	noDelete         bool
	verify, rehearse bool
	timeout          time.Duration
	conn             config.Connection
}

func (o *cutoverOptions) parse(args []string) error {
	f := config.NewFlags("planner cutover", cutoverUsage, os.Stderr)
	o.s.register(f)
	f.StringVar(&o.queueURL, "queue-url", "", "URL of the work queue the fleet drains (required)")
	o.led.Register(f, "the run is recorded there, and the fleet's work read back from it (required)")
	f.BoolVar(&o.noDelete, "no-delete", false, "leave destination objects that are not in the source (default: delete them, as plan --delete)")
	f.BoolVar(&o.verify, "verify", false, "after the fleet is done, list both sides again in full and compare every key (planner verify)")
	f.BoolVar(&o.rehearse, "rehearse", false, "a rehearsal while production is live: copy the delta, time it, and say how long the window would take")
	f.StringVar(&o.out, "out", "", "write the keys that are not right to this file, one JSON object a line (for plan --from-file)")
	f.DurationVar(&o.timeout, "timeout", 0, "give up waiting for the fleet after this long, e.g. 20m, and name what is not done (default: wait until done or stalled)")
	o.conn.Register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	var p config.Problems
	o.s.validate(&p)
	o.from = planFrom{diff: true, mirror: !o.noDelete}
	if o.queueURL == "" {
		p.Addf("--queue-url is required: the work queue the fleet drains")
	}
	config.CheckQueueURL(&p, "queue-url", o.queueURL)
	o.led.Validate(&p, true)
	o.led.CheckApart(&p, "source", o.s.src)
	o.led.CheckApart(&p, "dest", o.s.dst)
	if o.timeout < 0 {
		p.Addf("--timeout %s: must be positive, e.g. 20m", o.timeout)
	}
	if o.out != "" {
		if st, err := os.Stat(filepath.Dir(o.out)); err != nil || !st.IsDir() {
			p.Addf("--out %s: its directory does not exist", o.out)
		}
	}
	o.conn.Validate(&p)
	return p.Err()
}

// window is how long each part of a cutover took.
type window struct {
	started       time.Time
	plan, fleet   time.Duration // the plan (listing, comparing, sending); then the fleet's tail
	verify, total time.Duration
}

func cutoverCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var o cutoverOptions
	if err := o.parse(args); err != nil {
		return err
	}
	w := window{started: time.Now()}
	s := &o.s
	log, awsCfg, err := o.conn.Open(ctx, s.listers*2+plan.Deciders+plan.Senders)
	if err != nil {
		return err
	}
	regions := o.conn.AWS.Regions(awsCfg)
	if err := s.connect(ctx, regions); err != nil {
		return err
	}
	rec, err := newRecordFile(o.out)
	if err != nil {
		return err
	}
	defer rec.discard()
	sum := s.newSummary()
	mode := "cutover"
	if o.rehearse {
		mode = "rehearsal"
	}
	run := s.runRecord(sum, &o.from, o.queueURL, map[string]string{"listers": fmt.Sprint(s.listers), "batch_keys": fmt.Sprint(s.batchKeys), "cutover": mode})
	work, store, runLog, err := beginPlan(ctx, s, sum, run, queue.NewSQS(o.conn.AWS.SQS(awsCfg), o.queueURL), o.led.Open(ctx, regions), log)
	if err != nil {
		return err
	}

	// What each message holds, kept on disk until the verdict: the keys of
	// a message the fleet never finishes are named from it.
	spill, err := newSpill()
	if err != nil {
		endEarly(ctx, runLog, err, log)
		return err
	}
	defer spill.remove()
	planErr := sendDelta(ctx, s, &o.from, sum, work, runLog, spill, log)
	w.plan = time.Since(w.started)
	printPlan(stdout, sum, o.from.describe(sum.Finished.Sub(sum.Started)), false)
	if planErr != nil {
		return fmt.Errorf("cutover %s: the plan stopped after %d messages: %w", sum.Run, sum.Messages.Load(), planErr)
	}

	reader := store.Follow(sum.Run)
	st, waitErr := waitForFleet(ctx, reader, o.conn.AWS.SQS(awsCfg), o.queueURL, o.timeout, log)
	w.fleet = time.Since(w.started) - w.plan
	if waitErr != nil && ctx.Err() != nil {
		return waitErr
	}
	v, err := judge(ctx, s, reader, spill, st, o.rehearse, log)
	if err != nil {
		return err
	}
	if waitErr != nil {
		v.why = waitErr.Error()
	}
	if o.verify && v.clean() {
		started := time.Now()
		var counts plan.DiffCounts
		if err := plan.Diff(ctx, s.paired(listing.Options{Listers: s.listers}), s.comparer(), &counts, func(ctx context.Context, f plan.Finding) error {
			v.notRight = append(v.notRight, notRight{rec: plan.NewRecord(f), why: "verify: " + string(f.Problem) + " (" + f.Reason + ")"})
			return nil
		}); err != nil {
			return fmt.Errorf("cutover %s: verify: %w", sum.Run, err)
		}
		w.verify = time.Since(started)
		v.verified = counts.Compared.Load()
	}
	w.total = time.Since(w.started)
	for _, n := range v.notRight {
		if n.rec.Problem != plan.Match && rec.enc != nil {
			if err := rec.enc.Encode(n.rec); err != nil {
				return err
			}
		}
	}
	if err := rec.commit(); err != nil {
		return err
	}
	v.print(stdout, sum, st, w, o.out, o.rehearse)
	if !v.clean() {
		return fmt.Errorf("%w: cutover %s: %d keys not copied or deleted as listed", config.ErrMismatch, sum.Run, len(v.notRight))
	}
	return nil
}

// sendDelta plans the difference and sends it to the fleet, each message
// also written to spill.
func sendDelta(ctx context.Context, s *source, from *planFrom, sum *plan.Summary, work *queue.SQS, runLog *ledger.RunLog, spill *spill, log zerolog.Logger) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	runLog.OnError = func(err error) { stop(fmt.Errorf("the ledger: %w", err)) }
	sent := func(batch []plan.Body) {
		seqs, t := sentGroup(batch)
		if err := spill.add(batch); err != nil {
			stop(err)
			return
		}
		runLog.Sent(seqs, t, nil)
	}
	err := s.enqueue(ctx, from.source(s, log), sum, sendTo(work, sum.Run), sent, log)
	if endErr := runLog.End(ctx, sum.Seq.Load(), err); endErr != nil && err == nil {
		err = endErr
	}
	if err == nil {
		err = spill.flush()
	}
	return err
}

// waitForFleet reads the ledger until every message the plan sent has an
// entry; it gives up when the run cannot finish (the work queue is empty
// and messages wait in its dead-letter queue), after timeout (if not 0),
// or when ctx ends, returning the last status and why it stopped.
func waitForFleet(ctx context.Context, reader *ledger.Reader, sqs queue.API, queueURL string, timeout time.Duration, log zerolog.Logger) (ledger.Status, error) {
	started := time.Now()
	poll := time.NewTicker(cutoverPoll)
	defer poll.Stop()
	var (
		st         ledger.Status
		lastDepth  time.Time
		lastLog    = started
		failedRead int
	)
	for {
		if err := reader.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			if failedRead++; failedRead >= 10 {
				return st, fmt.Errorf("reading the ledger failed 10 times in a row: %w", err)
			}
			log.Warn().Err(err).Msg("reading the ledger failed; trying again")
		} else {
			failedRead = 0
			st = reader.Tally().Status()
			if st.Complete {
				return st, nil
			}
		}
		now := time.Now()
		if timeout > 0 && now.Sub(started) >= timeout {
			return st, fmt.Errorf("gave up waiting after --timeout %s: %d of %d messages done", timeout, st.Done, st.Sent)
		}
		if now.Sub(lastDepth) >= cutoverDepthEvery {
			lastDepth = now
			if d := readDepth(ctx, sqs, queueURL, log); d.Error == "" && d.Visible == 0 && d.InFlight == 0 && d.DeadLettered != nil && *d.DeadLettered > 0 {
				// Read once more: the last message may have been finished
				// just after the refresh above.
				if err := reader.Refresh(ctx); err == nil {
					if st = reader.Tally().Status(); st.Complete {
						return st, nil
					}
				}
				return st, fmt.Errorf("the work queue is empty and %d messages are in its dead-letter queue: fix what the workers' log says, then planner redrive", *d.DeadLettered)
			}
		}
		if now.Sub(lastLog) >= 10*time.Second {
			lastLog = now
			msg := log.Info().Int64("done", st.Done).Int64("sent", st.Sent).Int64("keys_done", st.DoneObjects).Int64("keys", st.Planned.Objects)
			if st.Done == 0 {
				msg.Msg("waiting for the fleet: no message finished yet (is a worker running?)")
			} else {
				msg.Msg("waiting for the fleet")
			}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-poll.C:
		}
	}
}

// notRight is a key the cutover did not copy or delete as listed, and
// what its pair is now (rec; Match when it is right after all).
type notRight struct {
	rec plan.Record
	why string // what happened to it in the window
}

// verdict is what a cutover concludes.
type verdict struct {
	notRight []notRight
	// changedLive counts keys a rehearsal saw change while it ran (they do
	// not fail a rehearsal).
	changedLive int
	verified    int64  // keys compared by --verify
	why         string // why the wait ended early, if it did
}

func (v *verdict) clean() bool { return len(v.notRight) == 0 && v.why == "" }

// judge reads what the fleet did not do as listed (failed and skipped keys,
// and the keys of messages without an entry) and looks at each pair again
// now. A rehearsal lets keys that changed or vanished while production was
// live pass, counting them.
func judge(ctx context.Context, s *source, reader *ledger.Reader, spill *spill, st ledger.Status, rehearse bool, log zerolog.Logger) (*verdict, error) {
	v := &verdict{}
	type pending struct {
		srcKey, dstKey, why string
	}
	var todo []pending
	entries, err := reader.NotDone(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the ledger's failed keys: %w", err)
	}
	for _, e := range entries {
		for _, f := range append(slices.Clone(e.Failed), e.Skipped...) {
			if rehearse && (f.Reason == string(copier.ReasonChanged) || f.Reason == string(copier.ReasonVanished)) {
				v.changedLive++
				continue
			}
			why := f.Reason
			if f.Code != "" {
				why += " (" + f.Code + ")"
			}
			if e.Op == plan.OpDelete {
				todo = append(todo, pending{s.sourceKey(f.Key), f.Key, "delete " + why})
			} else {
				todo = append(todo, pending{f.Key, s.destKey(f.Key), why})
			}
		}
	}
	if unfinished := reader.Tally().Unfinished(); len(unfinished) > 0 {
		err := spill.each(unfinished, func(b *plan.Batch) {
			for _, e := range b.Entries {
				why := fmt.Sprintf("not finished (message %d)", b.Seq)
				if b.Op == plan.OpDelete {
					todo = append(todo, pending{s.sourceKey(e.Key), e.Key, "delete " + why})
				} else {
					todo = append(todo, pending{e.Key, s.destKey(e.Key), why})
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	v.notRight = make([]notRight, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(plan.Deciders)
	for i, p := range todo {
		g.Go(func() error {
			rec, err := s.recheck(gctx, p.srcKey, p.dstKey)
			v.notRight[i] = notRight{rec: rec, why: p.why}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("look again at the keys not done: %w", err)
	}
	slices.SortFunc(v.notRight, func(a, b notRight) int { return strings.Compare(a.rec.Key, b.rec.Key) })
	return v, nil
}

// sourceKey and destKey map a key to the other side: the source prefix is
// replaced by the destination's.
func (s *source) destKey(srcKey string) string {
	return s.dst.Prefix + strings.TrimPrefix(srcKey, s.src.Prefix)
}

func (s *source) sourceKey(dstKey string) string {
	return s.src.Prefix + strings.TrimPrefix(dstKey, s.dst.Prefix)
}

// recheck compares a pair as it is now (HeadObject on each side, then the
// rule of plan --diff): the record to enqueue, or a Match. Its error is
// for a context that ended; a key it cannot inspect is Unknown.
func (s *source) recheck(ctx context.Context, srcKey, dstKey string) (plan.Record, error) {
	var src, dst *listing.Object
	var srcErr, dstErr error
	var wg sync.WaitGroup
	wg.Go(func() { src, srcErr = headObject(ctx, s.srcAPI, s.src.Bucket, srcKey) })
	dst, dstErr = headObject(ctx, s.dstAPI, s.dst.Bucket, dstKey)
	wg.Wait()
	pair := listing.Pair{Key: strings.TrimPrefix(srcKey, s.src.Prefix), Src: src, Dst: dst}
	if err := errors.Join(srcErr, dstErr); err != nil {
		if ctx.Err() != nil {
			return plan.Record{}, ctx.Err()
		}
		if src == nil && srcErr != nil {
			src = &listing.Object{Key: srcKey} // enqueued as a copy: the worker will say why
		}
		pair.Src = src
		return plan.NewRecord(plan.Finding{Pair: pair, Problem: plan.Unknown, Reason: err.Error()}), nil
	}
	if src == nil && dst == nil {
		return plan.Record{Key: pair.Key, Problem: plan.Match, Reason: "in neither bucket"}, nil
	}
	problem, reason, err := s.comparer().Compare(ctx, pair)
	if err != nil {
		return plan.Record{}, err
	}
	if problem == plan.Match {
		return plan.Record{Key: pair.Key, Problem: plan.Match, Reason: reason}, nil
	}
	return plan.NewRecord(plan.Finding{Pair: pair, Problem: problem, Reason: reason}), nil
}

// headObject is what a listing would say of one object now; nil, nil when
// there is none.
func headObject(ctx context.Context, api *s3.Client, bucket, key string) (*listing.Object, error) {
	out, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("head s3://%s/%s: %w", bucket, key, err)
	}
	return &listing.Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		StorageClass: string(out.StorageClass), LastModified: aws.ToTime(out.LastModified)}, nil
}

// print writes the verdict and the window's timings.
func (v *verdict) print(w io.Writer, sum *plan.Summary, st ledger.Status, win window, out string, rehearse bool) {
	fmt.Fprintf(w, "fleet     %d of %d messages done: %d copied, %d deleted, %d skipped, %d failed\n",
		st.Done, st.Sent, st.Copied, st.Deleted, st.Skipped, st.Failed)
	fmt.Fprintf(w, "window    %s: plan %s, then the fleet %s", seconds(win.total), seconds(win.plan), seconds(win.fleet))
	if win.verify > 0 {
		fmt.Fprintf(w, ", verify %s (%d keys)", seconds(win.verify), v.verified)
	}
	fmt.Fprintln(w)
	if rehearse {
		rate := ""
		if d := win.fleet + win.plan; st.DoneObjects > 0 && d > 0 {
			rate = fmt.Sprintf(" at %.0f keys/s", float64(st.DoneObjects)/d.Seconds())
		}
		fmt.Fprintf(w, "rehearsal the window would take about %s, plus the copies of what changes until the freeze%s\n", seconds(win.total), rate)
		if v.changedLive > 0 {
			fmt.Fprintf(w, "          %d keys changed while production was live (expected in a rehearsal)\n", v.changedLive)
		}
	}
	if v.clean() {
		fmt.Fprintln(w, "verdict   clean: every difference was copied or deleted as listed")
		return
	}
	fmt.Fprintf(w, "verdict   NOT CLEAN: %d keys not copied or deleted as listed\n", len(v.notRight))
	if v.why != "" {
		fmt.Fprintf(w, "          %s\n", v.why)
	}
	const show = 50
	for i, n := range v.notRight {
		if i == show {
			fmt.Fprintf(w, "          ... and %d more\n", len(v.notRight)-show)
			break
		}
		now := string(n.rec.Problem)
		if n.rec.Problem == plan.Match {
			now = "right now (" + n.rec.Reason + ")"
		}
		fmt.Fprintf(w, "  %s\t%s\tnow: %s\n", n.rec.Key, n.why, now)
	}
	if out != "" {
		fmt.Fprintf(w, "written   %s (planner plan --from-file %s --delete, once the cause is fixed)\n", out, out)
	} else {
		fmt.Fprintln(w, "          (--out FILE writes them for planner plan --from-file)")
	}
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// spill keeps each message body sent, one a line, in a temporary file.
type spill struct {
	mu  sync.Mutex
	f   *os.File
	buf *bufio.Writer
}

func newSpill() (*spill, error) {
	f, err := os.CreateTemp("", "s3clone-cutover-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("a temporary file for the plan's messages: %w", err)
	}
	return &spill{f: f, buf: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (s *spill) add(batch []plan.Body) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range batch {
		s.buf.Write(b.Data)
		if err := s.buf.WriteByte('\n'); err != nil {
			return fmt.Errorf("write %s: %w", s.f.Name(), err)
		}
	}
	return nil
}

func (s *spill) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.buf.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", s.f.Name(), err)
	}
	return nil
}

// each calls fn with every message whose sequence number is in seqs.
func (s *spill) each(seqs []int64, fn func(*plan.Batch)) error {
	want := map[int64]bool{}
	for _, n := range seqs {
		want[n] = true
	}
	if err := s.flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(s.f)
	sc.Buffer(make([]byte, 0, 64<<10), plan.MaxBodyBytes+1)
	for sc.Scan() {
		b, err := plan.Decode(sc.Bytes())
		if err != nil {
			return fmt.Errorf("read back %s: %w", s.f.Name(), err)
		}
		if want[b.Seq] {
			fn(b)
		}
	}
	return sc.Err()
}

func (s *spill) remove() {
	s.f.Close()
	os.Remove(s.f.Name())
}
