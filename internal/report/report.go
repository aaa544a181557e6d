// Package report defines what travels on the report queue (plan summaries
// and one result per work message) and folds it into a Tally that counts
// each work message once, however often it was delivered and reported.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the version of the Envelope JSON body.
const SchemaVersion = 1

// Kinds of envelope.
const (
	KindPlan   = "plan"   // a plan's summary
	KindBatch  = "batch"  // one work message's result
	KindBundle = "bundle" // many of both, written back by status
)

// Envelope is the body of one report-queue message.
type Envelope struct {
	Version int      `json:"v"`
	Kind    string   `json:"kind"`
	Plans   []Plan   `json:"plans,omitempty"`
	Batches []Result `json:"batches,omitempty"`
}

// Plan is what a planner enqueued for one run.
type Plan struct {
	Run      string    `json:"run"`
	Source   string    `json:"src"`
	Dest     string    `json:"dst"`
	Queue    string    `json:"queue,omitempty"`
	Objects  int64     `json:"objects"` // keys enqueued, deletions included
	Deletes  int64     `json:"deletes,omitempty"`
	Bytes    int64     `json:"bytes"`
	Messages int64     `json:"messages"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// Result is what a worker did with one work message.
type Result struct {
	Run     string `json:"run"`
	Seq     int64  `json:"seq"`
	Worker  string `json:"worker"`
	Copied  int64  `json:"copied"`
	Deleted int64  `json:"deleted,omitempty"`
	Bytes   int64  `json:"bytes"` // bytes copied
	// Skipped keys needed no copy: their source vanished after listing, so
	// the clone still matches the source.
	Skipped []Failure `json:"skipped,omitempty"`
	// Failed keys could not be copied for a reason that retrying cannot fix.
	Failed   []Failure `json:"failed,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// Failure is one key that was not copied, and why.
type Failure struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
	Code   string `json:"code,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Encode renders an envelope as a message body.
func Encode(e Envelope) ([]byte, error) {
	e.Version = SchemaVersion
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s report: %w", e.Kind, err)
	}
	return b, nil
}

// ErrSchema marks a body that is not a report this version understands.
var ErrSchema = errors.New("not an s3clone report")

// Decode parses a report-queue message body.
func Decode(body []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	if e.Version != SchemaVersion {
		return e, fmt.Errorf("%w: schema version %d, this build reads version %d", ErrSchema, e.Version, SchemaVersion)
	}
	switch e.Kind {
	case KindPlan, KindBatch, KindBundle:
		return e, nil
	}
	return e, fmt.Errorf("%w: unknown kind %q", ErrSchema, e.Kind)
}
