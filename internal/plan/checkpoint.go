package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/s3clone/s3clone/internal/listing"
)

// CheckpointState is what a checkpoint file holds: enough to carry on an
// interrupted plan under the same run id, without sending any key the queue
// already accepted again.
type CheckpointState struct {
	Version int       `json:"v"`
	Run     string    `json:"run"`
	Source  Location  `json:"src"`
	Dest    Location  `json:"dst"`
	Queue   string    `json:"queue"`
	Started time.Time `json:"started"`
	Seq     int64     `json:"seq"` // last sequence number given out
	// Reserved is the last sequence number reserved: a resumed plan gives
	// out numbers after it (see Summary.Reserve).
	Reserved int64                `json:"reserved,omitempty"`
	Sent     SentCounts           `json:"sent"`
	Complete bool                 `json:"complete"`
	Shards   []listing.ShardState `json:"shards"` // left to list; [] when none
}

// SentCounts is what the queue has accepted.
type SentCounts struct {
	Objects  int64 `json:"objects"`
	Bytes    int64 `json:"bytes"`
	Messages int64 `json:"messages"`
}

const checkpointVersion = 1

// CheckpointStore keeps a checkpoint: a file (CheckpointFile), or an
// object in the run ledger, so that a plan run as an ECS task, whose files
// go with the task, can be carried on by the next one.
type CheckpointStore interface {
	// Load returns the checkpoint, nil (and no error) when there is none.
	Load() ([]byte, error)
	// Save replaces it whole: a reader finds the old one or the new one.
	Save(data []byte) error
	String() string
}

// CheckpointFile is a checkpoint in a local file, rewritten atomically.
type CheckpointFile string

// Load reads the file; nil when it does not exist.
func (f CheckpointFile) Load() ([]byte, error) {
	data, err := os.ReadFile(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// Save writes the file atomically (see writeAtomic).
func (f CheckpointFile) Save(data []byte) error { return writeAtomic(string(f), data) }

func (f CheckpointFile) String() string { return string(f) }

// ReadCheckpoint reads a checkpoint: nil, nil when there is none.
func ReadCheckpoint(store CheckpointStore) (*CheckpointState, error) {
	data, err := store.Load()
	if err != nil || data == nil {
		return nil, err
	}
	var st CheckpointState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s is not an s3clone checkpoint: %v", store, err)
	}
	if st.Version != checkpointVersion {
		return nil, fmt.Errorf("%s: checkpoint version %d, this build reads version %d", store, st.Version, checkpointVersion)
	}
	if st.Shards == nil {
		st.Shards = []listing.ShardState{}
	}
	return &st, nil
}

// Resume sets sum to carry on from st: same run, sequence numbers after the
// ones given out, counts of what was already sent.
func (st *CheckpointState) Resume(sum *Summary) {
	sum.Run, sum.Started = st.Run, st.Started
	sum.Seq.Store(max(st.Seq, st.Reserved))
	sum.Objects.Store(st.Sent.Objects)
	sum.Bytes.Store(st.Sent.Bytes)
	sum.Messages.Store(st.Sent.Messages)
}

// Checkpoint keeps a checkpoint up to date while a plan runs: after every
// group of messages the queue accepts, it records the listing's progress,
// replacing the checkpoint whole.
type Checkpoint struct {
	store    CheckpointStore
	progress *listing.Progress
	sum      *Summary
	queue    string
	sent     SentCounts // guarded by progress's lock (see Sent)
	dirty    chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	err      error
	// writeMu orders writes, each of the latest state: a reservation is
	// never overwritten by an older state.
	writeMu  sync.Mutex
	reserved int64 // guarded by writeMu
}

// NewCheckpoint starts keeping store up to date for the plan sum, whose
// listing reports to progress; prior is the state it resumes, or nil.
func NewCheckpoint(store CheckpointStore, sum *Summary, queue string, progress *listing.Progress, prior *CheckpointState) *Checkpoint {
	c := &Checkpoint{store: store, progress: progress, sum: sum, queue: queue, dirty: make(chan struct{}, 1), stop: make(chan struct{})}
	if prior != nil {
		c.sent, c.reserved = prior.Sent, prior.Reserved
	}
	c.wg.Go(c.writer)
	return c
}

// Sent acknowledges messages the queue accepted. Use it as Enqueue's SentFunc.
func (c *Checkpoint) Sent(batch []Body) {
	var tokens []listing.Token
	for _, b := range batch {
		tokens = append(tokens, b.Tokens...)
	}
	c.progress.Ack(tokens, func() {
		for _, b := range batch {
			c.sent.Objects += b.Objects
			c.sent.Bytes += b.Bytes
			c.sent.Messages++
		}
	})
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

func (c *Checkpoint) writer() {
	for {
		select {
		case <-c.dirty:
			c.write(false)
		case <-c.stop:
			return
		}
	}
}

// Finish stops the writer and writes the final state; complete marks a plan
// that sent everything. It returns the first write error.
func (c *Checkpoint) Finish(complete bool) error {
	close(c.stop)
	c.wg.Wait()
	c.write(complete)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Reserve records that sequence numbers up to upTo may be given out, and
// returns once that is on disk. Use it as the plan's Summary.Reserve.
func (c *Checkpoint) Reserve(upTo int64) error {
	c.writeMu.Lock()
	c.reserved = upTo
	c.writeMu.Unlock()
	c.write(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Checkpoint) write(complete bool) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	st := CheckpointState{Version: checkpointVersion, Run: c.sum.Run, Source: c.sum.Source, Dest: c.sum.Dest,
		Queue: c.queue, Started: c.sum.Started, Complete: complete, Reserved: c.reserved}
	st.Shards = c.progress.Snapshot(func() {
		st.Sent = c.sent
		st.Seq = c.sum.Seq.Load()
	})
	if complete {
		st.Shards = []listing.ShardState{}
	}
	data, err := json.Marshal(st)
	if err == nil {
		err = c.store.Save(data)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("write checkpoint %s: %w", c.store, err)
	}
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	// Synced before the rename, and the directory after it: a machine that
	// loses power must find the old checkpoint or the new one, never an
	// empty file under the name (the planner has already sent what the new
	// one records).
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync() // best effort: not every file system syncs a directory
		dir.Close()
	}
	return nil
}
