package cutover

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/copier"
	"github.com/s3clone/s3clone/internal/job"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// notRight is a key the cutover did not copy or delete as listed, and
// what its pair is now (rec; Match when it is right after all).
type notRight struct {
	rec       plan.Record
	why       string // what happened to it in the window
	unchecked bool   // not looked at again: rec is what the plan listed
	unread    string // why the pair could not be looked at again: rec is what the fleet or the plan recorded
}

// verdict is what a cutover concludes.
type verdict struct {
	notRight []notRight
	// changedLive counts keys a rehearsal saw change while it ran (they do
	// not fail a rehearsal).
	changedLive int
	// unchecked counts keys not looked at again (past recheckMax): their
	// records are what the plan listed.
	unchecked int
	verified  int64  // keys compared by --verify
	why       string // why the wait ended early, if it did
	// asOf is the time the source was judged as of (--as-of), zero for now.
	asOf time.Time
}

// clean reports a verdict with no key not right and no early end.
func (v *verdict) clean() bool { return len(v.notRight) == 0 && v.why == "" }

// writeRecon encodes the keys not right (those found right after all left
// out) as a reconciliation file, once: written to --out through rec (nil
// buffer: no --out), and returned for the ledger.
func (v *verdict) writeRecon(rec *plan.RecordFile) ([]byte, error) {
	var recon bytes.Buffer
	enc := json.NewEncoder(&recon)
	enc.SetEscapeHTML(false) // as --out's records are written
	for _, n := range v.notRight {
		if n.rec.Problem != plan.Match {
			if err := enc.Encode(n.rec); err != nil {
				return nil, err
			}
		}
	}
	if err := rec.WriteLines(recon.Bytes()); err != nil {
		return nil, err
	}
	return recon.Bytes(), rec.Commit()
}

// recheckMax bounds how many keys a verdict looks at again (two or three
// HEADs each): a cutover cut short with a million keys to go names them all
// from what the plan listed, at once, rather than after minutes of HEADs.
const recheckMax = 2000

// pending is a key not done as listed: the record of what the plan (or the
// worker) knew of it, used when the pair cannot be looked at again.
type pending struct {
	srcKey, dstKey, why string
	listed              plan.Record
}

// judge reads what the fleet did not do as listed (failed and skipped keys,
// and the keys of sent messages without an entry) and looks at each pair
// again now: the destination's object now, and the source's now or, as of
// a time (s.AsOf), its version then, so that a key written since is not
// taken for one that changed after it was listed. A rehearsal lets keys
// that changed or vanished while production was live pass, counting them.
func judge(ctx context.Context, s *job.Job, reader *ledger.Reader, spill *spill, rehearse bool, log zerolog.Logger) (*verdict, error) {
	v := &verdict{}
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
				todo = append(todo, pending{s.SourceKey(f.Key), f.Key, "delete " + why, e.Record(f)})
			} else {
				todo = append(todo, pending{f.Key, s.DestKey(f.Key), why, e.Record(f)})
			}
		}
	}
	err = spill.unfinished(reader.Tally(), func(b *plan.Batch) {
		why := fmt.Sprintf("not finished (message %d)", b.Seq)
		for _, e := range b.Entries {
			obj := &plan.ObjectInfo{Key: e.Key, Size: e.Size, ETag: e.ETag, StorageClass: e.StorageClass}
			if b.Op == plan.OpDelete {
				rel := strings.TrimPrefix(e.Key, s.Dst.Prefix)
				todo = append(todo, pending{s.SourceKey(e.Key), e.Key, "delete " + why, plan.Record{Key: rel, Problem: plan.Failed, Reason: why, Dest: obj}})
			} else {
				rel := strings.TrimPrefix(e.Key, s.Src.Prefix)
				todo = append(todo, pending{e.Key, s.DestKey(e.Key), why, plan.Record{Key: rel, Problem: plan.Failed, Reason: why, Source: obj}})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if len(todo) > recheckMax {
		log.Warn().Int("keys", len(todo)).Int("looked_at", recheckMax).Msg("many keys not done: looking again at the first ones only; the rest are named as the plan listed them")
	}
	v.notRight = make([]notRight, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(plan.Deciders)
	for i, p := range todo {
		if i >= recheckMax {
			v.notRight[i] = notRight{rec: p.listed, why: p.why, unchecked: true}
			v.unchecked++
			continue
		}
		g.Go(func() error {
			rec, err := s.Comparer().Recheck(gctx, strings.TrimPrefix(p.srcKey, s.Src.Prefix), p.srcKey, p.dstKey)
			if err != nil {
				return err
			}
			if rec.Problem == plan.Unknown {
				// Not readable now: enqueue it as the plan knew it, which
				// plan --from-file takes, pinned to the ETag listed.
				p.listed.Reason += "; now: " + rec.Reason
				v.notRight[i] = notRight{rec: p.listed, why: p.why, unread: rec.Reason}
				return nil
			}
			v.notRight[i] = notRight{rec: rec, why: p.why}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("look again at the keys not done: %w", err)
	}
	slices.SortFunc(v.notRight, func(a, b notRight) int { return strings.Compare(a.rec.Key, b.rec.Key) })
	return v, nil
}

// print writes the verdict and the window's timings.
func (v *verdict) print(w io.Writer, st ledger.Status, win window, out string, rehearse, mirror bool) {
	fmt.Fprintf(w, "fleet     %d of %d messages done: %d copied, %d deleted, %d skipped, %d failed\n",
		st.Done, st.Sent, st.Copied, st.Deleted, st.Skipped, st.Failed)
	fmt.Fprintf(w, "window    %s: plan %s, then the fleet %s", cli.Seconds(win.total), cli.Seconds(win.plan), cli.Seconds(win.fleet))
	if win.verify > 0 {
		fmt.Fprintf(w, ", verify %s (%d keys)", cli.Seconds(win.verify), v.verified)
	}
	fmt.Fprintln(w)
	if rehearse {
		fmt.Fprintf(w, "rehearsal this delta (%d keys) took %s; the window at the freeze takes about the plan's %s\n", st.DoneObjects, cli.Seconds(win.total), cli.Seconds(win.plan))
		fmt.Fprintln(w, "          (listing and comparing both buckets), plus the fleet's time for what changes until then")
		if v.changedLive > 0 {
			fmt.Fprintf(w, "          %d keys changed while production was live (expected in a rehearsal)\n", v.changedLive)
		}
	}
	if !v.printKeys(w, "every difference was copied or deleted as listed", "not copied or deleted as listed", func(n notRight) string {
		now := string(n.rec.Problem)
		switch {
		case n.rec.Problem == plan.Match:
			now = "right now (" + n.rec.Reason + ")"
		case n.unchecked:
			now = "not looked at again"
		case n.unread != "":
			now = "cannot tell (" + n.unread + ")"
		}
		return n.why + "\tnow: " + now
	}) {
		return
	}
	if v.unchecked > 0 {
		fmt.Fprintf(w, "          %d of them not looked at again: their records are as the plan listed them\n", v.unchecked)
	}
	delete := ""
	if mirror {
		delete = " --delete"
	}
	if !v.asOf.IsZero() {
		// A reconciliation file names keys, not versions: plan --from-file
		// would copy them as they are now.
		fmt.Fprintf(w, "          once the cause is fixed, run planner cutover --as-of %s again: it copies the versions then of what still differs\n", v.asOf.UTC().Format(time.RFC3339Nano))
		if out != "" {
			fmt.Fprintf(w, "written   %s (the keys, as of now: not for plan --from-file with --as-of)\n", out)
		}
		return
	}
	if out != "" {
		fmt.Fprintf(w, "written   %s (planner plan --from-file %s%s, once the cause is fixed)\n", out, out, delete)
	} else {
		fmt.Fprintln(w, "          (--out FILE writes them for planner plan --from-file)")
	}
}

// printKeys writes the verdict's line: clean, or NOT CLEAN with why and the
// first 50 keys not right, each with what line says of it. It reports
// whether the verdict is not clean (what follows it is for those keys).
func (v *verdict) printKeys(w io.Writer, clean, notDone string, line func(notRight) string) bool {
	if v.clean() {
		fmt.Fprintf(w, "verdict   clean: %s\n", clean)
		return false
	}
	fmt.Fprintf(w, "verdict   NOT CLEAN: %d keys %s\n", len(v.notRight), notDone)
	if v.why != "" {
		fmt.Fprintf(w, "          %s\n", v.why)
	}
	const show = 50
	for i, n := range v.notRight {
		if i == show {
			fmt.Fprintf(w, "          ... and %d more\n", len(v.notRight)-show)
			break
		}
		fmt.Fprintf(w, "  %s\t%s\n", n.rec.Key, line(n))
	}
	return true
}
