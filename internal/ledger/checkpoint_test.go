package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
)

// TestCheckpointWritesAreConditional: a checkpoint in the ledger is
// written only over the one its planner last read or wrote, so a killed
// planner's late write cannot take back a newer planner's checkpoint, and
// two planners on one checkpoint stop rather than overwrite each other.
func TestCheckpointWritesAreConditional(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	old := store.Checkpoint("bulk")
	if data, err := old.Load(); err != nil || data != nil {
		t.Fatalf("a checkpoint never written: %q, %v", data, err)
	}
	if err := old.Save([]byte(`{"v":1,"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	// The killed planner's successor reads it and carries on.
	next := store.Checkpoint("bulk")
	if data, err := next.Load(); err != nil || string(data) != `{"v":1,"seq":1}` {
		t.Fatalf("the successor reads %q, %v", data, err)
	}
	if err := next.Save([]byte(`{"v":1,"seq":2}`)); err != nil {
		t.Fatal(err)
	}
	// The killed planner's last write lands late: refused.
	if err := old.Save([]byte(`{"v":1,"seq":1,"late":true}`)); !errors.Is(err, ledger.ErrCheckpointMoved) {
		t.Fatalf("a late write over a newer checkpoint: %v, want ErrCheckpointMoved", err)
	}
	if err := next.Save([]byte(`{"v":1,"seq":3}`)); err != nil {
		t.Fatalf("the successor's next write: %v", err)
	}
	if data, _ := store.Checkpoint("bulk").Load(); string(data) != `{"v":1,"seq":3}` {
		t.Fatalf("the checkpoint is %q, want the successor's last", data)
	}
	// Two fresh planners on one new checkpoint: the second first write is refused.
	a, b := store.Checkpoint("other"), store.Checkpoint("other")
	_, _ = a.Load()
	_, _ = b.Load()
	if err := a.Save([]byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Save([]byte(`{"v":1,"b":true}`)); !errors.Is(err, ledger.ErrCheckpointMoved) {
		t.Fatalf("a first write over a checkpoint another made meanwhile: %v, want ErrCheckpointMoved", err)
	}
	// The SDK's retry of a PUT that had landed meets 412 (its own write
	// moved the ETag): the checkpoint is what it sent, so it carries on.
	retried, landed := store.Checkpoint("retried"), store.Checkpoint("retried")
	if err := retried.Save([]byte(`{"v":1,"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	_, _ = landed.Load()
	if err := landed.Save([]byte(`{"v":1,"seq":2}`)); err != nil { // plays the first attempt, landed
		t.Fatal(err)
	}
	if err := retried.Save([]byte(`{"v":1,"seq":2}`)); err != nil {
		t.Fatalf("a retried write finding its own content: %v", err)
	}
	if err := retried.Save([]byte(`{"v":1,"seq":3}`)); err != nil {
		t.Fatalf("the next write after it: %v", err)
	}
	if err := ledger.CheckCheckpointName("../runs/x"); err == nil {
		t.Error("a checkpoint name that makes another key was taken")
	}
}

// TestFleetHoldWritesAreConditional: a hold is written only over the one
// read before the write, so two commands cannot both take the fleet, and
// FleetHolds lists those not released.
func TestFleetHoldWritesAreConditional(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	svc := "service/s3clone/workers"
	if h, etag, err := store.FleetHold(ctx, svc); err != nil || h != nil || etag != "" {
		t.Fatalf("no hold yet: %+v %q %v", h, etag, err)
	}
	etag, err := store.PutFleetHold(ctx, ledger.FleetHold{Service: svc, Holder: "planner status", ID: "a", Since: time.Now()}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutFleetHold(ctx, ledger.FleetHold{Service: svc, Holder: "planner fleet", ID: "b"}, ""); !errors.Is(err, ledger.ErrHoldMoved) {
		t.Errorf("a second first hold: %v, want ErrHoldMoved", err)
	}
	if _, err := store.PutFleetHold(ctx, ledger.FleetHold{Service: svc, Holder: "planner fleet", ID: "b"}, `"stale"`); !errors.Is(err, ledger.ErrHoldMoved) {
		t.Errorf("a hold over a stale ETag: %v, want ErrHoldMoved", err)
	}
	if holds, err := store.FleetHolds(ctx); err != nil || len(holds) != 1 || holds[0].ID != "a" {
		t.Fatalf("FleetHolds: %+v, %v", holds, err)
	}
	if _, err := store.PutFleetHold(ctx, ledger.FleetHold{Service: svc, Holder: "planner status", ID: "a", Released: time.Now()}, etag); err != nil {
		t.Fatalf("releasing over the ETag read: %v", err)
	}
	if holds, err := store.FleetHolds(ctx); err != nil || len(holds) != 0 {
		t.Fatalf("FleetHolds after the release: %+v, %v", holds, err)
	}
}
