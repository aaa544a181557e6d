package follow

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
)

func TestPredictAddsLagSettleAndTheFleetsTail(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	f := ledger.Follow{Started: t0, Alive: t0.Add(100 * time.Second), Keys: 500, Lag: 500 * time.Millisecond, Settle: time.Second, Flush: 200 * time.Millisecond}
	st := ledger.Status{Copied: 470, Deleted: 10, Rate: 5}
	p := Predict(f, st, 100)
	// 20 keys to do, and 5 keys/s for the lag and a flush: 23.5 keys at
	// 100/s is 0.235 s of tail; and two seconds for the receives after
	// the settle time.
	if !p.Known || p.ChangeRate != 5 || math.Abs(p.Keys-23.5) > 1e-9 || p.Tail != 235*time.Millisecond || p.Window != 3735*time.Millisecond {
		t.Fatalf("prediction %+v", p)
	}
	if p.Requests < 110 || p.Requests > 120 || p.Cost <= 0 || p.Cost > 0.001 {
		t.Errorf("requests %d, cost $%f", p.Requests, p.Cost)
	}
	// 5 keys/s an hour: 18,000 keys, each two GETs and a PUT.
	if want := 18000 * (2*0.0004/1000 + 0.005/1000 + 0.25*0.4/1e6); math.Abs(p.HourlyCost-want) > 1e-9 {
		t.Errorf("hourly cost $%f, want $%f", p.HourlyCost, want)
	}
	// Without the bulk copy's rate, follow's own; with none, the tail is
	// unknown, not zero.
	if p := Predict(f, st, 0); !p.Known || p.FleetRate != 5 {
		t.Errorf("follow's own rate: %+v", p)
	}
	st.Rate = 0
	if p := Predict(f, st, 0); p.Known || p.Tail != 0 {
		t.Errorf("no fleet rate: %+v", p)
	}
}

func TestMissingKeepsItsPlace(t *testing.T) {
	t.Parallel()
	tally := ledger.NewTally()
	for _, seq := range []int64{1, 2, 3, 5, 7} {
		tally.AddSummary(ledger.Summary{Key: fmt.Sprint(seq), Seq: seq, Copied: 1})
	}
	missing, through := Missing(tally, 1, 8, 10)
	if !slices.Equal(missing, []int64{4, 6, 8}) || through != 3 {
		t.Fatalf("Missing = %v, through %d", missing, through)
	}
	missing, through = Missing(tally, through+1, 8, 1)
	if !slices.Equal(missing, []int64{4}) || through != 3 {
		t.Errorf("at most one: %v, through %d", missing, through)
	}
	for _, seq := range []int64{4, 6, 8} {
		tally.AddSummary(ledger.Summary{Key: fmt.Sprint(seq), Seq: seq, Copied: 1})
	}
	if missing, through = Missing(tally, through+1, 8, 10); len(missing) != 0 || through != 8 {
		t.Errorf("all done: %v, through %d", missing, through)
	}
}
