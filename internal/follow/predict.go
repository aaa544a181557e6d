package follow

import (
	"time"

	"github.com/s3clone/s3clone/internal/ledger"
	"github.com/s3clone/s3clone/internal/plan"
)

// Prediction is how long a cutover --follow would take if the freeze were
// now, from what follow and the fleet measured, and what it would ask of
// S3 and SQS.
type Prediction struct {
	// Window is freeze to verdict: the mark's event reaching follow (Lag),
	// the settle time and a round of receives after it, then the
	// fleet's tail: the keys still to do (Keys) at the fleet's rate.
	Window time.Duration `json:"window_ns"`
	Lag    time.Duration `json:"lag_ns"`
	Settle time.Duration `json:"settle_ns"`
	Tail   time.Duration `json:"tail_ns"`
	// Known is false when the fleet has no rate yet (no work finished in
	// the last minute, nor before): the tail is then unknown.
	Known bool    `json:"known"`
	Keys  float64 `json:"keys"`
	// ChangeRate is the keys follow sends a second, FleetRate the objects
	// the fleet finishes a second.
	ChangeRate float64 `json:"change_rate"`
	FleetRate  float64 `json:"fleet_rate"`
	// Requests and Cost are the window's; HourlyCost what following costs
	// an hour at ChangeRate.
	Requests   int64   `json:"requests"`
	Cost       float64 `json:"cost_usd"`
	HourlyCost float64 `json:"hourly_cost_usd"`
}

// Per changed key, a sync reads the source (HeadObject), copies it
// (CopyObject) and reads it again (the after-check): two GET-class
// requests and one PUT-class; SQS carries its event and its work (a
// receive and a delete for ten events, a send, receive and delete for a
// message of many keys): about a quarter of a request per key.
const (
	getsPerKey = 2
	putsPerKey = 1
	sqsPerKey  = 0.25
	sqsPrice   = 0.40 / 1e6 // SQS standard, per request
	// A cutover reads the ledger every 0.2 s (a LIST and a GET or two).
	ledgerReadsPerSecond = 10
)

// Predict says how long the window would take now, from follow's record
// (the keys it sent), the status of its run (the keys done), the fleet's
// rate and its flush interval. The rate is the bulk copy's, when known
// (fleetRate > 0): follow's own work goes at the rate of the changes, not
// at what the fleet can do.
func Predict(f ledger.Follow, st ledger.Status, fleetRate float64) Prediction {
	flush := f.Flush
	if flush <= 0 {
		flush = DefaultFlush
	}
	p := Prediction{Lag: f.Lag, Settle: f.Settle}
	if span := f.Alive.Sub(f.Started).Seconds(); span > 0 {
		p.ChangeRate = float64(f.Keys) / span
	}
	p.FleetRate = fleetRate
	if p.FleetRate <= 0 {
		p.FleetRate = max(st.RecentRate, st.Rate)
	}
	// Follow's own count of keys sent, less every entry's keys: the run's
	// sent records need not be read (a follow's grow every second).
	outstanding := float64(max(f.Keys-(st.Copied+st.Deleted+st.Skipped+st.Failed), 0))
	// Keys changed while their events were on the way, and those waiting
	// for a flush, are in the window's work too.
	p.Keys = outstanding + p.ChangeRate*(f.Lag+flush).Seconds()
	if p.FleetRate > 0 {
		p.Known = true
		p.Tail = time.Duration(p.Keys / p.FleetRate * float64(time.Second))
	}
	// After the settle time, every receiver's receive under way ends and
	// one begun after comes back empty: up to two receive waits.
	p.Window = p.Lag + p.Settle + 2*receiveWait + p.Tail
	perKey := getsPerKey*plan.Prices.Get/1000 + putsPerKey*plan.Prices.Put["STANDARD"]/1000 + sqsPerKey*sqsPrice
	ledgerReads := p.Window.Seconds() * ledgerReadsPerSecond
	p.Requests = int64(p.Keys*(getsPerKey+putsPerKey+sqsPerKey) + ledgerReads + 2) // and the marker's PUT and DELETE
	p.Cost = p.Keys*perKey + ledgerReads*plan.Prices.List/1000 + plan.Prices.Put["STANDARD"]/1000
	p.HourlyCost = p.ChangeRate * 3600 * perKey
	return p
}
