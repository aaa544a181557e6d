package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Rate is the request rate the fleet shares for one prefix of a
// destination bucket (pace.Pacer): the write requests a second each worker
// writing to it may send. One object per prefix, at
// pace/rates/BUCKET/p=PREFIX.json (the prefix query-escaped), written by
// whichever worker changes the rate, each write conditional on the version
// it read: a cut by one worker slows the fleet, and the fleet raises the
// rate once per step, not once per worker.
type Rate struct {
	Layout    int     `json:"layout"`
	Bucket    string  `json:"bucket"`
	Prefix    string  `json:"prefix"`
	PerWorker float64 `json:"per_worker"` // requests a second, each worker's
	// Workers is the fleet's size as its writer counted it: a worker that
	// counts another size scales the rate to keep the same total.
	Workers int `json:"workers,omitempty"`
	// SlowStart: no throttle has been met yet, and the rate doubles at
	// each step; Step is the next raise after that.
	SlowStart bool      `json:"slow_start,omitempty"`
	Step      float64   `json:"step,omitempty"`
	Cut       time.Time `json:"cut,omitzero"` // the last cut for a throttle
	At        time.Time `json:"at"`           // the last change
	By        string    `json:"by"`           // the worker that made it
	// Version is the object's ETag, as read; not stored.
	Version string `json:"-"`
}

func (r *Rate) layout() int { return r.Layout }

// Presence is one worker's part in the fleet's pacing, at
// pace/workers/WORKER.json, rewritten every few seconds while it works
// and deleted when it stops: the fleet's size is the number of fresh ones,
// and planner status shows what they say.
type Presence struct {
	Layout   int            `json:"layout"`
	Worker   string         `json:"worker"`
	At       time.Time      `json:"at"`
	Prefixes []PrefixRate   `json:"prefixes,omitempty"`
	Queued   int            `json:"queued,omitempty"`  // keys waiting for their prefix's rate to start
	Waiting  int            `json:"waiting,omitempty"` // keys now retried after a throttle
	Longest  *KeyWait       `json:"longest,omitempty"` // the one waiting longest
	Caps     map[string]int `json:"caps,omitempty"`    // the operator's caps: per_prefix, fleet
}

func (p *Presence) layout() int { return p.Layout }

// PrefixRate is what one worker saw of one prefix over its last interval.
type PrefixRate struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	// Allowed is what this worker may send to it a second.
	Allowed float64 `json:"allowed"`
	// Sent, Throttled: write requests in the last interval (Seconds long)
	// and how many S3 answered with a throttle.
	Sent      int64   `json:"sent"`
	Throttled int64   `json:"throttled"`
	Seconds   float64 `json:"seconds"`
}

// KeyWait is a key being retried after a throttle, since Since.
type KeyWait struct {
	Bucket string    `json:"bucket"`
	Key    string    `json:"key"`
	Since  time.Time `json:"since"`
}

// RateHead is a rate as listed: where, and its version.
type RateHead struct {
	Key     string
	Version string
}

// PaceView is one listing of pace/: the rates' versions, and the workers
// seen recently.
type PaceView struct {
	Rates   []RateHead
	Workers map[string]time.Time // worker → when its presence was written
}

func (s *Store) pacePrefix() string { return s.prefix + "pace/" }

// RateKey is where the rate of bucket's prefix is kept.
func (s *Store) RateKey(bucket, prefix string) string {
	return s.pacePrefix() + "rates/" + bucket + "/p=" + url.QueryEscape(prefix) + ".json"
}

func (s *Store) presenceKey(worker string) string {
	return s.pacePrefix() + "workers/" + url.PathEscape(worker) + ".json"
}

// ErrRateMoved is wrapped by PutRate when the rate is no longer the version
// it was read at: another worker changed it in between.
var ErrRateMoved = errors.New("the rate was changed by another worker since it was read")

// Pace lists pace/: every rate's version and every worker's presence.
func (s *Store) Pace(ctx context.Context) (PaceView, error) {
	v := PaceView{Workers: map[string]time.Time{}}
	rates, workers := s.pacePrefix()+"rates/", s.pacePrefix()+"workers/"
	err := s.list(ctx, s.pacePrefix(), "", "", func(out *s3.ListObjectsV2Output) bool {
		for _, o := range out.Contents {
			k := aws.ToString(o.Key)
			switch {
			case strings.HasPrefix(k, rates) && strings.HasSuffix(k, ".json"):
				v.Rates = append(v.Rates, RateHead{Key: k, Version: aws.ToString(o.ETag)})
			case strings.HasPrefix(k, workers) && strings.HasSuffix(k, ".json"):
				name, err := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(k, workers), ".json"))
				if err == nil && o.LastModified != nil {
					v.Workers[name] = *o.LastModified
				}
			}
		}
		return true
	})
	return v, err
}

// Rate reads the rate at key (from Pace, or RateKey); nil when there is none.
func (s *Store) Rate(ctx context.Context, key string) (*Rate, error) {
	s.Requests.Add(1)
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if err = s.classify(err, "GetObject", key); errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("read s3://%s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	var r Rate
	if err := json.NewDecoder(out.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("s3://%s/%s is not a rate: %w", s.bucket, key, err)
	}
	r.Version = aws.ToString(out.ETag)
	return &r, nil
}

// PutRate writes r over the version it was read at (r.Version; "" where
// there was none) and returns the new version; ErrRateMoved when another
// worker wrote it first (S3's conditional writes: If-Match, If-None-Match).
func (s *Store) PutRate(ctx context.Context, r Rate) (string, error) {
	r.Layout = Layout
	return s.putOver(ctx, s.RateKey(r.Bucket, r.Prefix), r, r.Version, ErrRateMoved)
}

// PutPresence writes a worker's presence.
func (s *Store) PutPresence(ctx context.Context, p Presence) error {
	p.Layout = Layout
	return s.put(ctx, s.presenceKey(p.Worker), &p)
}

// DeletePresence removes a stopping worker's presence.
func (s *Store) DeletePresence(ctx context.Context, worker string) error {
	key := s.presenceKey(worker)
	s.Requests.Add(1)
	if _, err := s.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("delete s3://%s/%s: %w", s.bucket, key, s.classify(err, "DeleteObject", key))
	}
	return nil
}

// Presences reads the presence of every worker written within fresh.
func (s *Store) Presences(ctx context.Context, fresh time.Duration) ([]Presence, error) {
	v, err := s.Pace(ctx)
	if err != nil {
		return nil, err
	}
	var out []Presence
	for w, at := range v.Workers {
		if time.Since(at) > fresh {
			continue
		}
		var p Presence
		if err := s.get(ctx, s.presenceKey(w), &p); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // stopped since the listing
			}
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
