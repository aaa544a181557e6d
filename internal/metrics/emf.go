package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Namespace is the CloudWatch namespace of the EMF records.
const Namespace = "s3clone"

// EMF dimensions: every record carries the fleet's name; failures carry
// their reason as well.
const (
	DimFleet  = "Fleet"
	DimReason = "Reason"
)

// emfMetric is one CloudWatch metric and the Prometheus series it is read
// from. A counter is sent as its increase since the last record (so that
// CloudWatch's Sum over a period is the fleet's count in it); a gauge as its
// value now (Sum over the fleet's workers).
type emfMetric struct {
	Name, Unit, from string
	counter          bool
}

// emfMetrics are the metrics in each record, besides Workers (see Run) and
// Failures (one record per reason that had some).
var emfMetrics = []emfMetric{
	{"Copies", "Count", "s3clone_worker_objects_copied_total", true},
	{"Bytes", "Bytes", "s3clone_worker_bytes_copied_total", true},
	{"Deletes", "Count", "s3clone_worker_objects_deleted_total", true},
	{"Messages", "Count", "s3clone_worker_messages_done_total", true},
	{"MessagesRetried", "Count", "s3clone_worker_messages_retried_total", true},
	{"Throttles", "Count", "s3clone_worker_throttles_total", true},
	{"Writes", "Count", "s3clone_worker_writes_total", true},
	{"WritesThrottled", "Count", "s3clone_worker_writes_throttled_total", true},
	{"RateCuts", "Count", "s3clone_worker_rate_cuts_total", true},
	{"LedgerErrors", "Count", "s3clone_worker_ledger_errors_total", true},
	{"CopiesInFlight", "Count", "s3clone_worker_copies_in_flight", false},
	{"ConcurrencyLimit", "Count", "s3clone_worker_concurrency_limit", false},
	{"KeysHeld", "Count", "s3clone_worker_keys_held", false},
	{"HotPrefixRate", "Count/Second", "s3clone_worker_hot_prefix_share", false},
	{"KeysWaiting", "Count", "s3clone_worker_keys_waiting", false},
	{"LongestWait", "Seconds", "s3clone_worker_longest_wait_seconds", false},
}

const failuresFrom = "s3clone_worker_failures_total"

// EMF writes a worker's metrics as CloudWatch Embedded Metric Format
// records, one JSON line each: on ECS the awslogs driver sends the
// container's output to CloudWatch Logs, which turns the records into
// metrics with no agent or sidecar. It reads the same registry /metrics
// serves, so the two never disagree. Not safe for concurrent use; Run
// writes from one goroutine.
type EMF struct {
	w      io.Writer
	worker *Worker
	fleet  string
	id     string
	now    func() time.Time
	sent   map[string]float64 // counters' values at the last record
	share  float64            // Workers in a periodic record: the interval in minutes
}

// NewEMF writes m's metrics to w with the dimension Fleet=fleet; id, the
// worker's name, goes in each record as a property (searchable in Logs
// Insights, not a dimension: one metric per worker would cost per worker).
func NewEMF(w io.Writer, m *Worker, fleet, id string) *EMF {
	return &EMF{w: w, worker: m, fleet: fleet, id: id, now: time.Now, sent: map[string]float64{}, share: 1}
}

// Run writes a record every interval until ctx ends, then a last one with
// the counts since the one before; it returns the first write error, if
// any. Each periodic record carries Workers = interval / 1 minute, so that
// the Sum of Workers over a minute is the number of workers running in it
// whatever the interval (about: a worker's ticks do not line up with the
// minute). The last record carries counts only: no Workers and no gauges,
// which the record before already gave for that minute.
func (e *EMF) Run(ctx context.Context, interval time.Duration) error {
	e.share = interval.Minutes()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := e.flush(true); err != nil {
				return err
			}
		case <-ctx.Done():
			return e.flush(false)
		}
	}
}

// Flush writes the records for what happened since the last one: the
// main record, and a Failures record per reason that had failures.
func (e *EMF) Flush() error { return e.flush(true) }

// flush writes the records; periodic ones carry Workers and the gauges.
func (e *EMF) flush(periodic bool) error {
	families, err := e.worker.Registry.Gather()
	if err != nil {
		return fmt.Errorf("emf: gather: %w", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	at := e.now().UnixMilli()
	values := map[string]any{}
	var defs []emfMetric
	if periodic {
		values["Workers"] = e.share
		defs = append(defs, emfMetric{Name: "Workers", Unit: "Count"})
	}
	for _, m := range emfMetrics {
		f, ok := byName[m.from]
		if !ok || len(f.GetMetric()) == 0 || (!m.counter && !periodic) {
			continue
		}
		values[m.Name] = e.value(m.from, value(f.GetMetric()[0]), m.counter)
		defs = append(defs, m)
	}
	if err := e.write(at, []string{DimFleet}, nil, defs, values); err != nil {
		return err
	}
	if f, ok := byName[failuresFrom]; ok {
		for _, s := range f.GetMetric() {
			reason := label(s, "reason")
			n := e.value(failuresFrom+"/"+reason, value(s), true)
			if n == 0 {
				continue
			}
			err := e.write(at, []string{DimFleet, DimReason}, map[string]string{DimReason: reason},
				[]emfMetric{{Name: "Failures", Unit: "Count"}}, map[string]any{"Failures": n})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// value is a gauge's value, or a counter's increase since the last record.
func (e *EMF) value(series string, v float64, counter bool) float64 {
	if !counter {
		return v
	}
	d := v - e.sent[series]
	e.sent[series] = v
	return d
}

// write writes one record: the metrics of defs, their values, and the
// dimensions named (Fleet is always the fleet).
func (e *EMF) write(at int64, dims []string, dimValues map[string]string, defs []emfMetric, values map[string]any) error {
	type metricDef struct{ Name, Unit string }
	type directive struct {
		Namespace  string
		Dimensions [][]string
		Metrics    []metricDef
	}
	rec := map[string]any{}
	maps.Copy(rec, values)
	for k, v := range dimValues {
		rec[k] = v
	}
	rec[DimFleet] = e.fleet
	if e.id != "" {
		rec["WorkerId"] = e.id
	}
	d := directive{Namespace: Namespace, Dimensions: [][]string{slices.Clone(dims)}}
	for _, m := range defs {
		d.Metrics = append(d.Metrics, metricDef{m.Name, m.Unit})
	}
	rec["_aws"] = map[string]any{"Timestamp": at, "CloudWatchMetrics": []directive{d}}
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("emf: %w", err)
	}
	if _, err := e.w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("emf: write: %w", err)
	}
	return nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// EmittedMetrics is every metric the records carry, with its dimensions:
// what a dashboard or alarm on them may name.
func EmittedMetrics() map[string][]string {
	out := map[string][]string{"Workers": {DimFleet}, "Failures": {DimFleet, DimReason}}
	for _, m := range emfMetrics {
		out[m.Name] = []string{DimFleet}
	}
	return out
}
