package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
)

// TestPaceRecords: a prefix's rate is written only over the version read
// (two workers cannot both raise it), the listing gives every rate's
// version and every worker's presence with its time, and a presence
// deleted is gone from it.
func TestPaceRecords(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	key := store.RateKey("dst", "img/ä b/")
	if r, err := store.Rate(ctx, key); err != nil || r != nil {
		t.Fatalf("no rate yet: %+v, %v", r, err)
	}
	v1, err := store.PutRate(ctx, ledger.Rate{Bucket: "dst", Prefix: "img/ä b/", PerWorker: 200, SlowStart: true, At: time.Now(), By: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutRate(ctx, ledger.Rate{Bucket: "dst", Prefix: "img/ä b/", PerWorker: 400, By: "w2"}); !errors.Is(err, ledger.ErrRateMoved) {
		t.Errorf("a second first rate: %v, want ErrRateMoved", err)
	}
	v2, err := store.PutRate(ctx, ledger.Rate{Bucket: "dst", Prefix: "img/ä b/", PerWorker: 170, Cut: time.Now(), At: time.Now(), By: "w2", Version: v1})
	if err != nil {
		t.Fatalf("a cut over the version read: %v", err)
	}
	if _, err := store.PutRate(ctx, ledger.Rate{Bucket: "dst", Prefix: "img/ä b/", PerWorker: 400, By: "w3", Version: v1}); !errors.Is(err, ledger.ErrRateMoved) {
		t.Errorf("a raise over a version since changed: %v, want ErrRateMoved", err)
	}
	r, err := store.Rate(ctx, key)
	if err != nil || r == nil || r.PerWorker != 170 || r.By != "w2" || r.SlowStart || r.Version != v2 || r.Prefix != "img/ä b/" {
		t.Fatalf("rate read back: %+v, %v; want w2's 170 at version %s", r, err, v2)
	}
	if err := store.PutPresence(ctx, ledger.Presence{Worker: "w1/host:1", At: time.Now(), Waiting: 2,
		Prefixes: []ledger.PrefixRate{{Bucket: "dst", Prefix: "img/", Allowed: 85, Sent: 400, Throttled: 4, Seconds: 5}}}); err != nil {
		t.Fatal(err)
	}
	if err := store.PutPresence(ctx, ledger.Presence{Worker: "w2", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	view, err := store.Pace(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(view.Rates) != 1 || view.Rates[0].Key != key || view.Rates[0].Version != v2 {
		t.Errorf("rates listed %+v, want %s at %s", view.Rates, key, v2)
	}
	for _, w := range []string{"w1/host:1", "w2"} {
		if at, ok := view.Workers[w]; !ok || time.Since(at) > time.Minute {
			t.Errorf("worker %s listed at %v (%v), want just now", w, at, ok)
		}
	}
	if err := store.DeletePresence(ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	ps, err := store.Presences(ctx, time.Minute)
	if err != nil || len(ps) != 1 || ps[0].Worker != "w1/host:1" || ps[0].Waiting != 2 || len(ps[0].Prefixes) != 1 || ps[0].Prefixes[0].Throttled != 4 {
		t.Fatalf("presences after w2 left: %+v, %v", ps, err)
	}
}
