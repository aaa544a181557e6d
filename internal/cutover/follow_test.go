package cutover

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"

	"github.com/s3clone/s3clone/internal/cli"
	"github.com/s3clone/s3clone/internal/follow"
	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// accessDenied is S3's refusal.
var accessDenied = &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}

func TestWhyClause(t *testing.T) {
	t.Parallel()
	if got := whyClause(""); got != "" {
		t.Errorf("whyClause(\"\") = %q", got)
	}
	if got := whyClause("the bulk run R is not done"); got != "; the bulk run R is not done" {
		t.Errorf("whyClause = %q", got)
	}
}

func TestSameAsFollow(t *testing.T) {
	t.Parallel()
	run := &ledger.Run{ID: "F", Source: testSrc, Dest: testDst, Queue: "https://sqs.example/1/work"}
	for _, tc := range []struct {
		name                string
		source, dest, queue string
		want                string // "" for none
	}{
		{"nothing given", "", "", "", ""},
		{"the same", "s3://src/a/", "s3://dst/b/", "https://sqs.example/1/work", ""},
		{"another source", "s3://src/other/", "", "", "--source s3://src/other/ is not follow F's (s3://src/a/): leave it out, --follow takes the follow's"},
		{"another dest", "", "s3://elsewhere/b/", "", "--dest s3://elsewhere/b/ is not follow F's (s3://dst/b/): leave it out, --follow takes the follow's"},
		{"not a location", "src", "", "", "--source: "},
		{"another queue", "", "", "https://sqs.example/1/other", "--queue-url https://sqs.example/1/other is not follow F's (https://sqs.example/1/work): leave it out, --follow takes the follow's"},
	} {
		o := &Options{Follow: "F", QueueURL: tc.queue}
		o.Job.RawSource, o.Job.RawDest = tc.source, tc.dest
		err := sameAsFollow(o, run)
		var usage *cli.UsageError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.As(err, &usage) || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want a usage error saying %q", tc.name, err, tc.want)
		}
	}
}

// fakeBook is a ledger's runs, some unreadable.
type fakeBook struct {
	ids     []string
	runs    map[string]*ledger.Run
	listErr error
}

func (b *fakeBook) Runs(context.Context) ([]string, error) { return b.ids, b.listErr }

func (b *fakeBook) Run(_ context.Context, id string) (*ledger.Run, error) {
	if r, ok := b.runs[id]; ok {
		return r, nil
	}
	return nil, ledger.ErrNotFound
}

func TestLatestFollow(t *testing.T) {
	t.Parallel()
	book := &fakeBook{ids: []string{"1", "2", "3", "4", "5"}, runs: map[string]*ledger.Run{
		"1": {Mode: ledger.ModeFollow}, "2": {Mode: ledger.ModeDiff}, "3": {Mode: ledger.ModeFollow},
		"4": {Mode: ledger.ModeCutover}, // 5: unreadable (being written)
	}}
	if id, err := latestFollow(t.Context(), book); id != "3" || err != nil {
		t.Errorf("latest follow %q, %v; want 3", id, err)
	}
	none := &fakeBook{ids: []string{"2", "4"}, runs: book.runs}
	if id, err := latestFollow(t.Context(), none); id != "" || err != nil {
		t.Errorf("with no follow: %q, %v", id, err)
	}
	denied := &fakeBook{listErr: ledger.ErrDenied}
	if _, err := latestFollow(t.Context(), denied); !errors.Is(err, ledger.ErrDenied) {
		t.Errorf("an unlistable ledger: %v", err)
	}
}

// TestFollowed: the follow a cutover relies on must be there, running and
// alive; the ledger's refusals name the grant.
func TestFollowed(t *testing.T) {
	t.Parallel()
	now := time.Now()
	mem := newMemS3()
	store := ledger.New(mem, "ledger", "s3clone/")
	alive := ledger.Run{ID: newID(now.Add(-3 * time.Hour)), Mode: ledger.ModeFollow}
	stopped := ledger.Run{ID: newID(now.Add(-2 * time.Hour)), Mode: ledger.ModeFollow}
	silent := ledger.Run{ID: newID(now.Add(-time.Hour)), Mode: ledger.ModeFollow}
	for _, r := range []ledger.Run{alive, stopped, silent} {
		writeRun(t, store, r, 0)
	}
	for _, f := range []ledger.Follow{
		{Run: alive.ID, Alive: now}, {Run: stopped.ID, Alive: now, Stopped: now.Add(-time.Minute)}, {Run: silent.ID, Alive: now.Add(-time.Hour)},
	} {
		if err := store.PutFollow(t.Context(), f); err != nil {
			t.Fatal(err)
		}
	}
	o := &Options{Follow: alive.ID}
	if fr, run, err := o.followed(t.Context(), store); err != nil || fr.Run != alive.ID || run.ID != alive.ID {
		t.Errorf("the follow alive: %v", err)
	}
	for _, tc := range []struct{ follow, want string }{
		{"latest", "--follow " + silent.ID + ": that follow last wrote its record 1h0m0s ago (every 5 s while it runs): is it running?"},
		{stopped.ID, "--follow " + stopped.ID + ": that follow stopped at "},
		{"20200101T000000Z-00000000", "--follow 20200101T000000Z-00000000: the ledger s3://ledger/s3clone/ has no follow run of that id"},
	} {
		o := &Options{Follow: tc.follow}
		_, _, err := o.followed(t.Context(), store)
		var usage *cli.UsageError
		if !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("--follow %s: %v, want a usage error saying %q", tc.follow, err, tc.want)
		}
	}

	empty := testLedger()
	if _, _, err := (&Options{Follow: "latest"}).followed(t.Context(), empty); err == nil ||
		err.Error() != "--follow latest: the ledger s3://ledger/s3clone/ holds no follow run (start planner follow first)" {
		t.Errorf("latest of an empty ledger: %v", err)
	}
	mem.errFn = func(op, key string) error {
		if op == "ListObjectsV2" || strings.HasSuffix(key, "/follow.json") {
			return accessDenied
		}
		return nil
	}
	for _, id := range []string{"latest", alive.ID} {
		_, _, err := (&Options{Follow: id}).followed(t.Context(), store)
		if err == nil || !strings.HasPrefix(err.Error(), "--ledger s3://ledger/s3clone/: access denied: grant s3:") {
			t.Errorf("--follow %s of a ledger that refuses: %v, want the grant", id, err)
		}
	}
}

func TestCheckBulk(t *testing.T) {
	t.Parallel()
	now := time.Now()
	fol := &ledger.Run{ID: newID(now), Mode: ledger.ModeFollow, Source: testSrc, Dest: testDst}

	t.Run("none", func(t *testing.T) {
		t.Parallel()
		store := testLedger()
		writeRun(t, store, ledger.Run{ID: newID(now.Add(-time.Hour)), Mode: ledger.ModeDiff, Source: testSrc, Dest: plan.Location{Bucket: "other"}}, 1, copied(1))
		c := checkBulk(t.Context(), store, fol, zerolog.Nop())
		if c.why != "the ledger holds no bulk run (planner plan) of s3://src/a/ to s3://dst/b/: follow alone copies only what changed" {
			t.Errorf("why %q", c.why)
		}
	})
	t.Run("chain", func(t *testing.T) {
		t.Parallel()
		store := testLedger()
		old := ledger.Run{ID: newID(now.Add(-4 * time.Hour)), Mode: ledger.ModeFull}
		base := ledger.Run{ID: newID(now.Add(-3 * time.Hour)), Mode: ledger.ModeDiff}
		recon := ledger.Run{ID: newID(now.Add(-2 * time.Hour)), Mode: ledger.ModeFromFile}
		writeRun(t, store, old, 1, failed(1, "a/old", "AccessDenied")) // before the base: not judged
		writeRun(t, store, base, 3, copied(1), failed(2, "a/moved", "changed"), failed(3, "a/locked", "AccessDenied"))
		writeRun(t, store, recon, 1, failed(1, "a/again", "NoSuchKey"))
		c := checkBulk(t.Context(), store, fol, zerolog.Nop())
		if c.why != "" {
			t.Fatalf("why %q", c.why)
		}
		var got []string
		for _, n := range c.notRight {
			got = append(got, n.rec.Key+" "+n.why)
		}
		want := []string{"again bulk run " + recon.ID + ": NoSuchKey", "locked bulk run " + base.ID + ": AccessDenied"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("not right %q, want %q (a key that changed is follow's)", got, want)
		}
		if c.rate <= 0 {
			t.Errorf("rate %v: the base run's", c.rate)
		}
	})
	t.Run("not done", func(t *testing.T) {
		t.Parallel()
		store := testLedger()
		base := ledger.Run{ID: newID(now.Add(-3 * time.Hour)), Mode: ledger.ModeFull}
		writeRun(t, store, base, 2, copied(1))
		recon := ledger.Run{ID: newID(now.Add(-2 * time.Hour)), Mode: ledger.ModeFromFile}
		writeRun(t, store, recon, 1, copied(1))
		c := checkBulk(t.Context(), store, fol, zerolog.Nop())
		if want := "the bulk run " + base.ID + " is not done: 1 of 2 messages (planner status --run-id " + base.ID + ")"; c.why != want {
			t.Errorf("why %q, want %q (a from-file run after does not mend the base)", c.why, want)
		}
	})
	t.Run("unlistable", func(t *testing.T) {
		t.Parallel()
		mem := newMemS3()
		mem.errFn = func(op, _ string) error {
			if op == "ListObjectsV2" {
				return errors.New("connection reset")
			}
			return nil
		}
		c := checkBulk(t.Context(), ledger.New(mem, "ledger", ""), fol, zerolog.Nop())
		if !strings.HasPrefix(c.why, "cannot list the ledger's runs to find the bulk copy: ") || !strings.Contains(c.why, "connection reset") {
			t.Errorf("why %q", c.why)
		}
	})
}

// cutFixture is a cutover --follow with its ledger and source in memory:
// a bulk copy done, a follow anchored and alive, and a fake follow that
// closes the cutover's mark at seq (with late events) once the marker
// object is written, unless seq is 0.
type cutFixture struct {
	store  *ledger.Store
	src    *memS3
	follow ledger.Run
	cut    *followCut
	out    strings.Builder
}

func newCutFixture(t *testing.T, seq int64, late ...ledger.Late) *cutFixture {
	t.Helper()
	now := time.Now()
	f := &cutFixture{store: testLedger(), src: newMemS3()}
	writeRun(t, f.store, ledger.Run{ID: newID(now.Add(-2 * time.Hour)), Mode: ledger.ModeDiff}, 1, copied(1))
	f.follow = ledger.Run{ID: newID(now.Add(-time.Hour)), Mode: ledger.ModeFollow, Source: testSrc, Dest: testDst, Queue: "https://sqs.example/1/work"}
	writeRun(t, f.store, f.follow, 0)
	record := &ledger.Follow{Run: f.follow.ID, Anchored: true, Alive: now}
	rec, err := plan.NewRecordFile("")
	if err != nil {
		t.Fatal(err)
	}
	f.cut = &followCut{
		id: newID(now), mode: "cutover", markWait: 5 * time.Second, started: now,
		store: f.store, follow: &f.follow, record: record, source: f.src, depth: idleQueue,
		rec: rec, pace: testPace(), log: zerolog.Nop(),
	}
	if seq > 0 {
		f.src.putFn = func(key string) {
			id, ok := strings.CutPrefix(key, follow.MarksPrefix)
			if !ok {
				return
			}
			m := ledger.Mark{Run: f.follow.ID, ID: id, Key: key, Seen: time.Now(), Closed: time.Now(), Settle: time.Second, Seq: seq, Late: late}
			if err := f.store.PutMark(context.Background(), m); err != nil {
				t.Error(err)
			}
		}
	}
	return f
}

// work records entries of the follow's work messages.
func (f *cutFixture) work(t *testing.T, entries ...ledger.Entry) {
	writeEntries(t, f.store, f.follow, entries...)
}

func (f *cutFixture) run(t *testing.T) error {
	t.Helper()
	return f.cut.run(bounded(t), &f.out)
}

// verdict is the verdict the cutover recorded in the ledger.
func (f *cutFixture) verdict(t *testing.T) *ledger.Verdict {
	t.Helper()
	v, err := f.store.Verdict(t.Context(), f.cut.id)
	if err != nil {
		t.Fatalf("the ledger's verdict: %v", err)
	}
	return v
}

// markerLeft checks the marker object was written, and deleted after.
func (f *cutFixture) markerLeft(t *testing.T, id string) {
	t.Helper()
	if written, now := f.src.has(follow.MarkKey(id)); !written || now {
		t.Errorf("the marker %s: written %v, still there %v; want written, then deleted", follow.MarkKey(id), written, now)
	}
}

func TestFollowCutClean(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 2)
	f.work(t, copied(1), copied(2), failed(3, "a/after", "AccessDenied")) // 3 is after the mark
	if err := f.run(t); err != nil {
		t.Fatalf("%v\n%s", err, f.out.String())
	}
	f.markerLeft(t, f.cut.id)
	out := f.out.String()
	for _, want := range []string{
		"mark      seen by follow ", "closed after waiting 1.00s for late events: messages 1 to 2 hold every change before it\n",
		"verdict   clean: every change up to the freeze was copied or deleted as seen\n",
		"recorded  the verdict in s3://ledger/s3clone/ (run " + f.cut.id + ")\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printed\n%s\nwithout %q", out, want)
		}
	}
	if v := f.verdict(t); !v.Clean || v.Mode != "cutover" || v.NotRight != 0 {
		t.Errorf("ledger verdict %+v", v)
	}
}

// TestFollowCutMarkNotSeen: a follow that never closes the mark ends the
// window after the mark's wait, not clean, saying why.
func TestFollowCutMarkNotSeen(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 0)
	f.cut.markWait = 100 * time.Millisecond
	started := time.Now()
	err := f.run(t)
	if took := time.Since(started); took < 100*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %s, want the mark's wait of 100ms", took)
	}
	why := "follow " + f.follow.ID + " did not see the mark within "
	tail := " (context deadline exceeded): is it running, and does the bucket still send its events?"
	if !errors.Is(err, cli.ErrMismatch) || !strings.Contains(err.Error(), "cutover "+f.cut.id+": 0 keys not copied or deleted as seen; "+why) ||
		!strings.HasSuffix(err.Error(), tail) || cli.ExitCode(err, io.Discard) != cli.ExitFailed {
		t.Errorf("err %v", err)
	}
	f.markerLeft(t, f.cut.id)
	if out := f.out.String(); !strings.Contains(out, "verdict   NOT CLEAN: 0 keys not copied or deleted as seen\n          "+why) {
		t.Errorf("printed\n%s", out)
	}
	if v := f.verdict(t); v.Clean || !strings.HasPrefix(v.Why, why) || !strings.HasSuffix(v.Why, tail) {
		t.Errorf("ledger verdict %+v", v)
	}
}

// TestFollowCutWaitsForLateEvents: events dated before the mark that came
// after it closed are waited for too, and their failures named; failures
// after them are not the window's.
func TestFollowCutWaitsForLateEvents(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 1, ledger.Late{Key: "a/late", Seq: 3})
	f.work(t, copied(1), copied(2), failed(4, "a/later", "AccessDenied"))
	j, err := f.store.OpenJournal(t.Context(), "worker-2", "test")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond) // the fleet finishes the late event's work while the cutover waits
		e := failed(3, "a/late", "AccessDenied")
		e.Run, e.Source, e.Dest, e.Started, e.Finished = f.follow.ID, f.follow.Source, f.follow.Dest, time.Now(), time.Now()
		if err := j.Record(context.Background(), &e); err != nil {
			t.Error(err)
		}
	}()
	err = f.run(t)
	if !errors.Is(err, cli.ErrMismatch) || !strings.HasSuffix(err.Error(), ": 1 keys not copied or deleted as seen") {
		t.Errorf("err %v", err)
	}
	out := f.out.String()
	for _, want := range []string{
		"late      1 events dated before the freeze came after the mark closed",
		"  late\tfollow: AccessDenied\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printed\n%s\nwithout %q", out, want)
		}
	}
	if strings.Contains(out, "later") {
		t.Errorf("printed a failure after the mark:\n%s", out)
	}
}

func TestFollowCutTimesOut(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 2)
	f.cut.timeout = 200 * time.Millisecond
	f.work(t, copied(1))
	err := f.run(t)
	if !errors.Is(err, cli.ErrMismatch) || !strings.Contains(err.Error(), "; gave up waiting after --timeout 200ms") {
		t.Errorf("err %v", err)
	}
}

func TestFollowCutNotAnchored(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 1)
	f.cut.record.Anchored = false
	err := f.run(t)
	if !errors.Is(err, cli.ErrMismatch) || !strings.Contains(err.Error(), "follow "+f.follow.ID+" is not anchored yet") {
		t.Errorf("err %v", err)
	}
	if written, _ := f.src.has(follow.MarkKey(f.cut.id)); written {
		t.Error("marked the freeze for a verdict that cannot be clean")
	}
	if v := f.verdict(t); v.Clean || !strings.Contains(v.Why, "is not anchored yet") {
		t.Errorf("ledger verdict %+v", v)
	}
}

// TestFollowCutWithoutABulkCopy: a follow alone is no clone; the window
// says so at once, without waiting for the mark.
func TestFollowCutWithoutABulkCopy(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 0)
	f.cut.markWait = time.Hour
	f.cut.follow.Dest = plan.Location{Bucket: "another"} // no bulk run of this pair
	err := f.run(t)
	if !errors.Is(err, cli.ErrMismatch) || !strings.Contains(err.Error(), "; the ledger holds no bulk run (planner plan) of s3://src/a/ to s3://another/") {
		t.Errorf("err %v", err)
	}
	f.markerLeft(t, f.cut.id)
}

// TestFollowCutRehearsal: a rehearsal's mark says so, for follow not to
// hold at it.
func TestFollowCutRehearsal(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 1)
	f.cut.rehearse, f.cut.mode = true, "rehearsal"
	f.work(t, copied(1))
	if err := f.run(t); err != nil {
		t.Fatal(err)
	}
	f.markerLeft(t, follow.RehearsalPrefix+f.cut.id)
	if v := f.verdict(t); !v.Clean || v.Mode != "rehearsal" {
		t.Errorf("ledger verdict %+v", v)
	}
}

func TestFollowCutMarkerRefused(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 1)
	f.src.errFn = func(op, _ string) error {
		if op == "PutObject" {
			return accessDenied
		}
		return nil
	}
	err := f.run(t)
	var usage *cli.UsageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), ": grant s3:PutObject and s3:DeleteObject on arn:aws:s3:::src/.s3clone-marks/* to the cutover (the marker is excluded from the clone)") {
		t.Errorf("err %v", err)
	}
}

// TestFollowCutVerifies: --verify runs once the verdict is clean, and what
// it finds makes it not.
func TestFollowCutVerifies(t *testing.T) {
	t.Parallel()
	f := newCutFixture(t, 1)
	f.work(t, copied(1))
	calls := 0
	f.cut.verify = func(ctx context.Context, v *verdict) error {
		calls++
		v.notRight = append(v.notRight, notRight{rec: plan.Record{Key: "x", Problem: plan.Missing}, why: "verify: missing (in the source only)"})
		v.verified = 3
		return nil
	}
	err := f.run(t)
	if calls != 1 || !errors.Is(err, cli.ErrMismatch) || !strings.Contains(f.out.String(), "  x\tverify: missing (in the source only)\n") {
		t.Errorf("verify called %d times, err %v, printed\n%s", calls, err, f.out.String())
	}
	if v := f.verdict(t); v.Verified != 3 || v.NotRight != 1 {
		t.Errorf("ledger verdict %+v", v)
	}

	g := newCutFixture(t, 1)
	g.work(t, copied(1))
	g.cut.verify = func(context.Context, *verdict) error { return errors.New("list: boom") }
	if err := g.run(t); err == nil || err.Error() != "cutover "+g.cut.id+": verify: list: boom" {
		t.Errorf("a failed verify: %v", err)
	}
}
