package listing

import (
	"sync"
)

// Progress tracks, shard by shard, which listed objects the consumer has
// acknowledged (for a planner: sent to the queue), so that an interrupted
// listing can resume without handing out an acknowledged object again. A
// shard's resume point is the last key before its first unacknowledged
// object; a walked shard also remembers the last common prefix it handed
// out, since its children are tracked shards of their own. Safe for
// concurrent use.
type Progress struct {
	mu     sync.Mutex
	shards map[*shard]*tracked
	resume []ShardState
}

type tracked struct {
	skip   map[string]bool // acknowledged before a resume, past mark
	keys   []string        // emitted, oldest first, from index base
	done   []bool
	base   int64
	mark   string // last key acknowledged contiguously
	cpMark string // last common prefix handed out (walked shards)
	ended  bool   // listed to the end
}

// Token identifies one listed object for Ack. The zero Token is untracked.
type Token struct {
	s *shard
	i int64
}

// ShardState is a shard as a checkpoint stores it.
type ShardState struct {
	Prefix   string `json:"prefix"`
	After    string `json:"after,omitempty"`
	From     string `json:"from,omitempty"`
	UpTo     string `json:"up_to,omitempty"`
	UpToIncl bool   `json:"up_to_incl,omitempty"`
	Delim    bool   `json:"delim,omitempty"`
	Deep     bool   `json:"deep,omitempty"`
	Level    string `json:"level,omitempty"`
	Depth    int    `json:"depth,omitempty"`
	CPMark   string `json:"cp_mark,omitempty"`
	// Skip are keys past After already acknowledged (acknowledgements can
	// arrive out of order): a resumed shard does not hand them out again.
	Skip []string `json:"skip,omitempty"`
}

// NewProgress tracks a listing from the start.
func NewProgress() *Progress { return &Progress{shards: map[*shard]*tracked{}} }

// ResumeProgress tracks a listing that resumes from a checkpoint's shards.
func ResumeProgress(shards []ShardState) *Progress {
	p := NewProgress()
	p.resume = append([]ShardState{}, shards...) // never nil: nil means "from the start"
	return p
}

// register starts tracking s; the caller has pushed it or is about to.
func (p *Progress) register(s *shard, cpMark string, skip []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &tracked{mark: s.after, cpMark: cpMark}
	if len(skip) > 0 {
		t.skip = map[string]bool{}
		for _, k := range skip {
			t.skip[k] = true
		}
	}
	p.shards[s] = t
}

// roots returns the shards to start from: the checkpoint's, registered, or
// root when there is none.
func (p *Progress) roots(root *shard) []*shard {
	if p.resume == nil {
		p.register(root, "", nil)
		return []*shard{root}
	}
	out := make([]*shard, 0, len(p.resume))
	for _, st := range p.resume {
		s := st.shard()
		p.register(s, st.CPMark, st.Skip)
		out = append(out, s)
	}
	return out
}

// emit drops the objects of s acknowledged before a resume, records the
// rest as handed out, in key order, and sets their tokens.
func (p *Progress) emit(s *shard, objs []Object) []Object {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.shards[s]
	kept := objs[:0]
	for _, o := range objs {
		if t.skip[o.Key] {
			continue
		}
		o.Token = Token{s: s, i: t.base + int64(len(t.keys))}
		t.keys = append(t.keys, o.Key)
		t.done = append(t.done, false)
		kept = append(kept, o)
	}
	return kept
}

// split cuts s at m and tracks the upper part, under the lock that Snapshot
// reads shard bounds under. The keys a resumed s must not hand out again
// that lie above m go with the upper part, which lists them now.
func (p *Progress) split(s *shard, m string) *shard {
	p.mu.Lock()
	defer p.mu.Unlock()
	upper := s.splitAt(m)
	ut := &tracked{mark: upper.after}
	if lower := p.shards[s]; lower != nil {
		for k := range lower.skip {
			if k > m {
				if ut.skip == nil {
					ut.skip = map[string]bool{}
				}
				ut.skip[k] = true
				delete(lower.skip, k)
			}
		}
	}
	p.shards[upper] = ut
	return upper
}

// handedOutBefore reports whether s handed out the common prefix cp before
// a resume.
func (p *Progress) handedOutBefore(s *shard, cp string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cp <= p.shards[s].cpMark
}

// handedOut records the last common prefix s handed out as a shard.
func (p *Progress) handedOut(s *shard, cp string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shards[s].cpMark = cp
}

// ended records that s was listed to its end.
func (p *Progress) ended(s *shard) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shards[s].ended = true
	p.dropIfDone(s)
}

// Ack acknowledges objects and then, under the same lock as Snapshot, runs
// also (which may be nil): what also records is consistent with the shards
// any Snapshot sees.
func (p *Progress) Ack(tokens []Token, also func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tok := range tokens {
		t := p.shards[tok.s]
		if t == nil {
			continue
		}
		t.done[tok.i-t.base] = true
		for len(t.done) > 0 && t.done[0] {
			t.mark = t.keys[0]
			t.keys, t.done = t.keys[1:], t.done[1:]
			t.base++
		}
		p.dropIfDone(tok.s)
	}
	if also != nil {
		also()
	}
}

// dropIfDone stops tracking a shard listed to its end and fully
// acknowledged; the caller holds mu.
func (p *Progress) dropIfDone(s *shard) {
	if t := p.shards[s]; t.ended && len(t.keys) == 0 {
		delete(p.shards, s)
	}
}

// Snapshot returns every shard with work left, each to resume after its
// last acknowledged key, and runs also under the same lock.
func (p *Progress) Snapshot(also func()) []ShardState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ShardState, 0, len(p.shards))
	for s, t := range p.shards {
		st := stateOf(s)
		st.After = max(s.after, t.mark)
		st.CPMark = t.cpMark
		for i, k := range t.keys {
			if t.done[i] {
				st.Skip = append(st.Skip, k)
			}
		}
		for k := range t.skip {
			if k > st.After {
				st.Skip = append(st.Skip, k)
			}
		}
		out = append(out, st)
	}
	if also != nil {
		also()
	}
	return out
}

func stateOf(s *shard) ShardState {
	return ShardState{
		Prefix: s.prefix, After: s.after, From: s.from, UpTo: s.upTo, UpToIncl: s.upToIncl,
		Delim: s.delim, Deep: s.deep, Level: s.level, Depth: s.depth,
	}
}

func (st ShardState) shard() *shard {
	return &shard{
		prefix: st.Prefix, after: st.After, from: st.From, upTo: st.UpTo, upToIncl: st.UpToIncl,
		delim: st.Delim, deep: st.Deep, level: st.Level, depth: st.Depth,
	}
}
